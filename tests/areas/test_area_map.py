"""``map --area|--bbox`` and ``map-pixels --bbox --year``: the same classes as mapping the composite by hand,
a class-map COG with a STAC Item (classification extension, model identity) and a QGIS style."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from area_helpers import BBOX, kill_after_blocks

from senclip.cli import main

STAC = ("--collection", "cdse", "--backoff", "0.01")
TINY = ("--model", "senclip-tiny-vit", "--precision", "fp32", "--batch-size", "1", "--no-progress")
SEASON = ("--time", "2022-01-01/2022-03-31")


def run(argv) -> int:
    return main([str(a) for a in argv])


def _classes(path):
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs


def _polygon_file(path):
    """The test area as a GeoJSON polygon: its edges curve in UTM, so a few corner pixels are masked."""
    w, s, e, n = (float(v) for v in BBOX.split(","))
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


def test_map_area_equals_map_of_the_composite(area_stac, tiny_vit_file, tmp_path, monkeypatch):
    from pystac.extensions.classification import ClassificationExtension

    import senclip.mapping.writers as writers

    described = []  # (Item, whether its raster was in place when it was written)
    write_item = writers.write_item
    monkeypatch.setattr(writers, "write_item", lambda raster, item: (described.append((Path(raster).name,
                        Path(raster).is_file())), write_item(raster, item))[1])

    area = _polygon_file(tmp_path / "test.geojson")
    composite = tmp_path / "composite.tif"
    assert run(["composite", "--area", area, "--stac-url", area_stac.url, *STAC, *SEASON,
                 "--out", composite, "--block-size", "64", "--no-progress"]) == 0
    by_hand = tmp_path / "by_hand.tif"
    assert run(["map", composite, by_hand, *TINY, "--pretrained", tiny_vit_file, "--stride", "32",
                 "--prompts", "generic"]) == 0
    out = tmp_path / "area" / "landuse.tif"
    out.parent.mkdir()
    assert run(["map", "--area", area, "--stac-url", area_stac.url, *STAC, *SEASON, out, *TINY,
                 "--pretrained", tiny_vit_file, "--stride", "32", "--prompts", "generic",
                 "--block-size", "64"]) == 0
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.colormap(1)[0][3] == 255
    got, want = _classes(out), _classes(by_hand)
    assert got[1:] == want[1:] and got[0].shape == (4, 7)  # 32 px cells of the 210 x 109 px area
    assert (got[0] == want[0]).all() and len(np.unique(got[0][:3])) > 1
    assert (got[0][:3] != 255).mean() > 0.8  # all but cells at the polygon's curved edge (masked pixels)
    assert (got[0][3] == 255).all()  # the last row: 13 of 32 px, below --min-valid
    cached = out.parent / "landuse_composites" / "composite.tif"
    assert cached.read_bytes() == composite.read_bytes()  # the composite the map used, the same bytes
    names = sorted(p.name for p in out.parent.iterdir() if not p.name.startswith("."))
    assert names == ["landuse.item.json", "landuse.legend.json", "landuse.png", "landuse.qml", "landuse.tif",
                     "landuse_composites"]  # the map's work folder is gone
    assert sorted(p.name for p in cached.parent.iterdir()) == ["composite.blocks", "composite.item.json",
                                                               "composite.tif"]

    item = pystac.Item.from_file(str(out.with_name("landuse.item.json")))
    assert item.properties["senclip:product"] == "class-map"
    classes = ClassificationExtension.ext(item.assets["data"]).classes
    legend = json.loads(out.with_suffix(".legend.json").read_text())
    assert [(c.value, c.title, "#" + c.color_hint.lower()) for c in classes] == \
        [(c["value"], c["name"], c["color"]) for c in legend["classes"]]
    model = item.properties["senclip:model"]
    assert model["weights_sha256"]["pretrained"] == hashlib.sha256(tiny_vit_file.read_bytes()).hexdigest()
    assert model["architecture"] == "senclip-tiny-vit" and model["precision"] == "fp32"
    assert model["prompts"]["prompts"] == "generic"
    assert item.properties["proj:code"] == "EPSG:32632" and item.properties["proj:shape"] == [4, 7]
    assert item.assets["data"].extra_fields["raster:bands"][0]["nodata"] == 255
    assert item.properties["senclip:composite"] == "./landuse_composites/composite.tif"
    qml = out.with_suffix(".qml").read_text()
    assert all(f'label="{c["name"]}"' in qml for c in legend["classes"])
    plain = json.loads((tmp_path / "by_hand.item.json").read_text())  # the plain map writes its Item too
    assert plain["properties"]["senclip:product"] == "class-map" and (tmp_path / "by_hand.qml").is_file()
    assert described == [("by_hand.tif", True), ("landuse.tif", True)]  # each Item after its COG

    # senclip explore on this output folder (issue 24): the parts found by their Items, the classes read
    # from the class map's Item as written, the class map (whole cells) larger than the composite
    import io

    from PIL import Image
    from rio_tiler.constants import WEB_MERCATOR_TMS

    from senclip.explore import Explorer, resolve_files
    from senclip.explore.layers import item_classes

    files = resolve_files(out.parent)
    assert (files.class_map, files.composite) == (out.resolve(), cached.resolve())
    explorer = Explorer(files)
    named = item_classes(files.item("class_map"))
    assert [c["name"] for c in explorer.legend()["classes"]] == [named[v].title for v in sorted(named)] == \
        [c["name"] for c in legend["classes"]]
    assert sum(c["pixels"] for c in explorer.legend()["classes"]) == (got[0] != 255).sum()
    (s, w), (n, e) = explorer.info()["layers"]["classes"]["bounds"]
    (cs, _), (_, ce) = explorer.info()["layers"]["composite"]["bounds"]
    assert cs > s and ce < e and explorer.info()["bounds"] == [[s, w], [n, e]]

    def alpha(layer, lon, lat):
        tile = WEB_MERCATOR_TMS.tile(lon, lat, 18)
        png = explorer.tile(layer, 18, tile.x, tile.y)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[..., 3]

    corner = (e - 1e-4, s + 1e-4)  # on the class map (its padding cells: no data), off the composite
    assert (alpha("composite", *corner) == 0).all() and (alpha("classes", *corner) == 0).all()
    middle = ((w + e) / 2, (s + n) / 2)
    assert (alpha("composite", *middle) == 255).all() and (alpha("classes", *middle) == 255).any()


def _bbox_map_args(stac, tiny_vit_file) -> list:
    return ["map", "--bbox", BBOX, "--stac-url", stac.url, *STAC, *SEASON, *TINY, "--pretrained",
            tiny_vit_file, "--block-size", "64", "--no-quicklook", "--prompts", "generic", "--download-bands",
            "RGB"]


@pytest.fixture(scope="module")
def bbox_map(area_stac, tiny_vit_file, tmp_path_factory) -> Path:
    """``map --bbox`` in one uninterrupted run, here (8 map blocks of 64 px)."""
    out = tmp_path_factory.mktemp("local") / "local.tif"
    assert run([*_bbox_map_args(area_stac, tiny_vit_file), out]) == 0
    return out


def test_map_bbox_on_dask_gives_the_identical_map(area_stac, tiny_vit_file, bbox_map, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert run([*_bbox_map_args(area_stac, tiny_vit_file), tmp_path / "dask.tif", "--dask-scheduler",
                    cluster.scheduler_address]) == 0
    assert (tmp_path / "dask.tif").read_bytes() == bbox_map.read_bytes()


SLOW_BLOCKS = """
import sys, time
import senclip.areas.maps as maps
block = maps.map_block
def slow(*args):
    time.sleep(0.25)
    return block(*args)
