"""``map --bbox`` and ``map-pixels --bbox --year``: the same classes as mapping the composite by hand,
a class-map COG with a STAC Item (classification extension, model identity) and a QGIS style."""

from __future__ import annotations

import json

import numpy as np
import pystac
import rasterio
from area_helpers import BBOX

from senclip.cli import main

STAC = ("--collection", "cdse", "--backoff", "0.01")
TINY = ("--model", "senclip-tiny-vit", "--precision", "fp32", "--batch-size", "1", "--no-progress")


def _classes(path):
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs


def test_map_bbox_equals_map_of_the_composite(area_stac, tiny_vit_file, tmp_path):
    from pystac.extensions.classification import ClassificationExtension

    composite = tmp_path / "composite.tif"
    assert (
        main(
            [
                "composite",
                "--bbox",
                BBOX,
                "--time",
                "2022-01-01/2022-03-31",
                "--stac-url",
                area_stac.url,
                *STAC,
                "--out",
                str(composite),
                "--block-size",
                "64",
                "--no-progress",
            ]
        )
        == 0
    )
    by_hand = tmp_path / "by_hand.tif"
    assert (
        main(
            [
                "map",
                str(composite),
                str(by_hand),
                *TINY,
                "--pretrained",
                str(tiny_vit_file),
                "--stride",
                "32",
                "--prompts",
                "generic",
            ]
        )
        == 0
    )
    out = tmp_path / "area" / "landuse.tif"
    out.parent.mkdir()
    assert (
        main(
            [
                "map",
                "--bbox",
                BBOX,
                "--time",
                "2022-01-01/2022-03-31",
                "--stac-url",
                area_stac.url,
                *STAC,
                str(out),
                *TINY,
                "--pretrained",
                str(tiny_vit_file),
                "--stride",
                "32",
                "--prompts",
                "generic",
                "--block-size",
                "64",
            ]
        )
        == 0
    )
    got, want = _classes(out), _classes(by_hand)
    assert got[1:] == want[1:] and got[0].shape == (4, 7)  # 32 px cells of the 210 x 109 px area
    assert (got[0] == want[0]).all() and len(np.unique(got[0][:3])) > 1
    assert (got[0][:3] != 255).all() and (got[0][3] == 255).all()  # the last row: 13 of 32 px, < --min-valid
    cached = out.parent / "landuse_composites" / "composite.tif"
    assert cached.read_bytes() == composite.read_bytes()  # the composite the map used, the same bytes
    names = sorted(p.name for p in out.parent.iterdir() if not p.name.startswith("."))
    assert names == [
        "landuse.item.json",
        "landuse.legend.json",
        "landuse.png",
        "landuse.qml",
        "landuse.tif",
        "landuse_composites",
    ]  # the map's work folder is gone
    kept = sorted(p.name for p in cached.parent.iterdir())
    assert kept == ["composite.blocks", "composite.item.json", "composite.tif"]

    item = pystac.Item.from_file(str(out.with_name("landuse.item.json")))
    assert item.properties["senclip:product"] == "class-map"
    classes = ClassificationExtension.ext(item.assets["data"]).classes
    legend = json.loads(out.with_suffix(".legend.json").read_text())
    assert [(c.value, c.title, "#" + c.color_hint.lower()) for c in classes] == [
        (c["value"], c["name"], c["color"]) for c in legend["classes"]
    ]
    model = item.properties["senclip:model"]
    import hashlib

    assert model["weights_sha256"]["pretrained"] == hashlib.sha256(tiny_vit_file.read_bytes()).hexdigest()
    assert model["architecture"] == "senclip-tiny-vit" and model["precision"] == "fp32"
    assert model["prompts"]["prompts"] == "generic"
    assert item.properties["proj:code"] == "EPSG:32632" and item.properties["proj:shape"] == [4, 7]
    assert item.assets["data"].extra_fields["raster:bands"][0]["nodata"] == 255
    assert item.properties["senclip:composite"] == "./landuse_composites/composite.tif"
    qml = out.with_suffix(".qml").read_text()
    assert all(f'label="{c["name"]}"' in qml for c in legend["classes"])
    # the plain map writes its Item and style too
    plain = json.loads((tmp_path / "by_hand.item.json").read_text())
    assert plain["properties"]["senclip:product"] == "class-map"
    assert (tmp_path / "by_hand.qml").is_file()


def test_map_bbox_on_dask_gives_the_identical_map(area_stac, tiny_vit_file, tmp_path):
    from distributed import LocalCluster

    args = [
        "map",
        "--bbox",
        BBOX,
        "--time",
        "2022-01-01/2022-03-31",
        "--stac-url",
        area_stac.url,
        *STAC,
        *TINY,
        "--pretrained",
        str(tiny_vit_file),
        "--block-size",
        "64",
        "--no-quicklook",
        "--prompts",
        "generic",
    ]
    assert main([*args, str(tmp_path / "local.tif")]) == 0
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        assert main([*args, str(tmp_path / "dask.tif"), "--dask-scheduler", cluster.scheduler_address]) == 0
    assert (tmp_path / "dask.tif").read_bytes() == (tmp_path / "local.tif").read_bytes()


def test_map_pixels_bbox_equals_map_pixels_of_the_monthly_composite(
    area_stac, tiny_timesen_file, tiny_vit_file, tmp_path
):
    model = (
        "--model",
        "senclip-tiny-vit",
        "--pretrained",
        str(tiny_vit_file),
        "--checkpoint",
        str(tiny_timesen_file),
        "--precision",
        "fp32",
        "--no-progress",
        "--prompts",
        "generic",
    )
    out = tmp_path / "lulc.tif"
    assert (
        main(
            [
                "map-pixels",
                "--bbox",
                BBOX,
                "--year",
                "2022",
                "--stac-url",
                area_stac.url,
                *STAC,
                str(out),
                *model,
                "--block-size",
                "128",
            ]
        )
        == 0
    )
    monthly = tmp_path / "lulc_composites" / "monthly.tif"
    by_hand = tmp_path / "by_hand.tif"
    assert main(["map-pixels", str(monthly), str(by_hand), *model]) == 0
    got, want = _classes(out), _classes(by_hand)
    assert got[1:] == want[1:]
    assert (got[0] == want[0]).all()
    assert (got[0] == 255).mean() < 0.05 and len(np.unique(got[0])) > 1
    item = json.loads((tmp_path / "lulc.item.json").read_text())
    assert item["properties"]["senclip:product"] == "class-map"
    mitem = json.loads((tmp_path / "lulc_composites" / "monthly.item.json").read_text())
    assert mitem["properties"]["senclip:product"] == "monthly-composite"
    assert [b["name"] for b in mitem["assets"]["data"]["eo:bands"][:3]] == ["B04", "B08", "CLM"]


def test_published_weights_are_the_default_and_stop_offline_in_one_line(
    area_stac, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("SENCLIP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "m" / "landuse.tif"
    args = [
        "map",
        "--bbox",
        BBOX,
        "--time",
        "2022-01-01/2022-03-31",
        "--stac-url",
        area_stac.url,
        *STAC,
        str(out),
        "--no-progress",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "senclip-vit-b-32-avgpool" in err[0], err
    assert str(tmp_path / "cache" / "weights" / "senclip-vit-b-32-avgpool") in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())
    out2 = tmp_path / "p" / "lulc.tif"
    assert (
        main(
            [
                "map-pixels",
                "--bbox",
                BBOX,
                "--year",
                "2022",
                "--stac-url",
                area_stac.url,
                str(out2),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "HF_HUB_OFFLINE" in err[0], err
    assert not out2.parent.exists() or not any(out2.parent.iterdir())
