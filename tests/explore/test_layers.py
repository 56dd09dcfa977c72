"""The explorer's answers without HTTP: tiles, legend, points and text search against the files."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rasterio
from explore_helpers import cell_centres_lonlat, tile_of
from PIL import Image
from rasterio.io import MemoryFile
from rasterio.warp import transform as transform_coords

from senclip.explore import BadRequest, NotFound, Unprocessable

Z = 15  # a 640 m map cell is ~200 px wide at this zoom and latitude


def rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def pixels_at(explorer, layer: str, lon, lat, **options) -> list[tuple]:
    """The RGBA pixel of ``layer``'s tile at each point."""
    tiles, out = {}, []
    for lo, la in zip(lon, lat, strict=True):
        x, y, px, py = tile_of(lo, la, Z)
        if (x, y) not in tiles:
            tiles[x, y] = rgba(explorer.tile(layer, Z, x, y, **options))
        out.append(tuple(int(v) for v in tiles[x, y][int(py), int(px)]))
    return out


def test_class_tiles_draw_the_colour_table_of_the_cog(explorer, made):
    lon, lat, values = cell_centres_lonlat(made.map)
    with rasterio.open(made.map) as ds:
        table = ds.colormap(1)
    assert len(set(values)) == 10  # the probe maps every class of the mosaic
    assert pixels_at(explorer, "classes", lon, lat) == [tuple(table[v]) for v in values]


def test_tiles_off_the_map_and_malformed_indexes(explorer):
    with pytest.raises(NotFound, match="outside the map"):
        explorer.tile("classes", Z, 0, 0)
    for z, x, y in [(25, 0, 0), (-1, 0, 0), (3, 8, 0), (3, 0, -1)]:
        with pytest.raises(BadRequest):
            explorer.tile("classes", z, x, y)
    with pytest.raises(NotFound, match="unknown layer"):
        explorer.tile("../map.tif", Z, 0, 0)


def ground_km2(path) -> np.ndarray:
    """Each pixel's area on the WGS84 ellipsoid (pyproj's geodesic polygon area of its densified outline)."""
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    with rasterio.open(path) as ds:
        t, crs, (h, w) = ds.transform, ds.crs, ds.shape
    km2 = np.empty((h, w))
    f = np.linspace(0, 1, 8, endpoint=False)
    for r in range(h):
        for c in range(w):
            cols = np.concatenate([c + f, np.full(8, c + 1.0), c + 1 - f, np.full(8, float(c))])
            rows = np.concatenate([np.full(8, float(r)), r + f, np.full(8, r + 1.0), r + 1 - f])
            lon, lat = transform_coords(crs, "EPSG:4326", *(t @ (cols, rows)))
            km2[r, c] = abs(geod.polygon_area_perimeter(lon, lat)[0]) / 1e6
    return km2


def test_legend_names_colours_and_ground_areas(explorer, made):
    legend = explorer.legend()
    with rasterio.open(made.map) as ds:
        names, table, data = json.loads(ds.tags()["CLASSES"]), ds.colormap(1), ds.read(1)
        cell_km2 = abs(ds.transform.a * ds.transform.e) / 1e6
    assert [c["name"] for c in legend["classes"]] == names == made.classes
    assert [c["color"] for c in legend["classes"]] == ["#{:02x}{:02x}{:02x}".format(*table[v][:3])
                                                      for v in range(len(names))]
    counts = np.bincount(data.ravel(), minlength=len(names))
    assert [c["pixels"] for c in legend["classes"]] == counts[:len(names)].tolist()
    ground = np.bincount(data.ravel(), weights=ground_km2(made.map).ravel(), minlength=len(names))
    np.testing.assert_allclose([c["area_km2"] for c in legend["classes"]], ground[:len(names)], rtol=1e-7)
    np.testing.assert_allclose([c["percent"] for c in legend["classes"]], 100 * ground / ground.sum(),
                               rtol=1e-7)
    assert legend["mapped_km2"] == pytest.approx(ground.sum(), rel=1e-7)
    # on UTM's central meridian the grid draws the ground 0.9996² as large: 16 cells of 0.4096 km² on it
    assert cell_km2 == pytest.approx(0.4096)
    assert legend["mapped_km2"] == pytest.approx(16 * 0.4096 / 0.9996**2, rel=1e-5)


