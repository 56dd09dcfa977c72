"""Series readers (EOPatch, stack, dated folder, arrays), point sampling and the per-pixel dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from senclip.data.series.composite import monthly_composite
from senclip.data.series.io import ArraySource, EOPatchSource
from senclip.data.series.rasters import write_dated_folder, write_stack
from senclip.data.sources import open_series
from senclip.errors import SenclipError


@pytest.fixture(scope="module")
def strip(eopatch_root):
    """A 12-row strip of the real patch with its georeferencing."""
    src = EOPatchSource(eopatch_root)
    data, valid = src.read(slice(30, 42))
    return src, data, valid


def test_eopatch_source_matches_the_raw_arrays(eopatch_root, eopatch_arrays):
    ndvi, clm, dates = eopatch_arrays
    src = open_series(eopatch_root)
    assert src.bands == ("NDVI",) and src.dates == dates and (src.height, src.width) == (101, 100)
    assert src.crs.to_epsg() == 32633 and src.transform.a == pytest.approx(10.0, abs=0.1)
    data, valid = src.read(slice(5, 9))
    np.testing.assert_array_equal(data[:, 0], ndvi[:, 5:9])
    np.testing.assert_array_equal(valid, clm[:, 5:9] == 0)


@pytest.mark.parametrize("kind", ["stack", "folder"])
def test_geotiff_inputs_round_trip(tmp_path, strip, kind):
    src, data, valid = strip
    if kind == "stack":
        path = write_stack(tmp_path / "s.tif", data, src.dates, src.bands, valid, src.crs, src.transform)
    else:
        write_dated_folder(tmp_path / "f", data, src.dates, src.bands, valid, src.crs, src.transform)
        path = tmp_path / "f"
    got = open_series(path)
    assert got.dates == src.dates and got.bands == src.bands and got.crs == src.crs
    d, v = got.read(slice(2, 7))
    np.testing.assert_array_equal(d, data[:, :, 2:7])
    np.testing.assert_array_equal(v, valid[:, 2:7])


def test_stack_dates_from_argument_and_separate_mask(tmp_path, strip):
    import rasterio

    src, data, valid = strip
    path = write_stack(tmp_path / "s.tif", data, src.dates, src.bands, None, src.crs, src.transform)
    with rasterio.open(path, "r+") as ds:  # drop the self-describing tags
        ds.update_tags(dates="", bands="")
    with pytest.raises(SenclipError, match="no dates"):
        open_series(path)
    (tmp_path / "dates.txt").write_text("\n".join(d.isoformat() for d in src.dates))
    mask_path = tmp_path / "mask.tif"
    with rasterio.open(mask_path, "w", driver="GTiff", count=len(src.dates), height=12, width=100,
                       dtype="uint8") as m:
        m.write((~valid).astype("uint8"))
    got = open_series(path, dates=tmp_path / "dates.txt", bands=["NDVI"], mask=mask_path)
    _, v = got.read(slice(0, 12))
    np.testing.assert_array_equal(v, valid)


def test_sample_points_by_row_col_and_coordinates(eopatch_root, eopatch_arrays):
    from senclip.data.series.sampling import sample_points

    ndvi, clm, dates = eopatch_arrays
    src = open_series(eopatch_root)
    pts = [(3, 4), (50, 60), (99, 1)]
    from rasterio.transform import xy

    xs, ys = xy(src.transform, [p[0] for p in pts], [p[1] for p in pts])  # pixel centres
    by_rc = sample_points(src, pd.DataFrame({"point_id": ["a", "b", "c"], "row": [p[0] for p in pts],
                                             "col": [p[1] for p in pts]}), bands=["NDVI"])
    by_xy = sample_points(src, pd.DataFrame({"point_id": ["a", "b", "c"], "x": xs, "y": ys}), bands=["NDVI"])
    np.testing.assert_array_equal(by_rc["series"], by_xy["series"])
    assert by_rc["series"].shape == (3, 12, 1) and by_rc["month_valid"].shape == (3, 12)
    full, ok = monthly_composite(ndvi[:, None], dates, clm == 0)
    for i, (r, c) in enumerate(pts):
        np.testing.assert_array_equal(by_rc["series"][i, :, 0], full[:, 0, r, c])
        np.testing.assert_array_equal(by_rc["month_valid"][i], ok[:, r, c])


def test_sample_points_ten_bands_and_errors(tmp_path):
    import datetime as dt

    from senclip.data.series.sampling import sample_points
    from senclip.models.timesen import S2_BANDS

    rng = np.random.default_rng(0)
    dates = [dt.date(2021, m, 5) for m in range(1, 13)] + [dt.date(2021, 6, 20)]
    data = rng.integers(0, 10000, (13, 10, 4, 5)).astype(np.float32)
    valid = np.ones((13, 4, 5), bool)
    valid[:, 0, 0] = False  # a pixel never clear
    valid[2, 1, 1] = False  # March clouded at (1, 1)
    src = ArraySource(data, dates, S2_BANDS, valid)
    out = sample_points(src, pd.DataFrame({"point_id": [1, 2], "row": [1, 3], "col": [1, 4]}))
    assert out["series"].shape == (2, 12, 10) and out["bands"] == S2_BANDS
    assert not out["month_valid"][0, 2] and np.isnan(out["series"][0, 2]).all()
    np.testing.assert_allclose(out["series"][1, 5], np.median(data[[5, 12], :, 3, 4], axis=0))
    empty = pd.DataFrame({"point_id": [7, 8], "row": [0, 2], "col": [0, 2]})
    with pytest.raises(SenclipError, match="no clear observation"):
        sample_points(src, empty)
    assert list(sample_points(src, empty, drop_empty=True)["point_id"]) == [8]
    with pytest.raises(SenclipError, match="outside"):
        sample_points(src, pd.DataFrame({"point_id": [1], "row": [9], "col": [0]}))
    with pytest.raises(SenclipError, match="bands"):
        sample_points(src, pd.DataFrame({"point_id": [1], "row": [1], "col": [1]}), bands=["B01"])


def test_timeseries_dataset_splits_and_registry(eopatch_root):
    from senclip.data import get_dataset
    from senclip.data.series.dataset import TimeSeriesDataset

    train = TimeSeriesDataset(eopatch_root, split="train")
    valid = get_dataset("timeseries", eopatch_root, bands=("NDVI",), split="valid")
    assert isinstance(valid, TimeSeriesDataset)
    assert len(train) + len(valid) == 101 * 100 - 155  # every labelled pixel, once
    assert train.cols.max() < 50 <= valid.cols.min()
    s = valid[0]
    assert s["image"].shape == (12, 1) and s["bands"] == ("NDVI",)
    assert s["path"] == f"{valid.rows[0]},{valid.cols[0]}"
    assert valid.classes[int(s["label"])] in valid.class_counts()
    assert train.fingerprint() != valid.fingerprint()
    with pytest.raises(SenclipError, match="band"):
        get_dataset("timeseries", eopatch_root, bands=("B04", "B03", "B02"))


def test_netcdf_cube_with_cf_time_axis(tmp_path):
    import datetime as dt

    import netCDF4

    rng = np.random.default_rng(0)
    dates = [dt.date(2020, 1, 10), dt.date(2020, 3, 5), dt.date(2020, 3, 25), dt.date(2020, 7, 1)]
    path = tmp_path / "cube.nc"
    with netCDF4.Dataset(path, "w") as ds:
        for name, n in (("time", 4), ("y", 6), ("x", 5)):
            ds.createDimension(name, n)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.standard_name = "days since 2020-01-01", "time"
        t[:] = [(d - dt.date(2020, 1, 1)).days for d in dates]
        axes = (("y", 5_000_000 - 10 * np.arange(6) - 5), ("x", 400_000 + 10 * np.arange(5) + 5))
        for axis, values in axes:
            v = ds.createVariable(axis, "f8", (axis,))
            v.units, v.standard_name = "m", f"projection_{axis}_coordinate"
            v[:] = values
        bands = {b: rng.random((4, 6, 5)).astype(np.float32) for b in ("B04", "B08")}
        for b, a in bands.items():
            ds.createVariable(b, "f4", ("time", "y", "x"))[:] = a
        cloud = rng.random((4, 6, 5)) > 0.7
        ds.createVariable("CLM", "u1", ("time", "y", "x"))[:] = cloud.astype(np.uint8)
    src = open_series(path)
    assert src.dates == dates and src.bands == ("B04", "B08")
    assert (src.transform.c, src.transform.f, src.transform.e) == (400_000, 5_000_000, -10)
    data, valid = src.read(slice(1, 4))
    np.testing.assert_array_equal(data[:, 1], bands["B08"][:, 1:4])
    np.testing.assert_array_equal(valid, ~cloud[:, 1:4])
