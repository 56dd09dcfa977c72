"""Monthly compositing of an irregular Sentinel-2 series.

:func:`monthly_composite` turns ``T`` dated acquisitions ``(T, C, H, W)`` and
a per-acquisition validity mask ``(T, H, W)`` (True = clear and valid) into 12
calendar-month composites ``(12, C, H, W)`` plus a per-month validity mask
``(12, H, W)``. Index 0 is January. Each month's value is computed from the
clear observations of that calendar month only; a month with no clear
observation stays NaN and its mask False: nothing is interpolated or invented.

Methods (``method=``):

``median`` (default)
    per-band median of the clear observations; robust to residual clouds and
    shadows the mask missed. With an even count it is the mean of the two
    middle values (NumPy's definition).
``mean``
    per-band mean of the clear observations.
``min`` / ``max``
    per-band minimum / maximum (``max`` on NDVI is the classic greenest-pixel
    composite; on reflectance bands it favours bright residual clouds).
``first`` / ``last``
    the earliest / latest clear observation of the month (all bands from the
    same date).

Which years feed a month (``year=`` / ``start``, ``end``): by default every
acquisition is pooled by calendar month, so a 2.5-year series gives one
"typical year"; pass ``year=2016`` (or a date range) to composite a single
year as TimeSenCLIP's training data does.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

import numpy as np

from senclip.errors import SenclipError

N_MONTHS = 12
METHODS = ("median", "mean", "min", "max", "first", "last")


def select_dates(
    dates: Sequence[dt.date],
    year: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> np.ndarray:
    """Indices of the acquisitions inside ``year`` and ``[start, end]`` (inclusive)."""
    keep = []
    for i, d in enumerate(dates):
        if year is not None and d.year != year:
            continue
        if start is not None and d < start:
            continue
        if end is not None and d > end:
            continue
        keep.append(i)
    if not keep:
        raise SenclipError(
            f"no acquisition falls in the chosen period (year={year}, start={start}, end={end}); "
            f"the series covers {min(dates)} to {max(dates)}"
        )
    return np.asarray(keep, dtype=np.int64)


def monthly_composite(
    data: np.ndarray,
    dates: Sequence[dt.date],
    valid: np.ndarray | None = None,
    method: str = "median",
    year: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite an irregular series into 12 calendar months.

    Args:
        data: ``(T, C, ...)`` values (any trailing spatial shape, e.g.
            ``(H, W)`` or ``(N,)`` for sampled points).
        dates: the ``T`` acquisition dates (``datetime.date``).
        valid: ``(T, ...)`` bool, True where the observation is clear and
            valid (trailing shape as ``data`` without the band axis). Non-finite
            values are always treated as invalid. ``None``: all finite values
            are valid.
        method: one of :data:`METHODS` (see the module docstring).
        year, start, end: restrict the acquisitions used.

    Returns:
        ``(composite, month_valid)``: float32 ``(12, C, ...)`` with NaN for
        missing months, and bool ``(12, ...)``.

    Raises:
        SenclipError: unknown method, or shapes/dates that do not match.
    """
    data = np.asarray(data)
    if method not in METHODS:
        raise SenclipError(f"unknown composite method {method!r}; choose one of {', '.join(METHODS)}")
    if data.ndim < 2:
        raise SenclipError(f"series must be (T, C, ...), got shape {data.shape}")
    if len(dates) != data.shape[0]:
        raise SenclipError(f"{len(dates)} dates for a series of {data.shape[0]} acquisitions")
    clear = _clear_mask(data, valid)
    idx = select_dates(dates, year, start, end)
    months = np.array([dates[i].month - 1 for i in idx])
    out = np.full((N_MONTHS, *data.shape[1:]), np.nan, dtype=np.float32)
    for m in range(N_MONTHS):
        sel = idx[months == m]
        if sel.size:
            out[m] = _reduce(data[sel].astype(np.float32, copy=False), clear[sel], method)
    month_valid = np.isfinite(out).all(axis=1)
    out[~np.broadcast_to(month_valid[:, None], out.shape)] = np.nan
    return out, month_valid


def _clear_mask(data: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """``(T, ...)`` bool: observation valid and every band finite."""
    finite = np.isfinite(data).all(axis=1) if data.dtype.kind == "f" else np.ones(
        (data.shape[0], *data.shape[2:]), dtype=bool)
    if valid is None:
        return finite
    valid = np.asarray(valid)
    if valid.shape != finite.shape:
        raise SenclipError(
            f"mask shape {valid.shape} does not match the series' {finite.shape} (T, H, W); "
            "give one validity value per acquisition and pixel"
        )
    return finite & valid.astype(bool)


def _reduce(values: np.ndarray, clear: np.ndarray, method: str) -> np.ndarray:
    """Composite ``(t, C, ...)`` observations of one month into ``(C, ...)``."""
    masked = np.where(clear[:, None], values, np.float32(np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN on purpose
        if method == "median":
            return np.nanmedian(masked, axis=0)
        if method == "mean":
            return np.nanmean(masked, axis=0)
        if method == "min":
            return np.nanmin(masked, axis=0)
        if method == "max":
            return np.nanmax(masked, axis=0)
    order = np.arange(values.shape[0]).reshape(-1, *([1] * (clear.ndim - 1)))
    if method == "first":
        pick = np.where(clear, order, values.shape[0]).argmin(axis=0)
    else:
        pick = np.where(clear, order, -1).argmax(axis=0)
    chosen = np.take_along_axis(masked, pick[None, None], axis=0)[0]
    return chosen


def month_counts(
    dates: Sequence[dt.date], valid: np.ndarray, year: int | None = None
) -> np.ndarray:
    """Number of clear observations per calendar month: ``(12, ...)`` int."""
    valid = np.asarray(valid, dtype=bool)
    out = np.zeros((N_MONTHS, *valid.shape[1:]), dtype=np.int32)
    for i, d in enumerate(dates):
        if year is None or d.year == year:
            out[d.month - 1] += valid[i]
    return out
