"""Survey points: read a CSV/Parquet table of ``point_id, lat, lon, date`` and validate it.

Columns read (case-insensitive; the first name found wins):

==============  ==================================================================
``point_id``    ``point_id``, ``POINT_ID`` (LUCAS), ``id``
``lat``         ``lat``, ``latitude``, ``TH_LAT`` (LUCAS theoretical point), ``GPS_LAT``
``lon``         ``lon``, ``longitude``, ``TH_LONG`` (LUCAS), ``GPS_LONG``
``date``        ``date``, ``SURVEY_DATE`` (LUCAS, ``dd/mm/yy``), ``survey_date``
``nuts0``       ``nuts0``, ``NUTS0`` (country code, used by photo URL templates)
==============  ==================================================================

Every other column (labels such as ``LC1``/``LU1``, ``photo_N`` … ``photo_P``
with URLs or paths) is carried through unchanged into the paired manifest.
Dates may be ISO ``YYYY-MM-DD`` or LUCAS ``dd/mm/yy``/``dd/mm/yyyy``.

Checks, each a one-line :class:`~senclip.errors.SenclipError` naming the rows:
missing columns, empty or duplicate ids, non-numeric or out-of-range
coordinates, swapped latitude/longitude (a latitude beyond ±90 whose
longitude would fit, or every point outside Europe while the swapped
coordinates all fall inside it, as in some public LUCAS-derived files; fix the
file or pass ``swap_latlon=True``), and unreadable dates.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from senclip.errors import SenclipError

ALIASES: dict[str, tuple[str, ...]] = {
    "point_id": ("point_id", "id"),
    "lat": ("lat", "latitude", "th_lat", "gps_lat"),
    "lon": ("lon", "longitude", "th_long", "th_lon", "gps_long", "gps_lon"),
    "date": ("date", "survey_date"),
    "nuts0": ("nuts0",),
}
REQUIRED = ("point_id", "lat", "lon", "date")

EUROPE_LAT = (27.0, 72.0)
EUROPE_LON = (-32.0, 45.0)
"""Box holding every LUCAS point (the same box as :mod:`senclip.data.manifest`)."""

_SHOW = 3
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(point_id: str) -> str:
    """``point_id`` made safe as a file name (other characters become ``_``)."""
    name = _SAFE.sub("_", str(point_id)).strip("._")
    return name or "_"


def _rows(mask: pd.Series, df: pd.DataFrame) -> str:
    ids = [f"row {i + 1} ({df['point_id'].iloc[i]})" for i in mask.to_numpy().nonzero()[0][:_SHOW]]
    more = f" and {int(mask.sum()) - _SHOW} more" if int(mask.sum()) > _SHOW else ""
    return ", ".join(ids) + more


def _load(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SenclipError(f"points file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SenclipError(f"{path}: unreadable points table ({str(exc).splitlines()[0]})") from exc
    raise SenclipError(f"{path}: points must be a .csv or .parquet file, not {suffix or 'no suffix'!r}")


def _rename(df: pd.DataFrame, source: str) -> pd.DataFrame:
    lower = {c.lower(): c for c in df.columns}
    mapping = {}
    for canon, names in ALIASES.items():
        found = next((lower[n] for n in names if n in lower), None)
        if found is not None:
            mapping[found] = canon
    df = df.rename(columns=mapping)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise SenclipError(
            f"{source}: no column for {', '.join(missing)} (accepted names: "
            + "; ".join(f"{c}: {'/'.join(ALIASES[c])}" for c in missing)
            + ")"
        )
    return df


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse ISO or LUCAS ``dd/mm/yy`` dates to ``datetime64``; ``NaT`` where unreadable."""
    text = values.astype(str).str.strip()
    out = pd.to_datetime(text, format="ISO8601", errors="coerce")
    for fmt in ("%d/%m/%y", "%d/%m/%Y"):
        todo = out.isna() & text.str.contains("/")
        if todo.any():
            out[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    return out


def _in_box(lat: pd.Series, lon: pd.Series) -> pd.Series:
    return lat.between(*EUROPE_LAT) & lon.between(*EUROPE_LON)


def check_coordinates(df: pd.DataFrame, source: str = "points") -> None:
    """Raise :class:`SenclipError` for missing, out-of-range or swapped coordinates.

    Args:
        df: table with numeric ``lat``/``lon`` and ``point_id`` columns.
        source: name used in the message (the file).
    """
    lat, lon = df["lat"], df["lon"]
    bad = lat.isna() | lon.isna()
    if bad.any():
        raise SenclipError(f"{source}: lat/lon missing or not a number at {_rows(bad, df)}")
    swapped = (lat.abs() > 90) & (lon.abs() <= 90)
    if swapped.any():
        raise SenclipError(
            f"{source}: lat/lon look swapped at {_rows(swapped, df)} (latitude beyond ±90); "
            "swap the columns or pass --swap-latlon"
        )
    bad = (lon.abs() > 180) | (lat.abs() > 90)
    if bad.any():
        raise SenclipError(
            f"{source}: coordinates out of range at {_rows(bad, df)} "
            "(lat must be in -90..90, lon in -180..180, WGS84 degrees)"
        )
    if not _in_box(lat, lon).any() and _in_box(lon, lat).all():
        raise SenclipError(
            f"{source}: lat/lon look swapped: no point lies in Europe but all would with "
            "the columns exchanged (as in some LUCAS-derived files); pass --swap-latlon"
        )


def check_points(df: pd.DataFrame, source: str = "points") -> None:
    """Validate ids, coordinates and dates of a normalised points table.

    Raises:
        SenclipError: the first kind of problem found, with the rows concerned.
    """
    empty = df["point_id"].isna() | (df["point_id"].astype(str).str.strip() == "")
    if empty.any():
        raise SenclipError(f"{source}: empty point_id at {_rows(empty, df)}")
    dup = df["point_id"].duplicated(keep=False)
    if dup.any():
        raise SenclipError(
            f"{source}: duplicate point_id at {_rows(dup, df)}; ids must be unique "
            "(append the survey year to repeated LUCAS points)"
        )
    names = df["point_id"].map(safe_name)
    clash = names.duplicated(keep=False)
    if clash.any():
        raise SenclipError(f"{source}: point ids collide once made file-name safe at {_rows(clash, df)}")
    check_coordinates(df, source)
    bad = df["date"].isna()
    if bad.any():
        raise SenclipError(
            f"{source}: missing or unreadable date at {_rows(bad, df)} (use YYYY-MM-DD or dd/mm/yy)"
        )


def read_points(path: str | Path, swap_latlon: bool = False) -> pd.DataFrame:
    """Read and validate survey points.

    Args:
        path: ``.csv`` or ``.parquet`` table (columns: see the module docstring).
        swap_latlon: exchange ``lat`` and ``lon`` (for files that swapped them).

    Returns:
        The table with canonical ``point_id`` (str), ``lat``/``lon`` (float)
        and ``date`` (``datetime64``) columns, other columns unchanged.

    Raises:
        SenclipError: unreadable file or invalid rows (see :func:`check_points`).
    """
    path = Path(path).expanduser()
    df = _rename(_load(path), str(path)).reset_index(drop=True)
    df["point_id"] = df["point_id"].astype(str).str.strip()
    for c in ("lat", "lon"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    if swap_latlon:
        df["lat"], df["lon"] = df["lon"].copy(), df["lat"].copy()
    raw = df["date"]
    df["date"] = parse_dates(raw.where(raw.notna(), ""))
    check_points(df, str(path))
    return df