def write_map(path, data, crs, transform, **extra):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint8", crs=crs, transform=transform, nodata=255, **extra) as dst:
        dst.write(data[None])
    return path


def test_legend_of_a_web_mercator_map_gives_ground_areas(tmp_path):
    """EPSG:3857 at 50° N draws a pixel 2.4 times larger than it is on the ground; the legend gives the
    ground's area (each pixel's geodesic area), and shares of it."""
    from rasterio.transform import from_origin

    from senclip.explore.layers import ClassLayer

    data = np.zeros((24, 30), np.uint8)
    data[:8] = 1  # the northern third
    data[20:, 25:] = 255
    path = write_map(tmp_path / "mercator.tif", data, "EPSG:3857", from_origin(700_000, 6_460_000, 500, 500))
    legend = ClassLayer(path).legend()
    ground = ground_km2(path)
    expected = [ground[data == v].sum() for v in (0, 1)]
    np.testing.assert_allclose([c["area_km2"] for c in legend["classes"]], expected, rtol=1e-5)
    shares = 100 * np.array(expected) / sum(expected)
    np.testing.assert_allclose([c["percent"] for c in legend["classes"]], shares, rtol=1e-5)
    grid_km2 = 0.25 * (data != 255).sum()
    assert 2.3 < grid_km2 / legend["mapped_km2"] < 2.5
    assert legend["nodata"]["area_km2"] == pytest.approx(ground[data == 255].sum(), rel=1e-5)
    assert "WGS 84 ellipsoid" in legend["area"]


def test_legend_of_a_geographic_map_sums_to_the_earth(tmp_path):
    """10-degree pixels over the globe: the ellipsoidal areas add up to WGS84's 510.066 million km²."""
    from rasterio.transform import from_origin

    from senclip.explore.areas import class_areas

    data = (np.arange(18 * 36).reshape(18, 36) % 3).astype(np.uint8)
    path = write_map(tmp_path / "globe.tif", data, "EPSG:4326", from_origin(-180, 90, 10, 10))
    counts, km2 = class_areas(path)
    assert counts[:3].sum() == 648 and km2.sum() == pytest.approx(510_065_621.7, rel=1e-6)
    assert km2[0] == pytest.approx(km2[1], rel=1e-9)  # each class has one pixel in three of every row


def test_legend_shares_are_shares_of_the_ground_not_of_pixels(tmp_path):
    """A geographic map: as many pixels of class 0 near the pole as of class 1 at the equator, but far
    less ground."""
    from rasterio.transform import from_origin

    from senclip.explore.layers import ClassLayer

    data = np.full((90, 10), 255, np.uint8)
    data[:10] = 0  # 80-90° N
    data[-10:] = 1  # 0-10° N
    path = write_map(tmp_path / "geo.tif", data, "EPSG:4326", from_origin(0, 90, 1, 1))
    legend = ClassLayer(path).legend()
    zero, one = legend["classes"]
    assert zero["pixels"] == one["pixels"] == 100
    ground = ground_km2(path)
    expected = np.array([ground[data == 0].sum(), ground[data == 1].sum()])
    np.testing.assert_allclose([zero["area_km2"], one["area_km2"]], expected, rtol=1e-4)
    np.testing.assert_allclose([zero["percent"], one["percent"]], 100 * expected / expected.sum(), rtol=1e-4)
    assert zero["percent"] < 9
    assert zero["percent"] + one["percent"] == pytest.approx(100)


def test_point_gives_the_class_rasterio_reads_and_the_top_probabilities(explorer, made):
    lon, lat, values = cell_centres_lonlat(made.map)
    with rasterio.open(made.probs) as ds:
        probs = ds.read().reshape(ds.count, -1)
    with rasterio.open(made.map) as ds:
        crs = ds.crs
    xs, ys = transform_coords("EPSG:4326", crs, lon, lat)
    for i in range(values.size):
        p = explorer.point(float(lon[i]), float(lat[i]))
        assert p["class"]["value"] == values[i] and p["class"]["name"] == made.classes[values[i]]
        assert (p["row"], p["col"]) == divmod(i, 4)
        assert p["x"] == pytest.approx(xs[i]) and p["y"] == pytest.approx(ys[i]) and p["crs"] == "EPSG:32632"
        order = np.argsort(-probs[:, i])[:3]
        assert [t["value"] for t in p["probabilities"]] == order.tolist()
        np.testing.assert_allclose([t["probability"] for t in p["probabilities"]], probs[order, i], rtol=1e-6)
        assert p["probabilities"][0]["value"] == values[i]
    with pytest.raises(NotFound, match="outside the map"):
        explorer.point(0.0, 0.0)
    with pytest.raises(BadRequest):
        explorer.point(200.0, 0.0)


