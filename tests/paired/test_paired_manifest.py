"""Manifest reading and validation: each kind of bad row, --skip-bad, formats."""

from __future__ import annotations

import logging
import math
import shutil

import pandas as pd
import pytest

from senclip.data.manifest import VIEWS, read_manifest, write_manifest
from senclip.errors import SenclipError


def test_valid_manifest_resolves_relative_paths(tmp_path, jpgs):
    shutil.copy(jpgs[0], tmp_path / "chip.jpg")
    shutil.copy(jpgs[1], tmp_path / "north.jpg")
    df = pd.DataFrame([{"point_id": "a", "lat": 48.1, "lon": 11.5, "date": "2018-05-02",
                        "sat_path": "chip.jpg", "photo_N": "north.jpg", "lc1": "C21"}])
    write_manifest(df, tmp_path / "m.csv")
    out = read_manifest(tmp_path / "m.csv")
    assert out.loc[0, "sat_path"] == str(tmp_path / "chip.jpg")
    assert out.loc[0, "photo_N"] == str(tmp_path / "north.jpg")
    assert out.loc[0, "photo_E"] is None and out.loc[0, "lc1"] == "C21"
    assert VIEWS == ("N", "E", "S", "W", "P")


def test_parquet_round_trip(tmp_path, frame):
    df = frame(4)
    write_manifest(df, tmp_path / "m.parquet")
    assert not list(tmp_path.glob("*.partial"))
    out = read_manifest(tmp_path / "m.parquet")
    assert list(out["point_id"]) == list(df["point_id"])
    assert out["lat"].tolist() == df["lat"].tolist()


def _bad(frame, tmp_path, i, **change):
    df = frame(4)
    for k, v in change.items():
        df.loc[i, k] = v
    return write_manifest(df, tmp_path / "m.csv")


@pytest.mark.parametrize(("change", "message"), [
    ({"sat_path": "/nonexistent/chip.jpg"}, "row 3 point 'pt002': sat_path not found"),
    ({"photo_P": "missing_photo.jpg"}, "row 3 point 'pt002': photo_P not found"),
    ({"lat": 95.0}, "row 3 point 'pt002': lat 95 outside -90..90"),
    ({"lon": -181.0}, "lon -181 outside -180..180"),
    ({"lat": 6.0, "lon": 46.0}, "row 3 point 'pt002': lat/lon look swapped"),
    ({"point_id": "pt000"}, "row 3 point 'pt000': duplicate point_id"),
    ({"lat": float("nan")}, "lat/lon missing"),
    ({"date": "yesterday"}, "is not a date"),
])
def test_each_bad_row_kind_stops(tmp_path, frame, change, message):
    path = _bad(frame, tmp_path, 2, **change)
    with pytest.raises(SenclipError) as err:
        read_manifest(path)
    text = str(err.value)
    assert message in text
    assert text.startswith(f"{path}: 1 bad row (") and text.endswith("fix them or pass --skip-bad")
    assert "\n" not in text


def test_unreadable_chip(tmp_path, frame):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    path = _bad(frame, tmp_path, 1, sat_path=str(broken))
    with pytest.raises(SenclipError, match=r"row 2 point 'pt001': sat_path unreadable"):
        read_manifest(path)


def test_point_without_photos_is_bad_unless_proxy(tmp_path, frame):
    df = frame(3)
    for c in ("photo_N", "photo_E", "photo_S", "photo_W", "photo_P"):
        df.loc[1, c] = ""
    df.loc[1, ["lat", "lon"]] = float("nan")
    write_manifest(df, tmp_path / "m.csv")
    with pytest.raises(SenclipError, match="no ground photo"):
        read_manifest(tmp_path / "m.csv")
    df["proxy"] = [False, True, False]
    write_manifest(df, tmp_path / "m.csv")
    out = read_manifest(tmp_path / "m.csv")
    assert math.isnan(out.loc[1, "lat"]) and len(out) == 3


def test_skip_bad_reports_and_drops(tmp_path, frame, caplog):
    df = frame(6)
    df.loc[1, "lat"] = 95.0
    df.loc[3, "point_id"] = "pt000"
    df.loc[4, "sat_path"] = "nope.jpg"
    write_manifest(df, tmp_path / "m.csv")
    with pytest.raises(SenclipError, match=r"3 bad rows \(first: row 2 point 'pt001'.*row 4.*row 5"):
        read_manifest(tmp_path / "m.csv")
    with caplog.at_level(logging.WARNING, logger="senclip.data.manifest"):
        out = read_manifest(tmp_path / "m.csv", skip_bad=True)
    assert list(out["point_id"]) == ["pt000", "pt002", "pt005"]
    assert [b["row"] for b in out.attrs["bad_rows"]] == [2, 4, 5]
    assert sum("skipping row" in r.message for r in caplog.records) == 3


def test_check_files_false_skips_disk(tmp_path, frame):
    path = _bad(frame, tmp_path, 0, sat_path="/nonexistent/chip.jpg")
    assert len(read_manifest(path, check_files=False)) == 4


def test_structural_errors(tmp_path, frame):
    with pytest.raises(SenclipError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")
    pd.DataFrame({"point_id": ["a"], "lat": [1.0]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(SenclipError, match=r"lacks column.*lon, sat_path"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(SenclipError, match=r"must be \.csv or \.parquet"):
        read_manifest(tmp_path / "m.txt")


def test_cli_bad_manifest_exits_2_and_writes_nothing(cli, tmp_path, frame, capsys):
    path = _bad(frame, tmp_path, 0, lat=95.0)
    out = tmp_path / "cache"
    status = cli(["embed-ground", "--manifest", str(path), "--model", "senclip-tiny-vit",
                  "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and "lat 95 outside" in err and "--skip-bad" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
