"""``senclip acquire chips`` end to end against rustac serve + the loopback COG server."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio

from senclip.cli import main

from .conftest import POINTS, SCENES

BANDS = ["B04", "B03", "B02", "B8A", "B11"]  # mixed order and resolutions (10 m then 20 m)
CHIP = 32


def chips_args(loopback, points, out, *extra):
    return [
        "acquire",
        "chips",
        "--points",
        str(points),
        "--stac-url",
        loopback.url,
        "--out",
        str(out),
        "--chip-px",
        str(CHIP),
        "--bands",
        ",".join(BANDS),
        "--window-days",
        "30",
        "--max-cloud",
        "20",
        "--no-progress",
        "--backoff",
        "0.05",
        *extra,
    ]


@pytest.fixture(scope="module")
def run(loopback, points_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("chips")
    loopback.cogs.reset_stats()
    rc = main(chips_args(loopback, points_csv, out))
    journal = {r["point_id"]: r for r in map(json.loads, (out / "chips.jsonl").read_text().splitlines())}
    return {"rc": rc, "out": out, "journal": journal, "bytes": dict(loopback.cogs.bytes_sent)}


def _expected(assets, item_id, band, row, col):
    """Direct rasterio read of the source asset around pixel (row, col) of the 10 m grid."""
    with rasterio.open(assets / item_id / f"{band}.tif") as src:
        a = src.read(1)
        factor = round(src.res[0] / 10)
    a = np.repeat(np.repeat(a, factor, 0), factor, 1)
    h = CHIP // 2
    return a[row - h : row + h, col - h : col + h]


def test_statuses_and_chosen_scenes(run):
    j = run["journal"]
    assert run["rc"] == 0
    assert {k: v["status"] for k, v in j.items()} == {
        "pt1": "ok",
        "pt2": "ok",
        "pt3": "cloudy",
        "pt4": "ok",
        "pt5": "ok",
        "pt_far": "no-scene",
    }
    # least cloud over the chip, inside the window: A (scene 60 % cloud, clear at the point) beats
    # B (5 % scene cloud, cloud over the point) and C (cloud-free, outside ±30 days)
    assert j["pt1"]["item_id"] == "P1_A_20170613" and j["pt1"]["cloud_source"] == "scl"
    assert j["pt1"]["cloud_percent"] == 0.0
    assert j["pt3"]["cloud_percent"] == 100.0
    assert j["pt4"]["cloud_source"] == "item" and j["pt4"]["cloud_percent"] == 15.0  # no SCL asset
    assert j["pt5"]["item_id"] == "P5_20170924"  # Earth Search style asset keys (red, nir08, …)


def test_chip_grid_bands_and_pixels_match_direct_reads(run, loopback):
    scenes = {s.item_id: s for s in SCENES}
    for pid, patch, row, col, _ in POINTS:
        rec = run["journal"][pid]
        if rec["status"] != "ok":
            continue
        with rasterio.open(loopback.bigearthnet / patch / f"{patch}_B02.tif") as ref:
            crs, t = ref.crs, ref.transform
        with rasterio.open(run["out"] / rec["sat_path"]) as chip:
            assert chip.crs == crs
            assert chip.shape == (CHIP, CHIP) and chip.count == len(BANDS)
            assert chip.transform.almost_equals(
                rasterio.Affine(10, 0, t.c + (col - CHIP // 2) * 10, 0, -10, t.f - (row - CHIP // 2) * 10)
            )
            assert list(chip.descriptions) == BANDS
            tags = chip.tags()
            assert tags["item_id"] == rec["item_id"] and tags["point_id"] == pid
            data = chip.read()
        for i, band in enumerate(BANDS):
            np.testing.assert_array_equal(data[i], _expected(loopback.assets, rec["item_id"], band, row, col))
        if scenes[rec["item_id"]].offset == 0:  # the assets hold the real BigEarthNet values
            with rasterio.open(loopback.bigearthnet / patch / f"{patch}_B04.tif") as src:
                h = CHIP // 2
                np.testing.assert_array_equal(data[0], src.read(1)[row - h : row + h, col - h : col + h])


def test_manifest_format(run):
    from senclip.data.manifest import PHOTO_COLUMNS

    df = pd.read_csv(run["out"] / "manifest.csv", dtype={"point_id": str})
    assert df["point_id"].tolist() == ["pt1", "pt2", "pt4", "pt5"]  # input order, chips only
    assert list(df.columns[:10]) == ["point_id", "lat", "lon", "date", "sat_path", *PHOTO_COLUMNS]
    assert df["sat_path"].tolist() == [f"chips/{p}.tif" for p in df["point_id"]]
    assert df["lc1"].tolist() == ["C0", "C1", "C3", "C4"]  # label columns carried through
    assert df["date"].iloc[0] == "2017-06-20" and df["item_id"].iloc[0] == "P1_A_20170613"


def test_only_needed_bytes_are_read(run, loopback):
    """Scenes never chosen are only probed (header + SCL), never read for bands."""
    sent = run["bytes"]
    assert "/P1_C_20170801/B04.tif" not in sent  # outside the window: never touched
    assert "/P1_B_20170618/B03.tif" not in sent  # ranked below A: only its B04 header and SCL read
    assert sent["/P1_B_20170618/SCL.tif"] > 0


def test_summary_lists_points_without_clear_scene(loopback, points_csv, tmp_path, capsys):
    rc = main(chips_args(loopback, points_csv, tmp_path / "o"))
    err = capsys.readouterr().err
    assert rc == 0
    assert "no clear scene: pt3" in err and "no scene in the window: pt_far" in err
    assert "4 ok" in err


def test_option_change_refuses_to_resume(loopback, points_csv, run, capsys):
    rc = main([*chips_args(loopback, points_csv, run["out"])[:-2], "--max-cloud", "50"])
    err = capsys.readouterr().err
    assert rc == 2 and "other options (max_cloud differ)" in err


def test_unknown_band_is_a_failed_point_not_a_crash(loopback, points_csv, tmp_path, capsys):
    args = chips_args(loopback, points_csv, tmp_path / "o")
    args[args.index("--bands") + 1] = "B04,B99"
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2 and "no asset for band B99" in err
