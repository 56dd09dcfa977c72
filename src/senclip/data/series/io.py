"""Reading irregular Sentinel-2 series: arrays, dated GeoTIFF folders, stacks, EOPatches.

Every reader is a :class:`SeriesSource`: it knows the acquisition dates, the
band names, the grid (height, width, CRS, transform) and reads row blocks
``(T, C, h, W)`` float32 with a validity mask ``(T, h, W)`` (True = clear),
so callers never hold more than one block in memory.

Inputs:

* arrays: :class:`ArraySource` (``(T, C, H, W)`` or channels-last, plus dates);
* a folder of dated GeoTIFFs: :class:`FolderSource`; each file is one
  acquisition whose name contains its date (``20160107``, ``2016-01-07`` or
  ``2016_01_07``), all on the same grid;
* a stack: :class:`StackSource`; one GeoTIFF (or any GDAL raster) whose bands
  are time-major (``t0:B02, t0:B03, …, t1:B02, …``), with the dates given by the
  caller, a ``dates`` tag (what :func:`write_stack` writes) or a
  ``<stack>.dates.txt`` file beside it; or a NetCDF cube with one
  ``(time, y, x)`` variable per band and a CF ``time`` axis;
* an eo-learn EOPatch folder (``data/<FEATURE>.npy``, ``mask/CLM.npy``,
  ``timestamps.json``, ``bbox.geojson``): :class:`EOPatchSource`.

Validity: a per-step cloud band (``mask_band``, default ``CLM``; non-zero =
cloud) where the raster has one, or else a per-step ``QA`` band (senclip's monthly
composites, :data:`QA_BAND`: valid where it is 1), a separate mask raster (``mask=``, ``T``
bands, non-zero = invalid), the raster's nodata value and non-finite values
all mark observations invalid. A raster with GDAL per-band scale/offset
(``acquire series`` writes scale 0.0001, offset 0; raw L2A DN have offset
-0.1) is read in harmonised digital numbers, ``(value * scale + offset) *
10000`` (:mod:`senclip.data.radiometry`), and values ≤ 0 are invalid there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from senclip.errors import DatasetNotFoundError, SenclipError

DATE_RE = re.compile(r"(?<!\d)(\d{4})[-_]?(\d{2})[-_]?(\d{2})(?!\d)")
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2")
S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
"""The ten 10 m and 20 m Sentinel-2 bands TimeSenCLIP uses, in its order."""
QA_BAND = "QA"
QA_CLEAR, QA_GAP = 1, 2
QA_CLASSES = {QA_CLEAR: "clear", QA_GAP: "no clear observation"}
"""The quality band of each month of senclip's monthly composites (``composite --monthly``):
0 nodata (the pixel has no clear observation all year, or lies outside the area), 1 the month is
composited from clear observations, 2 the month had no clear observation (its values are the
``--fill``, or nodata with ``--fill none``). A month is valid where it is 1. Its own name, not
eo-learn's ``CLM`` (0 clear, non-zero cloud): a ``CLM`` of 0 would be nodata in a file whose
nodata is 0."""


def parse_date(value) -> dt.date:
    """A ``datetime.date`` from a date, datetime, or ISO-like string.

    Raises:
        SenclipError: the value is not a date.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    m = DATE_RE.search(text)
    if m and len(text) <= 32:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            pass
    raise SenclipError(f"cannot parse {text!r} as a date; use YYYY-MM-DD")


def parse_dates(values: Sequence | str | os.PathLike) -> list[dt.date]:
    """Parse a list of dates, a comma-separated string or a text file (one per line)."""
    if isinstance(values, (str, os.PathLike)):
        path = Path(values)
        is_file = path.suffix in (".txt", ".csv", ".json") and path.is_file()
        text = path.read_text() if is_file else str(values)
        if path.suffix == ".json" and path.is_file():
            values = json.loads(text)
        else:
            values = [v for v in re.split(r"[,\s]+", text) if v]
    return [parse_date(v) for v in values]