def test_composite_in_true_colour_with_a_stretch(explorer, made):
    with rasterio.open(made.scene) as ds:
        data = ds.read()
    lon, lat, _ = cell_centres_lonlat(made.scene)
    picks = np.arange(0, lon.size, 997)  # a few hundred pixels spread over the scene
    expected = data.reshape(3, -1)[:, picks].T
    got = np.array(pixels_at(explorer, "composite", lon[picks], lat[picks], lo=0, hi=255))
    np.testing.assert_array_equal(got[:, :3], expected)
    assert (got[:, 3] == 255).all()
    stretched = np.array(pixels_at(explorer, "composite", lon[picks], lat[picks], lo=50, hi=150))[:, :3]
    linear = np.clip((expected.astype(float) - 50) / 100 * 255, 0, 255)
    assert np.abs(stretched - linear).max() <= 1
    assert explorer.composite.stretch == tuple(float(v) for v in np.percentile(data, [2, 98]))
    assert explorer.composite.rgb == (1, 2, 3)
    with pytest.raises(BadRequest, match="min < max"):
        explorer.tile("composite", Z, *tile_of(lon[0], lat[0], Z)[:2], lo=5, hi=5)


def test_a_composite_of_digital_numbers_is_stretched_in_reflectance(made, tmp_path):
    """A uint16 composite with GDAL scale/offset (as acquire writes): stretch values are reflectances."""
    from senclip.explore.composite import CompositeLayer
    from senclip.testing.rasters import write_raster

    with rasterio.open(made.scene) as ds:
        data = ds.read()
    dn = data.astype(np.uint16) * 100 + 1000
    path = write_raster(tmp_path / "dn.tif", dn, ["B04", "B03", "B02"])
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = (1e-4,) * 3, (-0.1,) * 3
    layer = CompositeLayer(path)
    np.testing.assert_allclose(layer.stretch, np.percentile(data, [2, 98]) / 100, rtol=1e-5)
    lon, lat, _ = cell_centres_lonlat(path)
    for i in (5000, 40000):
        x, y, px, py = tile_of(lon[i], lat[i], Z)
        pixel = rgba(layer.tile(Z, x, y, 0.0, 2.55))[int(py), int(px)]
        assert np.abs(pixel[:3].astype(int) - data.reshape(3, -1)[:, i]).max() <= 1


def test_probability_tiles_are_a_colour_ramp_of_one_class(explorer, made):
    from rio_tiler.colormap import cmap

    ramp = cmap.get("viridis")
    lon, lat, _ = cell_centres_lonlat(made.map)
    with rasterio.open(made.probs) as ds:
        probs = ds.read(4).ravel()
    got = pixels_at(explorer, "probability", lon, lat, index=3)
    for colour, p in zip(got, probs, strict=True):
        nearest = [k for k in range(256) if abs(k - p * 255) <= 1]
        assert colour in [tuple(ramp[k]) for k in nearest], (colour, p)
    x, y, *_ = tile_of(lon[0], lat[0], Z)
    with pytest.raises(NotFound, match="class 10"):
        explorer.tile("probability", Z, x, y, index=10)


def test_text_query_is_senclip_search(explorer, made, tmp_path, capsys):
    from senclip.cli import main

    for phrase in ("River", "a photo of a forest"):
        heat = tmp_path / f"{phrase}.tif"
        assert main(["search", str(made.tiles), phrase, "--out", str(heat), "--no-png", "--no-progress"]) == 0
        searched = json.loads(capsys.readouterr().out)
        summary = explorer.search_summary(phrase)
        assert summary["best_tile"] == searched["best_tile"] and summary["tiles"] == searched["tiles"] == 49
        assert summary["max"] == pytest.approx(searched["max"], abs=1e-6)
        with rasterio.open(heat) as ours_on_disk, MemoryFile(explorer.search_geotiff(phrase)) as mem, \
                mem.open() as served:
            np.testing.assert_array_equal(served.read(), ours_on_disk.read())
            assert served.transform == ours_on_disk.transform and served.crs == ours_on_disk.crs
            assert served.tags()["QUERY"] == phrase