maps.map_block = slow
from senclip.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_mid_map_then_rerun_with_other_run_options_continues(area_stac, tiny_vit_file, bbox_map,
                                                                      tmp_path, monkeypatch):
    """kill -9 while the map's blocks run; a rerun that changes only run options (batch size, workers,
    progress) continues the journalled blocks and writes the same bytes as an uninterrupted run."""
    import senclip.areas.maps as maps

    out = tmp_path / "killed.tif"
    journal = tmp_path / "killed.tif.blocks" / "maps.jsonl"
    cache = bbox_map.with_name("local_composites")  # the composite is reused: the map's blocks are killed
    args = [str(a) for a in [*_bbox_map_args(area_stac, tiny_vit_file), out, "--cache", cache]]
    done = kill_after_blocks(["-c", SLOW_BLOCKS, *args], journal)
    assert 2 <= done < 8 and not out.exists()
    mapped = []
    block = maps.map_block
    monkeypatch.setattr(maps, "map_block", lambda *a: (mapped.append(a[1].name), block(*a))[1])
    rerun = [a for a in args if a != "--no-progress"] + ["--batch-size", "3", "--workers", "1"]
    assert run(rerun) == 0
    assert len(mapped) == 8 - done  # the journalled blocks were kept, not mapped again
    assert out.read_bytes() == bbox_map.read_bytes()
    assert not journal.parent.exists()


