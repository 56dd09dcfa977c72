"""Paired-data manifests: one row per ground point, CSV or Parquet.

Columns (see ``docs/paired-data.md``):

``point_id`` (required)
    unique id of the point (LUCAS point id, or any string).
``lat``, ``lon`` (required)
    WGS84 degrees. NaN is accepted only on rows whose ``proxy`` column is
    true (the EuroSAT proxy pairs of :mod:`senclip.prompts.proxy`).
``date`` (optional values)
    acquisition / survey date, ISO ``YYYY-MM-DD``; empty allowed.
``sat_path``
    the satellite chip: RGB JPEG/PNG, or a GeoTIFF with band descriptions.
``series_path``
    the point's Sentinel-2 time series, for the time-series (timesen) tower:
    a 12-month stack from ``senclip acquire series``, any stack or folder of
    dated GeoTIFFs, or an EOPatch (see :func:`senclip.data.sources.open_series`);
    several rows may share one file. The point's pixel is found from
    ``row``/``col`` columns when present, else from ``lat``/``lon``.
    A manifest needs a ``sat_path`` or a ``series_path`` column (or both);
    each row needs a value in one of them.
``photo_N``, ``photo_E``, ``photo_S``, ``photo_W``, ``photo_P`` (optional)
    ground photos looking north/east/south/west and at the point; any may be
    empty. A non-proxy row needs at least one, unless ``embedded_views``.
``proxy`` (optional, boolean)
    marks pipeline-check rows whose "views" are not photos.
``embedded_views`` (optional, boolean)
    the row's ground views exist only as embeddings in its ground cache (the
    published frozen LUCAS embeddings, :mod:`senclip.data.sen2lucas`): no photo needed.
``sat_bands`` (optional)
    comma-separated band names of a GeoTIFF chip without band descriptions, in
    file order (e.g. ``B02,B03,B04``); without it such a chip must hold the
    tower's bands in the tower's order.
label columns (optional)
    ``label`` (integer class index, used by
    :class:`senclip.data.paired.PairedDataset`), ``label_name``, LUCAS codes
    such as ``lc1``/``lu1``; carried through unchanged.

Relative paths are resolved against the manifest's folder. Validation
reports every bad row; by default one bad row stops everything
(:class:`~senclip.errors.SenclipError`), with ``skip_bad=True`` bad rows are
logged, listed in ``df.attrs["bad_rows"]`` and dropped.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from senclip.errors import SenclipError
from senclip.outputs import atomic_path

log = logging.getLogger(__name__)

VIEWS = ("N", "E", "S", "W", "P")
"""Ground-photo views: looking north, east, south, west, and at the point."""

PHOTO_COLUMNS = tuple(f"photo_{v}" for v in VIEWS)
REQUIRED_COLUMNS = ("point_id", "lat", "lon")
SOURCE_COLUMNS = ("sat_path", "series_path")
"""A manifest has at least one of these: the satellite chip, the satellite time series."""
PATH_COLUMNS = (*SOURCE_COLUMNS, *PHOTO_COLUMNS)

EUROPE_LAT = (27.0, 72.0)
EUROPE_LON = (-32.0, 45.0)
"""Bounding box that holds every LUCAS point (Canaries to Nordkapp, Azores to Cyprus)."""

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
_TIFF_SUFFIXES = {".tif", ".tiff"}
_SHOW_BAD = 3


def _in_europe(lat: float, lon: float) -> bool:
    return EUROPE_LAT[0] <= lat <= EUROPE_LAT[1] and EUROPE_LON[0] <= lon <= EUROPE_LON[1]


def _load_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SenclipError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"point_id": str, "date": str, **{c: str for c in PATH_COLUMNS}},
                               keep_default_na=True)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SenclipError(f"{path}: unreadable manifest ({str(exc).splitlines()[0]})") from exc
    raise SenclipError(f"{path}: manifest must be .csv or .parquet, not {suffix or 'no suffix'!r}")


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _resolve(value, base: Path) -> str | None:
    if _blank(value):
        return None
    p = os.path.expanduser(str(value).strip())
    return p if os.path.isabs(p) else os.path.join(base, p)


_SIGNATURES = {  # suffix: (first bytes, last bytes) of a complete file
    ".jpg": (b"\xff\xd8", b"\xff\xd9"),
    ".jpeg": (b"\xff\xd8", b"\xff\xd9"),
    ".png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"),
}


def _signature_ok(path: str, head: bytes, tail: bytes) -> bool:
    with open(path, "rb") as f:
        if f.read(len(head)) != head:
            return False
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64))
        return tail in f.read()  # some writers pad after the end marker


def chip_readable(path: str) -> str | None:
    """``None`` if the chip looks readable, else a short reason.

    JPEG/PNG: start and end markers (catches non-images and truncated
    downloads without decoding); GeoTIFF: opened with rasterio; other
    formats: opened with PIL.
    """
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix in _SIGNATURES:
            return None if _signature_ok(path, *_SIGNATURES[suffix]) else "sat_path unreadable (not a " \
                f"complete {suffix[1:].upper()} file)"
        if suffix in _TIFF_SUFFIXES:
            import rasterio

            with rasterio.open(path) as src:
                if src.count < 1:
                    return "chip has no bands"
            return None
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
        return None
    except Exception as exc:  # any decoder failure means unreadable
        return f"sat_path unreadable ({type(exc).__name__})"


def _row_problems(row: dict, check_files: bool) -> list[str]:
    problems = []
    proxy = bool(row.get("proxy", False))
    lat, lon = row["lat"], row["lon"]
    if math.isnan(lat) or math.isnan(lon):
        if not proxy:
            problems.append("lat/lon missing or not a number (only proxy rows may omit them)")
    elif not -90 <= lat <= 90:
        problems.append(f"lat {lat:g} outside -90..90")
    elif not -180 <= lon <= 180:
        problems.append(f"lon {lon:g} outside -180..180")
    elif not _in_europe(lat, lon) and _in_europe(lon, lat):
        problems.append(f"lat/lon look swapped (lat {lat:g}, lon {lon:g}; LUCAS points lie in Europe)")
    if not _blank(row.get("date")) and pd.isna(pd.to_datetime(row["date"], errors="coerce")):
        problems.append(f"date {row['date']!r} is not a date (use YYYY-MM-DD)")
    if row["sat_path"] is None and row["series_path"] is None:
        problems.append("sat_path empty (and no series_path)")
    if row["sat_path"] is not None and check_files:
        if not os.path.isfile(row["sat_path"]):
            problems.append(f"sat_path not found: {row['sat_path']}")
        else:
            reason = chip_readable(row["sat_path"])
            if reason:
                problems.append(f"{reason}: {row['sat_path']}")
    if row["series_path"] is not None and check_files and not os.path.exists(row["series_path"]):
        problems.append(f"series_path not found: {row['series_path']}")
    photos = [row[c] for c in PHOTO_COLUMNS if row.get(c) is not None]
    if not photos and not proxy and not row.get("embedded_views", False):
        problems.append("no ground photo (fill at least one of " + ", ".join(PHOTO_COLUMNS) + ")")
    if check_files:
        problems += [f"{c} not found: {row[c]}" for c in PHOTO_COLUMNS
                     if row.get(c) is not None and not os.path.isfile(row[c])]
    return problems


def _objects(values: list, df: pd.DataFrame) -> pd.Series:
    """A column that keeps ``None`` as ``None`` (pandas' string dtype would turn it into NaN)."""
    return pd.Series(values, index=df.index, dtype=object)


def _normalise(df: pd.DataFrame, base: Path, source: Path) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if not any(c in df.columns for c in SOURCE_COLUMNS):
        missing.append(" or ".join(SOURCE_COLUMNS))
    if missing:
        raise SenclipError(f"{source}: manifest lacks column(s) {', '.join(missing)}; "
                           f"required: {', '.join(REQUIRED_COLUMNS)} and sat_path (chips) or series_path "
                           "(time series) (see docs/paired-data.md)")
    df = df.copy()
    df["point_id"] = _objects([None if _blank(v) else str(v).strip() for v in df["point_id"]], df)
    for c in ("lat", "lon"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    if "date" not in df.columns:
        df["date"] = None
    for c in PATH_COLUMNS:
        df[c] = _objects([_resolve(v, base) for v in df[c]] if c in df.columns else [None] * len(df), df)
    for flag in ("proxy", "embedded_views"):
        if flag in df.columns:
            df[flag] = [str(v).strip().lower() in ("1", "true", "yes") for v in df[flag]]
    return df


def validate_manifest(df: pd.DataFrame, check_files: bool = True) -> list[dict]:
    """Problems of a normalised manifest: ``[{"row": n, "point_id": id, "problems": [...]}]``.

    ``row`` counts data rows from 1 (the header is not a row).
    """
    bad = []
    seen: set[str] = set()
    for i, row in enumerate(df.to_dict("records"), start=1):
        problems = []
        pid = row["point_id"]
        if pid is None:
            problems.append("point_id empty")
        elif pid in seen:
            problems.append("duplicate point_id")
        else:
            seen.add(pid)
        problems += _row_problems(row, check_files)
        if problems:
            bad.append({"row": i, "point_id": pid, "problems": problems})
    return bad


def _describe(bad: Iterable[dict]) -> str:
    return "; ".join(f"row {b['row']} point {b['point_id']!r}: {', '.join(b['problems'])}" for b in bad)


def read_manifest(path: str | Path, skip_bad: bool = False, check_files: bool = True) -> pd.DataFrame:
    """Read and validate a paired-data manifest.

    Args:
        path: ``.csv`` or ``.parquet`` file.
        skip_bad: drop bad rows (logged as warnings, listed in
            ``df.attrs["bad_rows"]``) instead of failing.
        check_files: check that chips and photos exist and chips open.

    Returns:
        The manifest with absolute paths (``None`` for missing photos), float
        ``lat``/``lon`` and a fresh 0..N-1 index.

    Raises:
        SenclipError: missing file or columns, or bad rows without ``skip_bad``.
    """
    path = Path(path).expanduser()
    df = _normalise(_load_table(path), path.resolve().parent, path)
    bad = validate_manifest(df, check_files)
    if bad and not skip_bad:
        first = _describe(bad[:_SHOW_BAD])
        more = f" … and {len(bad) - _SHOW_BAD} more" if len(bad) > _SHOW_BAD else ""
        raise SenclipError(f"{path}: {len(bad)} bad row{'s' * (len(bad) != 1)} "
                           f"(first: {first}{more}); fix them or pass --skip-bad")
    for b in bad:
        log.warning("%s: skipping %s", path, _describe([b]))
    keep = [i for i in range(len(df)) if i + 1 not in {b["row"] for b in bad}]
    out = df.iloc[keep].reset_index(drop=True)
    if out.empty:
        raise SenclipError(f"{path}: no usable rows ({len(bad)} bad)")
    out.attrs["bad_rows"] = bad
    out.attrs["source"] = str(path)
    return out


def require_paths(df: pd.DataFrame, column: str, problem: str) -> None:
    """Fail unless every row of ``df`` has a ``column`` value (``sat_path`` / ``series_path``).

    Raises:
        SenclipError: ``"N manifest row(s) <problem>"``, N the rows without a value.
    """
    n = len(df) if column not in df.columns else int(df[column].isna().sum())
    if n:
        raise SenclipError(f"{n} manifest row(s) {problem}")


def photo_matrix(df: pd.DataFrame) -> list[list[str | None]]:
    """Per row, the photo path of each view in :data:`VIEWS` order (``None`` if missing)."""
    cols = [df[c] if c in df.columns else [None] * len(df) for c in PHOTO_COLUMNS]
    return [[None if _blank(p) else p for p in row] for row in zip(*cols, strict=True)]


def write_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically as CSV or Parquet (chosen by the suffix of ``path``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise SenclipError(f"{path}: manifest must end in .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    df = df.copy()
    df.attrs = {}
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return path