def test_geojson_holds_the_tiles_at_or_above_the_threshold(explorer, made):
    from shapely.geometry import Point, shape

    result = explorer.search.result("River")
    threshold = float(np.median(result.scores))
    collection = explorer.search_geojson("River", threshold)
    scores = [f["properties"]["score"] for f in collection["features"]]
    assert len(scores) == int((result.scores >= threshold).sum()) and scores == sorted(scores, reverse=True)
    assert collection["features"][0]["properties"]["row"] == explorer.search_summary("River")["best_tile"][0]
    grid = explorer.search.grid
    for f in collection["features"]:
        r, c = f["properties"]["row"], f["properties"]["col"]
        x, y = grid.transform @ ((c * grid.stride + grid.tile / 2), (r * grid.stride + grid.tile / 2))
        lon, lat = transform_coords("EPSG:32632", "EPSG:4326", [x], [y])
        assert shape(f["geometry"]).contains(Point(lon[0], lat[0]))
    assert len(explorer.search_geojson("River")["features"]) == 49


def test_heat_tiles_and_the_threshold(explorer, made):
    summary = explorer.search_summary("River")
    (s, w), (n, e) = summary["best_bounds"]
    lon, lat = [(w + e) / 2], [(s + n) / 2]
    assert pixels_at(explorer, "search", lon, lat, query="River")[0][3] == 255
    above = summary["max"] + 1e-3
    x, y, *_ = tile_of(lon[0], lat[0], Z)
    assert (rgba(explorer.tile("search", Z, x, y, query="River", threshold=above))[..., 3] == 0).all()


@pytest.mark.parametrize("query", ["", "   ", "x" * 301])
def test_empty_and_long_queries_are_refused(explorer, query):
    with pytest.raises(Unprocessable):
        explorer.search_summary(query)


def layer_pixels(layer, lon, lat) -> list[tuple]:
    """The RGBA pixel of a class layer's tile (:meth:`ClassLayer.tile`) at each point."""
    tiles, out = {}, []
    for lo, la in zip(lon, lat, strict=True):
        x, y, px, py = tile_of(lo, la, Z)
        if (x, y) not in tiles:
            tiles[x, y] = rgba(layer.tile(Z, x, y))
        out.append(tuple(int(v) for v in tiles[x, y][int(py), int(px)]))
    return out


@pytest.mark.parametrize("kind", ["senclip", "plain"])
def test_nodata_cells_are_clear_and_out_of_the_shares(made, tmp_path, kind):
    """Cells of 255 are transparent on the tiles and left out of the legend's shares, on a map of
    ``senclip map`` (colour table, CLASSES tag) and on a plain uint8 GeoTIFF without either, whose
    classes are then named ``class N`` after the values it holds and coloured with senclip's palette."""
    import shutil

    from senclip.explore.layers import ClassLayer
    from senclip.mapping.writers import class_colors

    with rasterio.open(made.map) as src:
        data, profile, table = src.read(1), src.profile, src.colormap(1)
    data[0, 0] = data[2, 3] = 255
    path = tmp_path / f"{kind}.tif"
    if kind == "senclip":
        shutil.copyfile(made.map, path)
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
            dst.write(data[None])
    else:
        plain = {k: profile[k] for k in ("width", "height", "count", "dtype", "crs", "transform", "nodata")}
        with rasterio.open(path, "w", driver="GTiff", **plain) as dst:
            dst.write(data[None])
    layer = ClassLayer(path)
    present = sorted(set(data.ravel().tolist()) - {255})
    if kind == "plain":
        assert layer.names == {v: f"class {v}" for v in present}
        colours = dict(zip(present, class_colors([f"class {v}" for v in present]), strict=True))
        expected = {v: (*colours[v], 255) for v in present}
    else:
        assert list(layer.names.values()) == made.classes
        expected = {v: tuple(table[v]) for v in present}
    lon, lat, values = cell_centres_lonlat(path)
    got = layer_pixels(layer, lon, lat)
    assert [g for g, v in zip(got, values, strict=True) if v == 255] == [(0, 0, 0, 0)] * 2
    mapped = [v for v in values if v != 255]
    assert [g for g, v in zip(got, values, strict=True) if v != 255] == [expected[v] for v in mapped]
    legend = layer.legend()
    assert legend["nodata"]["pixels"] == 2 and sum(c["pixels"] for c in legend["classes"]) == 14
    shares = np.array([c["percent"] for c in legend["classes"]])
    np.testing.assert_allclose(shares, 100 * np.array([c["area_km2"] for c in legend["classes"]])
                               / legend["mapped_km2"])
    assert shares.sum() == pytest.approx(100) and legend["mapped_km2"] == pytest.approx(14 / 16 * (
        legend["mapped_km2"] + legend["nodata"]["area_km2"]), rel=1e-4)


