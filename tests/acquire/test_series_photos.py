"""``acquire series`` (monthly composites) and ground-photo download, against the loopback servers."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import rasterio

from senclip.cli import main
from senclip.testing import RangeServerProcess

from .test_resilience import _HealOnRetry

SERIES_CHIP = 48


def _source(assets, item, band):
    with rasterio.open(assets / item / f"{band}.tif") as src:
        a = src.read(1).astype(np.float32)
        factor = round(src.res[0] / 10)
    return np.repeat(np.repeat(a, factor, 0), factor, 1)


def test_series_monthly_median_with_scl_mask(loopback, points_csv, tmp_path):
    df = pd.read_csv(points_csv, dtype={"point_id": str})
    pts = tmp_path / "pt1.csv"
    df[df["point_id"] == "pt1"].to_csv(pts, index=False)
    out = tmp_path / "series"
    rc = main(
        [
            "acquire",
            "series",
            "--points",
            str(pts),
            "--stac-url",
            loopback.url,
            "--out",
            str(out),
            "--year",
            "2017",
            "--chip-px",
            str(SERIES_CHIP),
            "--bands",
            "B04,B8A",
            "--no-progress",
        ]
    )
    assert rc == 0
    rec = json.loads((out / "series.jsonl").read_text().splitlines()[0])
    assert rec["items"] == ["P1_A_20170613", "P1_B_20170618", "P1_C_20170801"]
    rows = slice(60 - SERIES_CHIP // 2, 60 + SERIES_CHIP // 2)
    cols = slice(61 - SERIES_CHIP // 2, 61 + SERIES_CHIP // 2)
    # scene B has SCL cloud over 10 m rows/cols 40..79 of the patch: June = mean(A, B) where B is clear,
    # A alone under B's cloud; August = C; other months empty
    cloud_b = np.zeros((120, 120), bool)
    cloud_b[40:80, 40:80] = True
    with rasterio.open(out / "series" / "pt1.tif") as stack:
        assert stack.count == 12 * 3 and stack.shape == (SERIES_CHIP, SERIES_CHIP)
        assert stack.tags()["bands"] == "B04,B8A" and stack.tags()["dates"].split(",")[5] == "2017-06-15"
        data = stack.read().reshape(12, 3, SERIES_CHIP, SERIES_CHIP)
    for j, band in enumerate(["B04", "B8A"]):
        a, b, c = (
            _source(loopback.assets, i, band)[rows, cols]
            for i in ("P1_A_20170613", "P1_B_20170618", "P1_C_20170801")
        )
        june = np.where(cloud_b[rows, cols], a, (a + b) / 2)
        np.testing.assert_allclose(data[5, j], june)
        np.testing.assert_allclose(data[7, j], c)
        assert np.isnan(data[[0, 1, 2, 3, 4, 6, 8, 9, 10, 11], j]).all()
    assert (data[:, 2] == 1).sum() == 10 * SERIES_CHIP**2 and (data[[5, 7], 2] == 0).all()  # CLM band
    manifest = pd.read_csv(out / "series_manifest.csv")
    assert manifest.loc[0, "series_path"] == "series/pt1.tif" and manifest.loc[0, "clear_months"] == 2


@pytest.fixture
def photo_server(tmp_path):
    root = tmp_path / "photos_src"
    (root / "2017").mkdir(parents=True)
    for name in ("pt1N", "pt1E", "pt1S", "pt1W", "pt1P", "pt2P"):  # pt2 has only its point photo
        (root / "2017" / f"{name}.jpg").write_bytes(name.encode() * 1000)
    with RangeServerProcess(root) as srv:
        yield srv


def test_chips_with_photos_build_a_valid_paired_manifest(
    loopback, points_csv, photo_server, tmp_path, capsys
):
    from senclip.data.manifest import read_manifest

    df = pd.read_csv(points_csv, dtype={"point_id": str})
    pts = tmp_path / "two.csv"
    df[df["point_id"].isin(["pt1", "pt2"])].to_csv(pts, index=False)
    out = tmp_path / "o"
    photo_server.faults.add("pt1W.jpg", "503", times=None)
    heal = _HealOnRetry(photo_server.faults)
    logging.getLogger("senclip.net").addHandler(heal)
    try:
        rc = main(
            [
                "acquire",
                "chips",
                "--points",
                str(pts),
                "--stac-url",
                loopback.url,
                "--out",
                str(out),
                "--chip-px",
                "16",
                "--no-progress",
                "--backoff",
                "0.05",
                "--photo-url-template",
                "{base}/{year}/{point_id}{direction}.jpg",
                "--photo-base",
                photo_server.url().rstrip("/"),
            ]
        )
    finally:
        logging.getLogger("senclip.net").removeHandler(heal)
    assert rc == 0 and any("pt1W.jpg" in m for m in heal.messages)  # the 503 was retried
    assert (out / "photos" / "pt1_W.jpg").read_bytes() == b"pt1W" * 1000
    m = read_manifest(out / "manifest.csv")  # senclip.data.manifest validation: files exist, chips open
    assert m["point_id"].tolist() == ["pt1", "pt2"]
    assert m.loc[1, "photo_N"] is None and m.loc[1, "photo_P"].endswith("photos/pt2_P.jpg")
    assert all(m.loc[0, f"photo_{v}"].endswith(f"pt1_{v}.jpg") for v in "NESWP")
    rec = {r["point_id"]: r for r in map(json.loads, (out / "photos.jsonl").read_text().splitlines())}
    assert rec["pt2"]["views"]["N"]["status"] == "missing"

    photo_server.reset_stats()
    rc = main(
        [
            "acquire",
            "photos",
            "--points",
            str(pts),
            "--out",
            str(out),
            "--no-progress",
            "--photo-url-template",
            "{base}/{year}/{point_id}{direction}.jpg",
            "--photo-base",
            photo_server.url().rstrip("/"),
        ]
    )
    assert rc == 0 and sum(photo_server.requests.values()) == 0  # resumed: nothing fetched again
    assert "6 photos, 4 missing" in capsys.readouterr().err

    # the series of the same points, in the same folder, form a paired manifest with the same photos
    rc = main(["acquire", "series", "--points", str(pts), "--stac-url", loopback.url, "--out", str(out),
               "--year", "2017", "--no-progress"])
    series = read_manifest(out / "series_manifest.csv")  # validated: series and photos exist
    assert "pt1" in series["point_id"].tolist() and series["sat_path"].isna().all()
    for view in "NESWP":
        assert series.set_index("point_id").loc["pt1", f"photo_{view}"] == m.loc[0, f"photo_{view}"]


def test_photo_template_with_unknown_field_is_a_user_error(points_csv, tmp_path, capsys):
    rc = main(
        [
            "acquire",
            "photos",
            "--points",
            str(points_csv),
            "--out",
            str(tmp_path / "o"),
            "--photo-url-template",
            "{base}/{nuts9}/{point_id}.jpg",
            "--no-progress",
        ]
    )
    assert rc == 2 and "unknown field(s) nuts9" in capsys.readouterr().err
