"""Point sampling: the 12-month composite series of each point in a manifest.

A manifest is a CSV file (or a pandas DataFrame) with a ``point_id`` column
and the point's position as one of:

* ``row``, ``col``: pixel indices in the series' grid;
* ``x``, ``y``: coordinates in the series' CRS;
* ``lon``, ``lat``: WGS84 degrees (reprojected to the series' CRS).

In a source of named points (a Sen4Map file: ``points``, one per column) the
``point_id`` must be the name of the point at its ``col``.

For each point, :func:`sample_points` reads the pixel's acquisitions,
composites them by calendar month (:func:`~senclip.data.series.composite.monthly_composite`)
and returns ``(N, 12, C)`` series (NaN for missing months) with the
``(N, 12)`` month mask. The band list defaults to TimeSenCLIP's ten bands.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from senclip.data.series.composite import monthly_composite
from senclip.data.series.io import S2_BANDS, SeriesSource
from senclip.errors import SenclipError


def read_manifest(manifest) -> pandas.DataFrame:  # noqa: F821
    """Load and check a manifest (CSV path or DataFrame)."""
    import pandas as pd

    if isinstance(manifest, (str, os.PathLike)):
        path = Path(manifest)
        if not path.is_file():
            raise SenclipError(f"point manifest not found: {path}")
        manifest = pd.read_csv(path)
    if "point_id" not in manifest.columns:
        raise SenclipError("point manifest needs a 'point_id' column")
    if not any({a, b} <= set(manifest.columns) for a, b in (("row", "col"), ("x", "y"), ("lon", "lat"))):
        raise SenclipError("point manifest needs 'row','col' or 'x','y' or 'lon','lat' columns; "
                           f"it has {list(manifest.columns)}")
    if manifest["point_id"].duplicated().any():
        raise SenclipError("point manifest has duplicate point_id values")
    return manifest.reset_index(drop=True)


def pixel_positions(source: SeriesSource, manifest) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the manifest's points; error for points off the grid."""
    cols = set(manifest.columns)
    if {"row", "col"} <= cols:
        rows, colz = manifest["row"].to_numpy(np.int64), manifest["col"].to_numpy(np.int64)
    else:
        if source.transform is None:
            raise SenclipError(f"{source.name} has no georeferencing; give points as row,col")
        if {"x", "y"} <= cols:
            xs, ys = manifest["x"].to_numpy(float), manifest["y"].to_numpy(float)
        else:
            from rasterio.warp import transform as warp

            if source.crs is None:
                raise SenclipError(f"{source.name} has no CRS; give points as row,col or x,y")
            xs, ys = warp("EPSG:4326", source.crs, manifest["lon"].tolist(), manifest["lat"].tolist())
        from rasterio.transform import rowcol

        rows, colz = (np.asarray(v, dtype=np.int64) for v in rowcol(source.transform, xs, ys))
    off = (rows < 0) | (rows >= source.height) | (colz < 0) | (colz >= source.width)
    if off.any():
        bad = manifest["point_id"][off].astype(str).tolist()[:5]
        raise SenclipError(f"{int(off.sum())} point(s) fall outside {source.name} (e.g. {bad})")
    names = getattr(source, "points", None)  # a source of named points (Sen4Map): one per column
    if names is not None:
        wrong = [p for p, c in zip(manifest["point_id"].astype(str), colz, strict=True) if names[c] != p]
        if wrong:
            raise SenclipError(f"{source.name}: {len(wrong)} point(s) are not the group at their col "
                               f"(e.g. {wrong[:3]}); the file changed since the manifest was written")
    return rows, colz


def sample_points(
    source: SeriesSource,
    manifest,
    bands: Sequence[str] | None = S2_BANDS,
    method: str = "median",
    year: int | None = None,
    drop_empty: bool = False,
) -> dict:
    """Monthly composite series at the manifest's points.

    Args:
        source: the series (see :func:`senclip.data.sources.open_series`).
        manifest: CSV path or DataFrame (see the module docstring).
        bands: bands to keep, in order (``None``: all of the source's).
        method, year: compositing options.
        drop_empty: drop points with no valid month instead of failing.

    Returns:
        dict with ``series`` float32 ``(N, 12, C)`` (NaN = missing),
        ``month_valid`` bool ``(N, 12)``, ``point_id``, ``row``, ``col`` and
        ``bands``.

    Raises:
        SenclipError: bad manifest, points off the grid, missing bands, or
            points with no valid month (unless ``drop_empty``).
    """
    manifest = read_manifest(manifest)
    band_idx = source.select_bands(bands) if bands is not None else list(range(len(source.bands)))
    rows, cols = pixel_positions(source, manifest)
    data, valid = source.read_pixels(rows, cols)
    comp, month_valid = monthly_composite(data[:, band_idx], source.dates, valid, method=method, year=year)
    series = comp.transpose(2, 0, 1)
    month_valid = month_valid.T
    empty = ~month_valid.any(axis=1)
    ids = manifest["point_id"].to_numpy()
    if empty.any():
        if not drop_empty:
            raise SenclipError(f"{int(empty.sum())} point(s) have no clear observation in any month "
                               f"(e.g. {ids[empty][:5].tolist()}); drop them or choose another period")
        keep = ~empty
        series, month_valid, ids = series[keep], month_valid[keep], ids[keep]
        rows, cols = rows[keep], cols[keep]
    return {"series": np.ascontiguousarray(series), "month_valid": month_valid, "point_id": ids,
            "row": rows, "col": cols, "bands": tuple(source.bands[i] for i in band_idx)}
