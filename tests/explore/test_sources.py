"""Which files the explorer reads: named ones (with the STAC Item beside each), or an area run's folder.

The Items are written by the area pipeline's own writers (``mapping.writers.class_map_item``,
``areas.mosaic.composite_item``), as ``senclip map --area`` writes them; tests/areas/test_area_map.py
explores a real ``map --area`` output folder.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import rasterio
from explore_helpers import WHEN, cell_centres_lonlat, composite_item, monthly_composite, tile_of, write_item
from PIL import Image

from senclip.errors import SenclipError
from senclip.explore import Explorer, NotFound, resolve_files


def class_map_item(tif, classes, colors, **extra):
    from senclip.mapping.writers import class_map_item as item

    with rasterio.open(tif) as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
    return write_item(tif, item(tif, classes, colors, crs, transform, shape, WHEN,
                                {"architecture": "senclip-tiny-vit"}, extra))


def probabilities_item(tif, classes):
    from senclip.mapping.writers import probabilities_item as item

    with rasterio.open(tif) as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
    return write_item(tif, item(tif, classes, crs, transform, shape, WHEN, {}))


def colours_of(tif, n):
    with rasterio.open(tif) as ds:
        return [ds.colormap(1)[v][:3] for v in range(n)]


@pytest.fixture
def area_folder(made, tmp_path):
    """An area run's folder: the class map, its probabilities and (in a subfolder) its composite."""
    out = tmp_path / "out"
    (out / "landuse_composites").mkdir(parents=True)
    names = {"map": out / "landuse.tif", "probs": out / "landuse_probs.tif",
             "scene": out / "landuse_composites" / "composite.tif"}
    for key, path in names.items():
        shutil.copyfile(getattr(made, key), path)
    class_map_item(names["map"], made.classes, colours_of(made.map, 10),
                   **{"senclip:composite": "./landuse_composites/composite.tif"})
    probabilities_item(names["probs"], made.classes)
    composite_item(names["scene"], ["B04", "B03", "B02"])
    return out, names


def test_a_folder_is_read_through_its_items(area_folder):
    out, names = area_folder
    files = resolve_files(out)
    assert files.class_map == names["map"].resolve() and files.probabilities == names["probs"].resolve()
    assert files.composite == names["scene"].resolve() and files.embeddings is None
    assert dict(files.items) == {"class_map": names["map"].with_suffix(".item.json").resolve(),
                                 "composite": names["scene"].with_suffix(".item.json").resolve(),
                                 "probabilities": names["probs"].with_suffix(".item.json").resolve()}
    explorer = Explorer(files)
    assert explorer.info()["layers"].keys() == {"classes", "composite", "probability"}


def test_named_files_win_over_the_folder(area_folder, made):
    out, _ = area_folder
    files = resolve_files(out, composite=made.scene)
    assert files.composite == made.scene and "composite" not in files.found


def test_a_named_class_map_leads_to_its_composite_through_its_item(area_folder, made):
    """``senclip explore landuse.tif``: the Item beside it (``landuse.item.json``) names the composite
    the map was made from (``senclip:composite``, relative to the Item); --composite wins."""
    _, names = area_folder
    files = resolve_files(names["map"])
    assert files.composite == names["scene"].resolve() and files.found == ("composite",)
    assert dict(files.items)["class_map"] == names["map"].with_suffix(".item.json")
    assert Explorer(files).composite.rgb == (1, 2, 3)
    assert resolve_files(names["map"], composite=made.scene).composite == made.scene
    assert resolve_files(made.map).composite is None  # a plain map's Item names no composite


