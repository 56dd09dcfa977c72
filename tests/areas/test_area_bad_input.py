"""Bad input to the area commands: one line ``error: …``, a non-zero exit, nothing left behind."""

from __future__ import annotations

import pytest
from area_helpers import BBOX

from senclip.cli import main
from senclip.testing import RangeServer


def _run(capsys, argv) -> tuple[int, list[str]]:
    status = main([str(a) for a in argv])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return status, err


def _composite(stac_url: str, out, *extra) -> list:
    return ["composite", "--stac-url", stac_url, "--collection", "earth-search", "--out", out,
            "--no-progress", "--retries", "1", "--backoff", "0.01", *extra]


def _refused(status, err, text, folder):
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and text in err[0], err
    assert not any(folder.iterdir()), sorted(p.name for p in folder.rglob("*"))


def _geojson(path, coords):
    feats = [] if coords is None else [{"type": "Feature", "properties": {},
                                        "geometry": {"type": "Polygon", "coordinates": [coords]}}]
    path.write_text(__import__("json").dumps({"type": "FeatureCollection", "features": feats}))
    return path


SEASON = ("--time", "2022-01-01/2022-03-31")

CASES = {
    "bbox west of east": (("--bbox", "12.1,46.9,11.9,47.0", *SEASON), "antimeridian"),
    "bbox not four numbers": (("--bbox", "12,46,13", *SEASON), "four numbers"),
    "bbox empty": (("--bbox", "12,47,12,47.1", *SEASON), "empty area"),
    "beyond 84 degrees": (("--bbox", "10,84.2,10.1,84.3", *SEASON), "outside the UTM zones"),
    "end before start": (("--bbox", BBOX, "--time", "2022-03-31/2022-01-01"), "is before START"),
    "time not a range": (("--bbox", BBOX, "--time", "2022-03-31"), "START/END"),
    "no item in the range": (("--bbox", BBOX, "--time", "2019-01-01/2019-02-01"), "no item of collection"),
    "every pixel clouded": (("--bbox", BBOX, "--time", "2021-12-01/2021-12-31", "--max-cloud", "100"),
                            "every pixel"),
    "area too large": (("--bbox", "11,46,12,47", *SEASON), "--max-area-km2"),
    "geographic crs": (("--bbox", BBOX, *SEASON, "--crs", "EPSG:4326"), "not a projected CRS"),
    "unknown mask class": (("--bbox", BBOX, *SEASON, "--mask-classes", "3,42"), "not an SCL class"),
    "missing band asset": (("--bbox", BBOX, *SEASON, "--download-bands", "B01"), "no asset for band B01"),
    "search above --max-items": (("--bbox", BBOX, *SEASON, "--max-items", "3"), "matches more than 3 items"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_request(case, area_stac, tmp_path, capsys):
    extra, text = CASES[case]
    folder = tmp_path / "out"
    folder.mkdir()
    _refused(*_run(capsys, _composite(area_stac.url, folder / "c.tif", *extra)), text, folder)


@pytest.mark.parametrize("case", ["empty", "bowtie", "points only", "not vector"])
def test_bad_area_file(case, area_stac, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    if case == "empty":
        path, text = _geojson(tmp_path / "a.geojson", None), "holds no polygon"
    elif case == "bowtie":
        path = _geojson(tmp_path / "a.geojson", [[11.99, 46.996], [12.01, 47.003], [12.01, 46.996],
                                                 [11.99, 47.003], [11.99, 46.996]])
        text = "invalid polygon"
    elif case == "points only":
        path = tmp_path / "a.geojson"
        path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
                        '"geometry": {"type": "Point", "coordinates": [12.0, 47.0]}}]}')
        text = "holds no polygon (Point)"
    else:
        path = tmp_path / "a.gpkg"
        path.write_text("not a GeoPackage")
        text = "not a readable vector file"
    argv = _composite(area_stac.url, folder / "c.tif", "--area", path, *SEASON)
    _refused(*_run(capsys, argv), text, folder)


@pytest.mark.parametrize("fault", ["unreachable", "503", "timeout"])
def test_stac_api_down_is_retried_then_one_line(fault, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    if fault == "unreachable":
        argv = _composite("http://127.0.0.1:9/stac", folder / "c.tif", "--bbox", BBOX, *SEASON)
        status, err = _run(capsys, argv)
    else:
        with RangeServer() as server:
            server.files["/stac"] = b"{}"
            if fault == "503":
                server.faults.add("/stac", "503", times=None)
            else:
                server.faults.add("/stac", "delay", times=None, seconds=1.5)
            argv = _composite(server.url("stac"), folder / "c.tif", "--bbox", BBOX, *SEASON,
                              "--timeout", "0.3")
            status, err = _run(capsys, argv)
            if fault == "503":  # (a delayed answer is logged when it is sent, after the client gave up)
                assert len(server.requests_for("/stac")) == 2  # tried twice (--retries 1)
    expected = {"unreachable": "Connection refused", "503": "503", "timeout": "timed out"}[fault]
    _refused(status, err, "opening STAC API", folder)
    assert "after 2 tries" in err[0] and expected.lower() in err[0].lower(), err


def test_large_area_goes_ahead_with_yes(area_stac, tmp_path, capsys):
    """--yes lifts the size check (here the search then finds no item far from the test tiles)."""
    folder = tmp_path / "out"
    folder.mkdir()
    argv = _composite(area_stac.url, folder / "c.tif", "--bbox", "5,46,6,47", *SEASON, "--yes")
    status, err = _run(capsys, argv)
    _refused(status, err, "no item of collection", folder)


def test_map_bbox_needs_one_output_and_a_time(area_stac, tiny_vit_file, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    base = ["map", "--bbox", BBOX, "--stac-url", area_stac.url, "--model", "senclip-tiny-vit", "--pretrained",
            tiny_vit_file, "--no-progress"]
    _refused(*_run(capsys, [*base, folder / "a.tif"]), "--time START/END is needed", folder)
    _refused(*_run(capsys, [*base, *SEASON, folder / "a.tif", folder / "b.tif"]), "give only OUTPUT", folder)
    _refused(*_run(capsys, ["map-pixels", "--bbox", BBOX, "--stac-url", area_stac.url, folder / "a.tif",
                            "--no-progress"]), "--year YYYY is needed", folder)


def test_work_folder_senclip_did_not_make_is_refused(area_stac, tmp_path, capsys):
    """composite's OUT.tif.blocks/ (removed after success) is only ever one senclip made."""
    folder = tmp_path / "out"
    (folder / "c.tif.blocks").mkdir(parents=True)
    (folder / "c.tif.blocks" / "notes.txt").write_text("mine")
    status, err = _run(capsys, _composite(area_stac.url, folder / "c.tif", "--bbox", BBOX, *SEASON))
    assert status == 2 and len(err) == 1, err
    assert "was not made by senclip" in err[0] and "another --out" in err[0], err
    assert sorted(p.name for p in folder.rglob("*")) == ["c.tif.blocks", "notes.txt"]


def test_map_cache_and_bands_are_checked_before_anything_is_written(area_stac, tiny_vit_file, tmp_path,
                                                                     capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    base = ["map", "--bbox", BBOX, *SEASON, "--stac-url", area_stac.url, "--collection", "earth-search",
            "--model", "senclip-tiny-vit", "--pretrained", tiny_vit_file, "--no-progress", "--backoff",
            "0.01"]
    _refused(*_run(capsys, [*base, folder / "m.tif", "--download-bands", "B04,B03"]),
             "--download-bands B04,B03 lacks B02", folder)
    cache = tmp_path / "cache"  # a --cache holding a composite.tif senclip did not make
    cache.mkdir()
    (cache / "composite.tif").write_bytes(b"the user's own composite")
    status, err = _run(capsys, [*base, folder / "m.tif", "--cache", cache])
    assert status == 2 and len(err) == 1 and "was not made by senclip" in err[0] and "--cache" in err[0], err
    assert (cache / "composite.tif").read_bytes() == b"the user's own composite"
    assert sorted(p.name for p in cache.iterdir()) == ["composite.tif"] and not any(folder.iterdir())


def test_map_pixels_refuses_series_file_flags_with_an_area(area_stac, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    base = ["map-pixels", "--bbox", BBOX, "--year", "2022", "--stac-url", area_stac.url, folder / "a.tif",
            "--no-progress"]
    _refused(*_run(capsys, [*base, "--composite", "mean"]), "--composite reads a series file", folder)
    _refused(*_run(capsys, [*base, "--mask-band", "SCL"]), "--mask-band reads a series file", folder)