def test_map_pixels_bbox_equals_map_pixels_of_the_monthly_composite(area_stac, tiny_timesen_file,
                                                                     tiny_vit_file, tmp_path, monkeypatch):
    from senclip.data.series.rasters import StackSource

    rows_read = []  # rows per read of each composite block file: a block is never read whole
    read = StackSource.read
    monkeypatch.setattr(StackSource, "read", lambda self, rows: (rows_read.append(
        (Path(self.path).parent.name, rows.stop - rows.start)), read(self, rows))[1])
    model = ("--model", "senclip-tiny-vit", "--pretrained", tiny_vit_file, "--checkpoint", tiny_timesen_file,
             "--precision", "fp32", "--no-progress", "--prompts", "generic")
    out = tmp_path / "lulc.tif"
    assert run(["map-pixels", "--bbox", BBOX, "--year", "2022", "--stac-url", area_stac.url, *STAC, out,
                 *model, "--block-size", "128", "--block-rows", "40"]) == 0
    assert rows_read and all(n <= 40 for folder, n in rows_read if folder == "blocks"), rows_read
    monthly = tmp_path / "lulc_composites" / "monthly.tif"
    by_hand = tmp_path / "by_hand.tif"
    assert run(["map-pixels", monthly, by_hand, *model]) == 0
    got, want = _classes(out), _classes(by_hand)
    assert got[1:] == want[1:]
    assert (got[0] == want[0]).all()
    assert (got[0] == 255).mean() < 0.05 and len(np.unique(got[0])) > 1
    item = json.loads((tmp_path / "lulc.item.json").read_text())
    assert item["properties"]["senclip:product"] == "class-map"
    mitem = json.loads((tmp_path / "lulc_composites" / "monthly.item.json").read_text())
    assert mitem["properties"]["senclip:product"] == "monthly-composite"
    assert [b["name"] for b in mitem["assets"]["data"]["eo:bands"][:3]] == ["B04", "B08", "QA"]


def test_published_weights_are_the_default_and_stop_offline_in_one_line(area_stac, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("SENCLIP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "m" / "landuse.tif"
    assert run(["map", "--bbox", BBOX, "--stac-url", area_stac.url, *STAC, *SEASON, str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "senclip-vit-b-32-avgpool" in err[0], err
    assert str(tmp_path / "cache" / "weights" / "senclip-vit-b-32-avgpool") in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())
    out2 = tmp_path / "p" / "lulc.tif"
    assert run(["map-pixels", "--bbox", BBOX, "--year", "2022", "--stac-url", area_stac.url, str(out2),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "HF_HUB_OFFLINE" in err[0], err
    assert not out2.parent.exists() or not any(out2.parent.iterdir())
