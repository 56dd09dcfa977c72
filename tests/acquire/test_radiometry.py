"""Harmonised radiometry across catalogue shapes (Earth Search v1, Planetary Computer, CDSE) and years.

The assets hold one constant reflectance per band, stored with or without the BOA offset as each
catalogue publishes it (senclip.testing.catalogues, which names its sources). Whatever the shape and
the year, the acquired chip must hold reflectance x 10000 and a series across 25 January 2022 no step.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio

from senclip.acquire.radiometry import check_data, decide, harmonise
from senclip.cli import main
from senclip.data.radiometry import apply_scaling, file_scaling
from senclip.testing import RangeServerProcess, StacServer
from senclip.testing.catalogues import (
    CATALOGUES,
    CONTRADICTORY,
    MISSING_FLAG,
    REFLECTANCE,
    WRONG_FLAG,
    build_catalogues,
    centre_lonlat,
    item,
    write_assets,
)

BANDS = ("B04", "B03", "B02", "B8A")
EXPECTED = np.array([round(REFLECTANCE[b] * 10000) for b in BANDS])


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogues")
    write_assets(root / "assets")
    with RangeServerProcess(root / "assets") as cogs:
        files = build_catalogues(root / "stac", cogs.url())
        with StacServer(files) as stac:
            yield stac.url


def _points(tmp_path, dates: list[str]):
    lon, lat = centre_lonlat()
    path = tmp_path / "points.csv"
    pd.DataFrame([{"point_id": f"p{d}", "lat": lat, "lon": lon, "date": d} for d in dates]).to_csv(
        path, index=False)
    return path


def _args(kind, url, catalogue, points, out, *extra):
    return ["acquire", kind, "--points", str(points), "--stac-url", url, "--collection", catalogue,
            "--out", str(out), "--download-bands", ",".join(BANDS), "--chip-px", "8", "--no-progress",
            "--backoff", "0.05", *extra]


def _journal(path):
    return {r["point_id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("catalogue", CATALOGUES)
def test_chips_of_every_catalogue_and_year_hold_the_same_reflectance(catalogues, catalogue, tmp_path):
    out = tmp_path / "o"
    rc = main(_args("chips", catalogues, catalogue, _points(tmp_path, ["2021-06-10", "2023-06-10"]), out,
                    "--window-days", "3"))
    assert rc == 0
    journal = _journal(out / "chips.jsonl")
    for pid in ("p2021-06-10", "p2023-06-10"):
        rec = journal[pid]
        assert rec["status"] == "ok", rec
        with rasterio.open(out / rec["sat_path"]) as chip:
            data = chip.read()
            tags, scales, offsets = chip.tags(), chip.scales, chip.offsets
        assert data.dtype == np.uint16
        np.testing.assert_array_equal(data.reshape(len(BANDS), -1).min(1), EXPECTED)
        np.testing.assert_array_equal(data.reshape(len(BANDS), -1).max(1), EXPECTED)
        assert tags["radiometry"] == "harmonised" and scales == (1e-4,) * 4 and offsets == (0.0,) * 4
        assert tags["boa_offset_dn"] == str(rec["radiometry"]["offset_dn"])
    # what was decided, and from what: the 2023 items of PC and CDSE hold the offset, Earth Search's not
    new = journal["p2023-06-10"]["radiometry"]
    assert new["offset_dn"] == (0 if catalogue == "earth-search" else 1000)
    assert new["source"] == ("flag" if catalogue == "earth-search" else "baseline")
    assert journal["p2021-06-10"]["radiometry"]["offset_dn"] == 0


@pytest.mark.parametrize("catalogue", CATALOGUES)
def test_series_across_the_2022_baseline_change_has_no_step(catalogues, catalogue, tmp_path):
    out = tmp_path / "s"
    rc = main(_args("series", catalogues, catalogue, _points(tmp_path, ["2022-02-01"]), out,
                    "--year", "2022"))
    assert rc == 0
    rec = _journal(out / "series.jsonl")["p2022-02-01"]
    assert len(rec["items"]) == 3  # 10 January (03.01), 10 February and 10 March (04.00)
    offsets = rec["radiometry"]["offset_dn"]
    assert sorted(offsets.values()) == ([0, 0, 0] if catalogue == "earth-search" else [0, 1000, 1000])
    with rasterio.open(out / rec["series_path"]) as stack:
        data = stack.read().reshape(12, len(BANDS) + 1, -1)
        assert stack.scales[0] == 1e-4 and stack.offsets[0] == 0.0
        assert stack.tags()["radiometry"] == "harmonised"
    for month in (0, 1, 2):  # January before the change, February and March after it: equal values
        np.testing.assert_array_equal(data[month, :len(BANDS)].min(1), EXPECTED)
        np.testing.assert_array_equal(data[month, :len(BANDS)].max(1), EXPECTED)


def test_raw_option_keeps_provider_dn_and_records_the_offset(catalogues, tmp_path):
    out = tmp_path / "raw"
    rc = main(_args("chips", catalogues, "planetary-computer", _points(tmp_path, ["2023-06-10"]), out,
                    "--window-days", "3", "--radiometry", "raw"))
    assert rc == 0
    rec = _journal(out / "chips.jsonl")["p2023-06-10"]
    with rasterio.open(out / rec["sat_path"]) as chip:
        raw = chip.read()
        scaling = file_scaling(chip)
        assert chip.tags()["radiometry"] == "raw" and chip.offsets == (-0.1,) * 4
    np.testing.assert_array_equal(raw[:, 0, 0], EXPECTED + 1000)  # the provider's DN
    refl = apply_scaling(raw, *scaling)  # a reader honouring the metadata gets the reflectance back
    np.testing.assert_allclose(refl[:, 0, 0], EXPECTED / 10000, atol=1e-6)


def test_wrong_missing_and_contradictory_metadata(catalogues, tmp_path, capsys):
    # Earth Search: flag false on an item whose COGs have no offset (wrong flag); no flag at all
    out = tmp_path / "es"
    points = _points(tmp_path, [WRONG_FLAG.date, MISSING_FLAG.date])
    rc = main(_args("chips", catalogues, "earth-search", points, out, "--window-days", "3"))
    err = capsys.readouterr().err
    assert rc == 0
    journal = _journal(out / "chips.jsonl")
    wrong, missing = journal[f"p{WRONG_FLAG.date}"], journal[f"p{MISSING_FLAG.date}"]
    assert wrong["radiometry"]["check"] == "offset-not-in-data" and wrong["radiometry"]["offset_dn"] == 0
    assert f"warning: item {WRONG_FLAG.item_id}:" in err and "cannot carry it" in err
    assert missing["radiometry"]["flag"] is None and missing["radiometry"]["offset_dn"] == 1000
    assert missing["radiometry"]["source"] == "baseline"
    for rec in (wrong, missing):
        with rasterio.open(out / rec["sat_path"]) as chip:
            np.testing.assert_array_equal(chip.read()[:, 0, 0], EXPECTED)
    # Planetary Computer shape: raster:bands say offset 0 while the baseline is 05.09 -> warning, no crash
    out = tmp_path / "pc"
    rc = main(_args("chips", catalogues, "planetary-computer", _points(tmp_path, [CONTRADICTORY.date]), out,
                    "--window-days", "3"))
    err = capsys.readouterr().err
    assert rc == 0 and f"warning: item {CONTRADICTORY.item_id}: asset raster metadata states" in err
    rec = _journal(out / "chips.jsonl")[f"p{CONTRADICTORY.date}"]
    assert rec["radiometry"]["warnings"] and rec["radiometry"]["offset_dn"] == 1000
    with rasterio.open(out / rec["sat_path"]) as chip:
        np.testing.assert_array_equal(chip.read()[:, 0, 0], EXPECTED)


def test_decision_rules_without_a_server():
    from senclip.testing.catalogues import CatalogueScene

    def decided(scene, **props):
        d = item(scene, "http://127.0.0.1/x")
        d["properties"].update(props)
        for k, v in list(d["properties"].items()):
            if v is None:
                del d["properties"][k]
        return decide(pystac.Item.from_dict(d), BANDS)

    new_pc = CatalogueScene("planetary-computer", "2023-06-10", "05.09", "offset", raster_offset=-0.1)
    assert decided(new_pc).offset == 1000
    # no baseline: the asset's raster:bands decide; nothing at all: the date, with a warning
    assert decided(new_pc, **{"s2:processing_baseline": None}).source == "asset"
    d = decided(CatalogueScene("planetary-computer", "2023-06-10", "05.09", "offset"),
                **{"s2:processing_baseline": None})
    assert d.source == "date" and d.offset == 1000 and "no radiometry metadata" in d.warnings[0]
    # a reprocessed archive (baseline 05.00 for a 2018 scene) holds the offset: the baseline counts
    assert decided(CatalogueScene("cdse", "2018-06-10", "05.00", "offset", raster_offset=-0.1)).offset == 1000
    # harmonising keeps nodata 0 apart from dark pixels (clamped to 1)
    raw = np.array([[[0, 1000, 999, 1500]]], dtype=np.uint16)
    dec = decided(new_pc)
    dec.offset_dn = {"B04": 1000}
    np.testing.assert_array_equal(harmonise(raw, dec, ("B04",))[0, 0], [0, 1, 1, 500])
    # the data check only fires when most values could not carry the offset
    dec = decided(new_pc)
    dec.offset_dn = {"B04": 1000}
    assert check_data(np.full((1, 4, 4), 1040, np.uint16), dec, ("B04",)).check is None  # dark water
    assert check_data(np.full((1, 4, 4), 300, np.uint16), dec, ("B04",)).check == "offset-not-in-data"


def test_harmonise_converts_raw_and_old_chips(catalogues, tmp_path, capsys):
    points = _points(tmp_path, ["2023-06-10"])
    for mode in ("raw", "harmonised"):
        assert main(_args("chips", catalogues, "cdse", points, tmp_path / mode, "--window-days", "3",
                          "--radiometry", mode)) == 0
    raw, ref = tmp_path / "raw" / "chips", tmp_path / "harmonised" / "chips"
    # a chip as `acquire` wrote it before this change: raw DN, no GDAL offset, no radiometry tags
    with rasterio.open(raw / "p2023-06-10.tif") as src:
        profile, data, tags = src.profile, src.read(), src.tags()
    old = tmp_path / "old"
    old.mkdir()
    with rasterio.open(old / "p2023-06-10.tif", "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = BANDS
        dst.update_tags(**{k: v for k, v in tags.items() if k in ("acquired", "item_id", "point_id")})
    capsys.readouterr()
    assert main(["harmonise", str(raw), str(tmp_path / "h1")]) == 0
    assert main(["harmonise", str(old), str(tmp_path / "h2")]) == 0
    err = capsys.readouterr().err
    assert "assumed an offset of 1000 DN from the acquisition date 2023-06-10" in err
    with rasterio.open(ref / "p2023-06-10.tif") as r:
        expected = r.read()
    for folder in ("h1", "h2"):
        with rasterio.open(tmp_path / folder / "p2023-06-10.tif") as h:
            assert np.array_equal(h.read(), expected) and h.tags()["radiometry"] == "harmonised"
            assert h.offsets == (0.0,) * 4 and h.scales == (1e-4,) * 4
    # nothing tells the offset: one error line, nothing written
    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", **profile) as dst:
        dst.write(data)
    assert main(["harmonise", str(bare), str(tmp_path / "b.tif")]) == 2
    assert "pass --offset-dn" in capsys.readouterr().err and not (tmp_path / "b.tif").exists()
    assert main(["harmonise", str(bare), str(tmp_path / "b.tif"), "--offset-dn", "1000"]) == 0
    with rasterio.open(tmp_path / "b.tif") as h:
        assert np.array_equal(h.read(), expected)
