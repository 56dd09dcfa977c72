"""Monthly compositing, checked against an independent per-pixel computation on the real series."""

from __future__ import annotations

import datetime as dt
import statistics

import numpy as np
import pytest

from senclip.errors import SenclipError
from senclip.data.series.composite import METHODS, monthly_composite

PIXELS = [(0, 0), (17, 42), (50, 50), (73, 11), (100, 99)]


def _independent(ndvi, clm, dates, r, c, month, year=None, how=statistics.median):
    clear = [float(ndvi[t, r, c]) for t, d in enumerate(dates)
             if d.month == month + 1 and clm[t, r, c] == 0 and (year is None or d.year == year)]
    return how(clear) if clear else None


@pytest.mark.parametrize("year", [None, 2016])
def test_median_ignores_clouded_observations(eopatch_arrays, year):
    ndvi, clm, dates = eopatch_arrays
    comp, ok = monthly_composite(ndvi[:, None], dates, clm == 0, year=year)
    assert comp.shape == (12, 1, *ndvi.shape[1:]) and ok.shape == (12, *ndvi.shape[1:])
    checked = 0
    for r, c in PIXELS:
        for m in range(12):
            want = _independent(ndvi, clm, dates, r, c, m, year)
            if want is None:
                assert not ok[m, r, c] and np.isnan(comp[m, 0, r, c])
            else:
                assert ok[m, r, c]
                assert comp[m, 0, r, c] == pytest.approx(want, abs=1e-6)
                checked += 1
    assert checked > 20


def test_clouds_change_the_composite(eopatch_arrays):
    """Ignoring the mask gives different values where clouded observations exist."""
    ndvi, clm, dates = eopatch_arrays
    masked, _ = monthly_composite(ndvi[:, None], dates, clm == 0)
    unmasked, _ = monthly_composite(ndvi[:, None], dates, None)
    assert np.nanmax(np.abs(masked - unmasked)) > 0.1


def test_all_cloud_months_are_masked_not_invented(eopatch_arrays):
    ndvi, clm, dates = eopatch_arrays
    comp, ok = monthly_composite(ndvi[:, None], dates, clm == 0, year=2016)
    in_month = {m: [t for t, d in enumerate(dates) if d.year == 2016 and d.month == m + 1] for m in range(12)}
    all_cloud = np.zeros_like(ok)
    for m, ts in in_month.items():
        all_cloud[m] = (clm[ts] != 0).all(axis=0) if ts else True
    assert all_cloud.any() and (~all_cloud).any()
    np.testing.assert_array_equal(ok, ~all_cloud)
    assert np.isnan(comp[:, 0][all_cloud]).all() and np.isfinite(comp[:, 0][~all_cloud]).all()
    # some pixels have a partially clouded month: masked at some pixels, valid at others
    assert any(0 < ok[m].mean() < 1 for m in range(12))


@pytest.mark.parametrize("method,how", [("mean", statistics.fmean), ("min", min), ("max", max),
                                        ("first", lambda v: v[0]), ("last", lambda v: v[-1])])
def test_alternative_methods(eopatch_arrays, method, how):
    ndvi, clm, dates = eopatch_arrays
    comp, _ = monthly_composite(ndvi[:, None, :30, :30], dates, clm[:, :30, :30] == 0, method=method)
    for r, c in [(3, 4), (29, 29)]:
        for m in range(12):
            want = _independent(ndvi, clm, dates, r, c, m, how=how)
            got = comp[m, 0, r, c]
            assert np.isnan(got) if want is None else got == pytest.approx(want, abs=1e-5)


def test_multiband_first_takes_one_date():
    dates = [dt.date(2020, 5, 1), dt.date(2020, 5, 11), dt.date(2020, 6, 1)]
    data = np.arange(3 * 2 * 1 * 2, dtype=np.float32).reshape(3, 2, 1, 2)
    valid = np.array([[[False, True]], [[True, True]], [[False, False]]])
    comp, ok = monthly_composite(data, dates, valid, method="first")
    np.testing.assert_array_equal(comp[4, :, 0, 0], data[1, :, 0, 0])
    np.testing.assert_array_equal(comp[4, :, 0, 1], data[0, :, 0, 1])
    assert not ok[5].any() and set(METHODS) >= {"median", "first"}


def test_bad_arguments():
    dates = [dt.date(2020, 1, 1)]
    data = np.zeros((1, 1, 2, 2), np.float32)
    with pytest.raises(SenclipError, match="mask shape"):
        monthly_composite(data, dates, np.ones((1, 3, 3), bool))
    with pytest.raises(SenclipError, match="dates"):
        monthly_composite(data, dates * 2)
    with pytest.raises(SenclipError, match="method"):
        monthly_composite(data, dates, method="mode")
    with pytest.raises(SenclipError, match="period"):
        monthly_composite(data, dates, year=1999)