def test_class_names_colours_and_bands_from_the_items_when_the_files_lack_them(area_folder, made):
    """A class map without senclip's tags and colour table, a composite whose bands are not described:
    names are the Items' titles (the class names as written; ``name`` is sanitised), colours their
    ``color_hint``, bands their ``eo:bands``."""
    out, names = area_folder
    with rasterio.open(made.map) as src:
        data, profile = src.read(), src.profile
    bare = out / "bare.tif"
    with rasterio.open(bare, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(data)
    classes = [f"land use {i}" for i in range(10)]
    class_map_item(bare, classes, [(10 * i, 128, 64) for i in range(10)])
    names["map"].with_suffix(".item.json").unlink()
    with rasterio.open(made.scene) as src:
        rgb, profile = src.read(), src.profile
    scene = names["scene"]
    nir = np.full((1, *rgb.shape[1:]), 7, rgb.dtype)
    four = {**profile, "count": 4, "photometric": "MINISBLACK"}  # stored B08, B02, B03, B04
    with rasterio.open(scene, "w", **four) as dst:
        dst.write(np.concatenate([nir, rgb[::-1]]))
    composite_item(scene, ["B08", "B02", "B03", "B04"])
    explorer = Explorer(resolve_files(out))
    assert json.loads(bare.with_suffix(".item.json").read_text())["assets"]["data"][
        "classification:classes"][3]["name"] == "land_use_3"
    legend = explorer.legend()["classes"]
    assert [c["name"] for c in legend] == classes
    assert [c["color"] for c in legend] == [f"#{10 * i:02x}8040" for i in range(10)]
    assert explorer.composite.rgb == (4, 3, 2)


def test_a_monthly_composite_opens_on_its_clearest_month(made, tmp_path):
    from senclip.explore.composite import CompositeLayer, clm_rule
    from senclip.explore.sources import read_item

    path = monthly_composite(tmp_path / "monthly.tif", 256, ["B02", "B03", "B04", "B08"], clear_month=7)
    layer = CompositeLayer(path, read_item(path.with_name("monthly.item.json")))
    assert [m["label"] for m in layer.months] == [f"2022-{m:02d}" for m in range(1, 13)]
    assert [m["flagged"] for m in layer.months] == [1.0] * 2 + [0.5] + [1.0] * 3 + [0.0] + [1.0] * 5
    assert layer.month == 7 and layer.rgb == (5 * 6 + 3, 5 * 6 + 2, 5 * 6 + 1)  # B04, B03, B02 of July
    assert layer.rgb_by_month[0] == (3, 2, 1)
    lon, lat, _ = cell_centres_lonlat(path)
    x, y, px, py = tile_of(lon[0], lat[0], 15)
    for month, dn in ((None, 700), (2, 200)):  # July unless asked
        png = layer.tile(15, x, y, 0.0, 2000.0, month)
        pixel = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[int(py), int(px)]
        assert np.abs(pixel[:3].astype(int) - dn / 2000 * 255).max() <= 1, (month, pixel)
    with pytest.raises(NotFound, match="month 13"):
        layer.tile(15, x, y, month=13)
    assert clm_rule(["2022-01 no clear observation (1 = filled)"]) == ("flagged", 1)
    assert clm_rule(["1 = clear, 2 = gap filled"]) == ("flagged", 2)
    assert clm_rule(["0 = clear observation"]) == ("clear", 0)
    assert clm_rule(["CLM"]) == ("nonzero", 0)


def test_a_composite_without_red_green_and_blue_is_refused_named_and_left_out_found(made, tmp_path):
    """The area pipeline's monthly composite for a TimeSenCLIP model of bands B04, B08: no true colour.
    Named with --composite: one line; found through the class map's Item: left out with a note."""
    path = monthly_composite(tmp_path / "monthly.tif", 256, ["B04", "B08"], clear_month=1)
    with pytest.raises(SenclipError, match=r"needs red, green and blue.*B04, B08, CLM in each of 12 months"):
        Explorer(resolve_files(made.map, composite=path))
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(made.map, out / "lulc.tif")
    class_map_item(out / "lulc.tif", made.classes, colours_of(made.map, 10),
                   **{"senclip:composite": "../monthly.tif"})
    files = resolve_files(out / "lulc.tif")
    assert files.composite == path and files.found == ("composite",)
    explorer = Explorer(files)
    assert explorer.composite is None and "composite" not in explorer.info()["layers"]
    assert len(explorer.notes) == 1 and "needs red, green and blue" in explorer.notes[0]


def test_folder_errors_are_one_line(area_folder, tmp_path):
    out, names = area_folder
    second = out / "other.tif"
    shutil.copyfile(names["map"], second)
    class_map_item(second, ["a"], [(0, 0, 0)])
    with pytest.raises(SenclipError, match=r"2 class-map files .*landuse\.tif.*other\.tif"):
        resolve_files(out)
    second.with_suffix(".item.json").unlink()
    outside = tmp_path / "outside.tif"
    shutil.copyfile(names["map"], outside)
    item = json.loads(names["probs"].with_suffix(".item.json").read_text())
    item["assets"]["data"]["href"] = "../outside.tif"
    names["probs"].with_suffix(".item.json").write_text(json.dumps(item))
    with pytest.raises(SenclipError, match="outside"):
        resolve_files(out)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SenclipError, match="no class map"):
        resolve_files(empty)
    with pytest.raises(SenclipError, match="file not found"):
        resolve_files(tmp_path / "missing.tif")
    (empty / "broken.item.json").write_text("{not json")
    with pytest.raises(SenclipError, match="not a STAC Item"):
        resolve_files(empty)


def test_files_that_are_not_what_they_are_named_as(made):
    with pytest.raises(SenclipError, match="one uint8 band"):
        Explorer(resolve_files(made.scene))
    with pytest.raises(SenclipError, match="red, green and blue"):
        Explorer(resolve_files(made.map, composite=made.map))
    with pytest.raises(SenclipError, match="need a model"):
        Explorer(resolve_files(made.map, embeddings=made.tiles))
