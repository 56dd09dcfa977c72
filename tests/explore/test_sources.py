"""Which files the explorer reads: named ones, or an area run's folder found by its STAC Items.

The area pipeline (issue 23) is built beside this one, so these tests write the Items themselves,
with pystac, in the shape docs/explore.md ("Folder input") and the contract between the two give.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import transform_bounds

from senclip.errors import SenclipError
from senclip.explore import Explorer, resolve_files

S2 = [("B02", "blue"), ("B03", "green"), ("B04", "red"), ("B08", "nir")]
EXTENSIONS = ["https://stac-extensions.github.io/projection/v2.0.0/schema.json",
              "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
              "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
              "https://stac-extensions.github.io/eo/v1.1.0/schema.json"]


def write_item(tif, product: str, properties=None, asset_fields=None, href=None):
    """``<tif without .tif>.item.json``: an Item of ``product`` with its ``data`` asset relative to it."""
    with rasterio.open(tif) as ds:
        bbox = list(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds))
        proj = {"proj:code": ds.crs.to_string(), "proj:shape": list(ds.shape),
                "proj:transform": list(ds.transform)[:6]}
    west, south, east, north = bbox
    item = pystac.Item(
        id=tif.stem, bbox=bbox, datetime=datetime(2023, 6, 1, tzinfo=timezone.utc),
        geometry={"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                      [west, north], [west, south]]]},
        properties={"senclip:product": product, **proj, **(properties or {})}, stac_extensions=EXTENSIONS)
    item.add_asset("data", pystac.Asset(href or f"./{tif.name}", media_type=pystac.MediaType.COG,
                                        roles=["data"], extra_fields=asset_fields or {}))
    path = tif.with_name(tif.stem + ".item.json")
    path.write_text(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False)))
    return path


@pytest.fixture
def area_folder(made, tmp_path):
    """An area run's folder: the class map, its probabilities and (in a subfolder) its composite."""
    out = tmp_path / "out"
    (out / "composites").mkdir(parents=True)
    names = {"map": out / "landuse.tif", "probs": out / "landuse_probs.tif",
             "scene": out / "composites" / "summer.tif"}
    for key, path in names.items():
        shutil.copyfile(getattr(made, key), path)
    classes = [{"value": i, "name": n, "color_hint": "00ff00"} for i, n in enumerate(made.classes)]
    write_item(names["map"], "class-map", {"classification:classes": classes,
                                           "senclip:model": {"architecture": "senclip-tiny-vit"}},
               {"raster:bands": [{"nodata": 255, "data_type": "uint8"}]})
    write_item(names["probs"], "probabilities", {"senclip:classes": made.classes},
               {"raster:bands": [{"name": c, "data_type": "float32"} for c in made.classes]})
    write_item(names["scene"], "composite", {},
               {"eo:bands": [{"name": n, "common_name": c} for n, c in S2[:3]]})
    return out, names


def test_a_folder_is_read_through_its_items(area_folder):
    out, names = area_folder
    files = resolve_files(out)
    assert files.class_map == names["map"].resolve() and files.probabilities == names["probs"].resolve()
    assert files.composite == names["scene"].resolve() and files.embeddings is None
    assert dict(files.items)["class-map"] == names["map"].with_suffix(".item.json").resolve()
    explorer = Explorer(files)
    assert explorer.info()["layers"].keys() == {"classes", "composite", "probability"}


def test_named_files_win_over_the_folder(area_folder, made):
    out, _ = area_folder
    files = resolve_files(out, composite=made.scene)
    assert files.composite == made.scene and "composite" not in dict(files.items)


def test_class_names_colours_and_bands_from_the_items_when_the_files_lack_them(area_folder, made):
    """A class map without senclip's tags and colour table, a composite whose bands are not described."""
    out, names = area_folder
    with rasterio.open(made.map) as src:
        data, profile = src.read(), src.profile
    bare = out / "bare.tif"
    with rasterio.open(bare, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(data)
    write_item(bare, "class-map", {"classification:classes": [
        {"value": i, "name": f"land {i}", "color_hint": f"{10 * i:02x}8040"} for i in range(10)]})
    names["map"].with_suffix(".item.json").unlink()
    with rasterio.open(made.scene) as src:
        rgb, profile = src.read(), src.profile
    scene = out / "composites" / "summer.tif"
    nir = np.full((1, *rgb.shape[1:]), 7, rgb.dtype)
    four = {**profile, "count": 4, "photometric": "MINISBLACK"}  # stored B08, B02, B03, B04
    with rasterio.open(scene, "w", **four) as dst:
        dst.write(np.concatenate([nir, rgb[::-1]]))
    write_item(scene, "composite", {}, {"eo:bands": [{"name": n, "common_name": c}
                                                     for n, c in [S2[3], *S2[:3]]]})
    explorer = Explorer(resolve_files(out))
    legend = explorer.legend()["classes"]
    assert [c["name"] for c in legend] == [f"land {i}" for i in range(10)]
    assert [c["color"] for c in legend] == [f"#{10 * i:02x}8040" for i in range(10)]
    assert explorer.composite.rgb == (4, 3, 2)


def test_folder_errors_are_one_line(area_folder, tmp_path):
    out, names = area_folder
    second = out / "other.tif"
    shutil.copyfile(names["map"], second)
    write_item(second, "class-map")
    with pytest.raises(SenclipError, match=r"2 class-map files .*landuse\.tif.*other\.tif"):
        resolve_files(out)
    second.with_suffix(".item.json").unlink()
    outside = tmp_path / "outside.tif"
    shutil.copyfile(names["map"], outside)
    write_item(names["probs"], "probabilities", href="../outside.tif")
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
