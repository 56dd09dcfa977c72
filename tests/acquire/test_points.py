"""Survey-point reading and validation (LUCAS layout, swapped coordinates, dates, duplicates)."""

from __future__ import annotations

import pandas as pd
import pytest

from senclip.acquire.points import read_points, safe_name
from senclip.cli import main
from senclip.errors import SenclipError


def _csv(tmp_path, rows, name="p.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_lucas_microdata_columns_and_dates(tmp_path):
    path = _csv(
        tmp_path,
        [
            {
                "POINT_ID": "47422782",
                "NUTS0": "AT",
                "TH_LAT": 48.2,
                "TH_LONG": 13.7,
                "SURVEY_DATE": "20/06/18",
                "LC1": "B11",
            },
            {
                "POINT_ID": "29901234",
                "NUTS0": "FR",
                "TH_LAT": 45.1,
                "TH_LONG": 5.2,
                "SURVEY_DATE": "2018-07-02",
                "LC1": "C10",
            },
        ],
    )
    df = read_points(path)
    assert list(df["point_id"]) == ["47422782", "29901234"]
    assert df["lat"].tolist() == [48.2, 45.1] and df["lon"].tolist() == [13.7, 5.2]
    assert [d.date().isoformat() for d in df["date"]] == ["2018-06-20", "2018-07-02"]
    assert df["nuts0"].tolist() == ["AT", "FR"] and df["LC1"].tolist() == ["B11", "C10"]


def test_parquet_points(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame(
        {"point_id": [1, 2], "lat": [48.0, 49.0], "lon": [13.0, 14.0], "date": ["2018-06-01", "2018-06-02"]}
    ).to_parquet(path)
    assert read_points(path)["point_id"].tolist() == ["1", "2"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"point_id": "a", "lat": 120.0, "lon": 13.0, "date": "2018-06-01"}], "look swapped"),
        (
            [
                {"point_id": "a", "lat": 13.7, "lon": 48.2, "date": "2018-06-01"},
                {"point_id": "b", "lat": 5.2, "lon": 45.1, "date": "2018-06-01"},
            ],
            "look swapped",
        ),
        ([{"point_id": "a", "lat": 48.0, "lon": 200.0, "date": "2018-06-01"}], "out of range"),
        ([{"point_id": "a", "lat": "x", "lon": 13.0, "date": "2018-06-01"}], "not a number"),
        (
            [
                {"point_id": "a", "lat": 48.0, "lon": 13.0, "date": "2018-06-01"},
                {"point_id": "a", "lat": 48.1, "lon": 13.1, "date": "2018-06-02"},
            ],
            "duplicate point_id",
        ),
        ([{"point_id": "a", "lat": 48.0, "lon": 13.0, "date": "June"}], "unreadable date"),
        (
            [
                {"point_id": "a b", "lat": 48.0, "lon": 13.0, "date": "2018-06-01"},
                {"point_id": "a/b", "lat": 48.0, "lon": 13.0, "date": "2018-06-01"},
            ],
            "collide",
        ),
        ([{"point_id": "a", "latitude": 48.0, "date": "2018-06-01"}], "no column for lon"),
    ],
)
def test_bad_points_raise_one_line(tmp_path, rows, message):
    with pytest.raises(SenclipError, match=message) as info:
        read_points(_csv(tmp_path, rows))
    assert "\n" not in str(info.value)


def test_swap_latlon_fixes_a_swapped_lucas_file(tmp_path):
    path = _csv(
        tmp_path,
        [
            {"point_id": "a", "lat": 13.7, "lon": 48.2, "date": "2018-06-01"},
            {"point_id": "b", "lat": 5.2, "lon": 45.1, "date": "2018-06-01"},
        ],
    )
    df = read_points(path, swap_latlon=True)
    assert df["lat"].tolist() == [48.2, 45.1] and df["lon"].tolist() == [13.7, 5.2]


def test_points_outside_europe_are_not_called_swapped(tmp_path):
    # genuine points in Nigeria and Kenya: outside Europe, and their swaps are outside too
    path = _csv(
        tmp_path,
        [
            {"point_id": "ng", "lat": 9.1, "lon": 7.4, "date": "2020-01-01"},
            {"point_id": "ke", "lat": -1.3, "lon": 36.8, "date": "2020-01-01"},
        ],
    )
    assert len(read_points(path)) == 2


def test_cli_reports_bad_points_as_one_line(tmp_path, capsys):
    path = _csv(tmp_path, [{"point_id": "a", "lat": 95.0, "lon": 13.0, "date": "2018-06-01"}])
    rc = main(
        [
            "acquire",
            "chips",
            "--points",
            str(path),
            "--stac-url",
            "http://127.0.0.1:9",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "swapped" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_safe_name():
    assert safe_name("47422782") == "47422782"
    assert safe_name("a/b c") == "a_b_c"
