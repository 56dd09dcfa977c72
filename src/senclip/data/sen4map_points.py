"""The published Sen4Map test list: which points the TimeSenCLIP reference evaluates, with its labels.

``src/Data/labels_csv/Sen4Map_Test_all_labels.csv`` of ``pallavijain-pj/TimeSenCLIP`` (a48994f)
has the columns ``im_id, lat, lon, lc_label, lu_label, crop_label, nuts_label, bioregion_class,
eunis_class``, one row per point: ``im_id`` the HDF5 group (``Lucas_Point_<POINT_ID>``), labels as
class names (:mod:`senclip.data.sen4map_labels`), ``NA`` in ``crop_label`` for points that are not
cropland. The newest reference evaluates the rows whose ``im_id`` is in the HDF5 file
(``Sen4MapDataset_wImages_alllabels``: ``meta[meta.im_id.isin(keys)]``), labels taken from the CSV; a
row whose id repeats an earlier one is evaluated again, and so it is here (and counted).

In the published file the ``lat`` column holds longitudes and ``lon`` latitudes. :func:`read_points`
reads the file as it is and finds the order from the points themselves: a LUCAS ``POINT_ID`` is its
position on the LUCAS grid, ``EEEENNNN``, easting and northing in km in ETRS89-LAEA (EPSG:3035), so a
point's coordinates in the right order project to within a grid cell of its id. Where ids are not
LUCAS ids, European latitudes (27 ... 72 degrees north) and longitudes (-32 ... 45 degrees east) decide.
Coordinates are reported, not used: points are matched by ``im_id``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from senclip.errors import SenclipError

COLUMNS = {"lc1": "lc_label", "lu1": "lu_label", "crop": "crop_label", "bioregion": "bioregion_class",
           "eunis": "eunis_class"}
"""Label set -> the test list's column."""
ID_COLUMN = "im_id"
MISSING_VALUES = ("", "NA", "N/A", "NaN", "nan", "null", "None")
"""Cells read as "no label" (pandas' default missing values, which the reference's ``read_csv`` applies)."""
GRID_TOLERANCE_M = 2000.0
"""A point matches its LUCAS id within one 2 km grid cell."""


@dataclass
class PointList:
    """A test list as read: ids in file order (one per row, repeated where the file repeats them), one
    column of labels per label set, the coordinate check and ``duplicates``, the number of rows whose
    id an earlier row has."""

    path: Path
    ids: list[str]
    labels: dict[str, list[str | None]]
    coordinates: dict = field(default_factory=dict)
    duplicates: int = 0


def _lucas_grid(ids: list[str]) -> np.ndarray | None:
    """``(N, 2)`` easting, northing (m, EPSG:3035) of LUCAS point ids; NaN where an id is not one."""
    out = np.full((len(ids), 2), np.nan)
    for i, pid in enumerate(ids):
        digits = pid.rsplit("_", 1)[-1]
        if len(digits) == 8 and digits.isdigit():
            out[i] = int(digits[:4]) * 1000.0, int(digits[4:]) * 1000.0
    return out if np.isfinite(out).any() else None


def coordinate_order(ids: list[str], lat: np.ndarray, lon: np.ndarray) -> dict:
    """Whether the ``lat``/``lon`` columns hold latitudes/longitudes or the other way round.

    Returns ``{"order": "as labelled" | "swapped" | "unknown", "method", "evidence"}``.
    """
    ok = np.isfinite(lat) & np.isfinite(lon)
    n = int(ok.sum())
    if n == 0:
        return {"order": "unknown", "method": None, "evidence": "no coordinates"}
    grid = _lucas_grid(ids)
    if grid is not None:
        from rasterio.warp import transform

        sel = ok & np.isfinite(grid[:, 0])
        if sel.any():
            counts = {}
            for order, (xs, ys) in {"as labelled": (lon, lat), "swapped": (lat, lon)}.items():
                valid = sel & (np.abs(ys) <= 90) & (np.abs(xs) <= 180)
                hits = 0
                if valid.any():
                    ex, ny = transform("EPSG:4326", "EPSG:3035", xs[valid].tolist(), ys[valid].tolist())
                    d = np.hypot(np.asarray(ex) - grid[valid, 0], np.asarray(ny) - grid[valid, 1])
                    hits = int((d <= GRID_TOLERANCE_M).sum())
                counts[order] = hits
            m = int(sel.sum())
            best = max(counts, key=counts.get)
            if counts[best] * 2 > m:
                return {"order": best, "method": "lucas-grid",
                        "evidence": f"{counts[best]} of {m} points lie within {GRID_TOLERANCE_M / 1000:g} km "
                                    f"of their LUCAS grid position (POINT_ID = ETRS89-LAEA easting, northing "
                                    f"in km) read {best}; {counts[min(counts, key=counts.get)]} read "
                                    f"{'swapped' if best == 'as labelled' else 'as labelled'}"}
    europe = {order: int((ok & (la >= 27) & (la <= 72) & (lo >= -32) & (lo <= 45)).sum())
              for order, (la, lo) in {"as labelled": (lat, lon), "swapped": (lon, lat)}.items()}
    best = max(europe, key=europe.get)
    if europe[best] == europe[min(europe, key=europe.get)]:
        return {"order": "unknown", "method": "europe-range", "evidence": f"{europe[best]} of {n} points fit "
                                                                          "European ranges either way"}
    return {"order": best, "method": "europe-range",
            "evidence": f"{europe[best]} of {n} points fall in European latitudes/longitudes read {best}"}


def _cell(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value in MISSING_VALUES else value


def read_points(path: str | Path) -> PointList:
    """Read a test list in the published format (see the module docstring).

    Raises:
        SenclipError: not found, unreadable, or without an ``im_id`` column (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise SenclipError(f"points file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SenclipError(f"{path}: not a readable CSV file ({exc})") from exc
    if ID_COLUMN not in header:
        raise SenclipError(f"{path}: no '{ID_COLUMN}' column (columns: {', '.join(header) or 'none'}); "
                           "expected the published test list's columns im_id, lat, lon, lc_label, lu_label, "
                           "crop_label, nuts_label, bioregion_class, eunis_class")
    seen: set[str] = set()
    kept, duplicates = [], 0
    for row in rows:  # repeated ids are kept, each row a sample, as the reference's isin() filter keeps them
        pid = (row.get(ID_COLUMN) or "").strip()
        if not pid:
            continue
        duplicates += pid in seen
        seen.add(pid)
        kept.append(row)
    ids = [row[ID_COLUMN].strip() for row in kept]
    labels = {name: [_cell(row.get(col)) for row in kept] for name, col in COLUMNS.items() if col in header}
    coords = {"columns": None, "order": "unknown", "method": None, "evidence": "no lat/lon columns"}
    if "lat" in header and "lon" in header:
        def number(v):
            try:
                return float(v)
            except (TypeError, ValueError):
                return np.nan

        lat = np.array([number(row.get("lat")) for row in kept])
        lon = np.array([number(row.get("lon")) for row in kept])
        coords = {"columns": "lat, lon"} | coordinate_order(ids, lat, lon)
    return PointList(path, ids, labels, coords, duplicates=duplicates)


__all__ = ["COLUMNS", "PointList", "coordinate_order", "read_points"]