class SeriesSource:
    """Base class: a dated multi-band series on one grid, read by row blocks.

    Attributes:
        dates: acquisition dates, one per time step.
        bands: band names.
        height, width: grid size in pixels.
        crs, transform: georeferencing (``None`` for bare arrays).
        name: where it came from, for messages and fingerprints.
    """

    dates: list[dt.date]
    bands: tuple[str, ...]
    height: int
    width: int
    crs = None
    transform = None
    name = "series"

    def read(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(data (T, C, h, W) float32, valid (T, h, W) bool)`` for a block of rows."""
        raise NotImplementedError

    def read_pixels(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(data (T, C, N), valid (T, N))`` at the given pixel positions."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        data = np.empty((len(self.dates), len(self.bands), len(rows)), dtype=np.float32)
        valid = np.empty((len(self.dates), len(rows)), dtype=bool)
        for r in np.unique(rows):
            block, ok = self.read(slice(int(r), int(r) + 1))
            sel = np.flatnonzero(rows == r)
            data[..., sel] = block[:, :, 0, cols[sel]]
            valid[:, sel] = ok[:, 0, cols[sel]]
        return data, valid

    def fingerprint(self) -> str:
        """Identity of the input (path, size, mtime, dates, bands) for resume checks."""
        h = hashlib.sha256(json.dumps(self._identity(), sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    def _identity(self) -> dict:
        return {"name": self.name, "shape": [len(self.dates), len(self.bands), self.height, self.width],
                "dates": [d.isoformat() for d in self.dates], "bands": list(self.bands)}

    def select_bands(self, bands: Sequence[str]) -> list[int]:
        """Indices of ``bands`` in this series; error if one is missing."""
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise SenclipError(
                f"{self.name}: bands {missing} are not in the series (it has {list(self.bands)}); "
                "pass --input-bands to name the series' bands or use a model trained on these bands"
            )
        return [self.bands.index(b) for b in bands]

    def _check_rows(self, rows: slice) -> slice:
        start, stop, _ = rows.indices(self.height)
        return slice(start, stop)


def _check_dates(dates: Sequence, n: int, name: str) -> list[dt.date]:
    if dates is None or len(dates) == 0:
        raise SenclipError(f"{name}: no acquisition dates; pass --dates (a file or comma-separated list)")
    dates = parse_dates(dates) if not isinstance(dates[0], dt.date) else list(dates)
    if len(dates) != n:
        raise SenclipError(f"{name}: {len(dates)} dates given for {n} time steps")
    return dates


class ArraySource(SeriesSource):
    """A series held in (possibly memory-mapped) NumPy arrays.

    Args:
        data: ``(T, C, H, W)``, or ``(T, H, W, C)`` with ``channels_last=True``.
        dates: ``T`` dates (dates or ISO strings).
        bands: ``C`` band names.
        valid: ``(T, H, W)`` (or ``(T, H, W, 1)``) bool/int, True/non-zero = clear.
        crs, transform: optional georeferencing (rasterio objects).
        channels_last: layout of ``data``.
    """

    def __init__(self, data, dates, bands: Sequence[str], valid=None, crs=None, transform=None,
                 channels_last: bool = False, name: str = "arrays") -> None:
        self.name = name
        self.data = data
        self.channels_last = channels_last
        if data.ndim != 4:
            raise SenclipError(f"{name}: series must be 4-D (T, C, H, W), got shape {tuple(data.shape)}")
        t, c = data.shape[0], data.shape[3 if channels_last else 1]
        self.height, self.width = data.shape[1:3] if channels_last else data.shape[2:4]
        self.bands = tuple(bands)
        if len(self.bands) != c:
            raise SenclipError(f"{name}: {len(self.bands)} band names {list(self.bands)} for {c} bands")
        self.dates = _check_dates(dates, t, name)
        if valid is not None:
            if valid.ndim == 4 and valid.shape[-1] == 1:
                valid = valid[..., 0]
            if tuple(valid.shape) != (t, self.height, self.width):
                raise SenclipError(f"{name}: mask shape {tuple(valid.shape)} does not match the series' "
                                   f"{(t, self.height, self.width)} (T, H, W)")
        self.valid = valid
        self.crs, self.transform = crs, transform

    def read(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows)
        block = np.asarray(self.data[:, rows], dtype=np.float32) if self.channels_last else \
            np.asarray(self.data[:, :, rows], dtype=np.float32)
        if self.channels_last:
            block = block.transpose(0, 3, 1, 2)
        valid = np.isfinite(block).all(axis=1)
        if self.valid is not None:
            valid &= np.asarray(self.valid[:, rows]).astype(bool)
        return np.ascontiguousarray(block), valid


class EOPatchSource(ArraySource):
    """An eo-learn EOPatch folder (NumPy features, memory-mapped).

    Args:
        root: the EOPatch folder.
        feature: data feature name (``data/<feature>.npy``, ``(T, H, W, C)``).
        mask: cloud mask feature (``mask/<mask>.npy``, non-zero = cloud); ``None`` for none.
        bands: band names (default: the feature name for a single band, else ``<feature>_<i>``).
    """

    def __init__(self, root, feature: str = "NDVI", mask: str | None = "CLM",
                 bands: Sequence[str] | None = None) -> None:
        root = Path(root)
        path = root / "data" / f"{feature}.npy"
        if not path.is_file():
            raise DatasetNotFoundError(f"{root}: no EOPatch feature data/{feature}.npy")
        data = np.load(path, mmap_mode="r")
        if bands is None:
            c = data.shape[-1]
            bands = (feature,) if c == 1 else tuple(f"{feature}_{i}" for i in range(c))
        valid = None
        if mask is not None and (root / "mask" / f"{mask}.npy").is_file():
            valid = np.load(root / "mask" / f"{mask}.npy", mmap_mode="r")
            valid = valid[..., 0] == 0 if valid.ndim == 4 else valid == 0
        if (root / "mask" / "IS_DATA.npy").is_file():
            is_data = np.load(root / "mask" / "IS_DATA.npy", mmap_mode="r")
            is_data = is_data[..., 0] if is_data.ndim == 4 else is_data
            valid = is_data.astype(bool) if valid is None else valid & is_data.astype(bool)
        dates = _eopatch_dates(root)
        crs, transform = _eopatch_geo(root, data.shape[1], data.shape[2])
        super().__init__(data, dates, bands, valid, crs, transform, channels_last=True, name=str(root))

    def _identity(self) -> dict:
        return super()._identity() | {"mtime": os.path.getmtime(self.name)}


def _eopatch_dates(root: Path) -> list[dt.date]:
    path = root / "timestamps.json"
    if not path.is_file():
        raise SenclipError(f"{root}: EOPatch has no timestamps.json; cannot date its acquisitions")
    try:
        return parse_dates(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise SenclipError(f"{path}: not valid JSON ({exc.msg})") from exc


def _eopatch_geo(root: Path, height: int, width: int):
    """CRS and affine transform from ``bbox.geojson`` (``None, None`` if absent)."""
    path = root / "bbox.geojson"
    if not path.is_file():
        return None, None
    from rasterio.crs import CRS
    from rasterio.transform import from_bounds

    geo = json.loads(path.read_text())
    xs, ys = zip(*geo["coordinates"][0], strict=False)
    crs_name = geo.get("crs", {}).get("properties", {}).get("name", "")
    m = re.search(r"EPSG:+(\d+)", crs_name)
    crs = CRS.from_epsg(int(m[1])) if m else None
    return crs, from_bounds(min(xs), min(ys), max(xs), max(ys), width, height)


def is_eopatch(path: Path) -> bool:
    return path.is_dir() and (path / "data").is_dir() and (path / "timestamps.json").is_file()