def test_layers_of_different_extents(made, tmp_path):
    """A composite covering the class map's top-left quarter only (an area run's class map is rounded up
    to whole cells, its composite is not): /api/info gives each layer its own bounds, a tile on the
    map but off the composite is a transparent tile, not an error, and one off every layer is 404."""
    from senclip.explore import Explorer, resolve_files
    from senclip.testing.rasters import write_raster

    with rasterio.open(made.scene) as src:
        quarter = write_raster(tmp_path / "quarter.tif", src.read()[:, :128, :128], ["B04", "B03", "B02"])
    explorer = Explorer(resolve_files(made.map, composite=quarter))
    info = explorer.info()
    (s, w), (n, e) = info["layers"]["classes"]["bounds"]
    (cs, cw), (cn, ce) = info["layers"]["composite"]["bounds"]
    assert cw == pytest.approx(w) and cn == pytest.approx(n) and cs > s + 0.005 and ce < e - 0.005
    assert info["bounds"] == info["layers"]["classes"]["bounds"]  # the union
    lon, lat, _ = cell_centres_lonlat(made.map)
    inside, off = tile_of(lon[0], lat[0], Z)[:2], tile_of(lon[15], lat[15], Z)[:2]  # cells (0, 0), (3, 3)
    assert (rgba(explorer.tile("composite", Z, *inside))[..., 3] == 255).any()
    assert (rgba(explorer.tile("composite", Z, *off))[..., 3] == 0).all()
    assert (rgba(explorer.tile("classes", Z, *off))[..., 3] == 255).any()
    with pytest.raises(NotFound, match="outside the map"):
        explorer.tile("composite", Z, 0, 0)


def test_a_result_pushed_out_stays_open_while_a_request_reads_it(made):
    """Other phrases push a result out of the kept ones while a request still reads tiles from its
    in-memory file: the file closes only once that request is done."""
    from senclip.explore.search import KEEP_RESULTS, TextSearch

    search = TextSearch(made.model, made.tiles)
    summary_tile = tile_of(*np.mean(search.summary("River")["best_bounds"], axis=0)[::-1], Z)[:2]
    with search.using("River") as held:
        for i in range(KEEP_RESULTS):
            search.result(f"a photo of place {i}")
        assert "River" not in search._results and not held.raster.closed
        assert held.layer.read_tile(Z, *summary_tile, indexes=1) is not None
    assert held.raster.closed
    evicted = search.result("a photo of place 1")  # pushed out by the next, with no reader: closed at once
    for i in range(KEEP_RESULTS):
        search.result(f"another phrase {i}")
    assert evicted.raster.closed


def test_a_kept_phrase_is_answered_while_another_is_scored(made, monkeypatch):
    """The text tower runs outside the lock of the kept results: a kept phrase's tile is answered while
    a new phrase is being scored."""
    import threading

    import senclip.explore.search as search_module
    from senclip.explore.search import TextSearch

    search = TextSearch(made.model, made.tiles)
    search.result("River")
    started, release = threading.Event(), threading.Event()
    scored = search_module.tile_similarity

    def slow(model, unit, query, path):
        if query == "slow":
            started.set()
            release.wait(30)
        return scored(model, unit, query, path)

    monkeypatch.setattr(search_module, "tile_similarity", slow)
    worker = threading.Thread(target=search.result, args=("slow",))
    worker.start()
    try:
        assert started.wait(30)
        answered = threading.Thread(target=search.summary, args=("River",))
        answered.start()
        answered.join(10)
        assert not answered.is_alive()  # not held up by the phrase being scored
    finally:
        release.set()
        worker.join(30)
    assert "slow" in search._results
