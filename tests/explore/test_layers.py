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


def test_legend_names_colours_and_areas(explorer, made):
    legend = explorer.legend()
    with rasterio.open(made.map) as ds:
        names, table, data = json.loads(ds.tags()["CLASSES"]), ds.colormap(1), ds.read(1)
        cell_km2 = abs(ds.transform.a * ds.transform.e) / 1e6
    assert [c["name"] for c in legend["classes"]] == names == made.classes
    assert [c["color"] for c in legend["classes"]] == ["#{:02x}{:02x}{:02x}".format(*table[v][:3])
                                                      for v in range(len(names))]
    counts = np.bincount(data.ravel(), minlength=len(names))
    assert [c["pixels"] for c in legend["classes"]] == counts[:len(names)].tolist()
    np.testing.assert_allclose([c["area_km2"] for c in legend["classes"]], counts[:len(names)] * cell_km2)
    shares = 100 * counts[:len(names)] / data.size
    np.testing.assert_allclose([c["percent"] for c in legend["classes"]], shares)
    assert cell_km2 == pytest.approx(0.4096) and legend["mapped_km2"] == pytest.approx(16 * 0.4096)


def test_legend_of_a_geographic_map_sums_to_the_earth(tmp_path):
    """10-degree pixels over the globe: the ellipsoidal areas add up to WGS84's 510.066 million km²."""
    from rasterio.transform import from_origin

    from senclip.explore.layers import class_areas

    path = tmp_path / "globe.tif"
    data = (np.arange(18 * 36).reshape(18, 36) % 3).astype(np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=36, height=18, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=from_origin(-180, 90, 10, 10), nodata=255) as dst:
        dst.write(data[None])
    counts, km2 = class_areas(path)
    assert counts[:3].sum() == 648 and km2.sum() == pytest.approx(510_065_621.7, rel=1e-6)
    assert km2[0] == pytest.approx(km2[1], rel=1e-9)  # each class has one pixel in three of every row


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
    from senclip.explore.layers import CompositeLayer
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
    with pytest.raises(NotFound, match="class 10"):
        explorer.tile("probability", Z, 0, 0, index=10)


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
