"""Raster-backed series (rasterio): folders of dated GeoTIFFs and time stacks.

See :mod:`senclip.data.series.io` for the conventions. Readers open files per
block read, so a series of any length is read with memory bounded by the row
block. :func:`senclip.data.sources.open_series` opens a path of any kind.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from senclip.data.radiometry import file_scaling, to_dn_units
from senclip.data.series.io import DATE_RE, QA_BAND, QA_CLEAR, RASTER_SUFFIXES, SeriesSource, parse_dates
from senclip.errors import DatasetNotFoundError, SenclipError
from senclip.outputs import atomic_path

DATES_TAG = "dates"
BANDS_TAG = "bands"


def _open(path):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise SenclipError(f"{path}: not a readable raster ({str(exc).splitlines()[0]})") from exc


def _window(rows: slice, width: int) -> Window:
    return Window(0, rows.start, width, rows.stop - rows.start)


def _mask_band(names: Sequence[str], mask_band: str) -> tuple[int | None, int | None]:
    """``(index, clear value)`` of a step's validity band: ``mask_band`` (non-zero = cloud: clear value
    ``None``) where the step has it, else a senclip ``QA`` band (clear where 1), else ``(None, None)``."""
    if mask_band in names:
        return names.index(mask_band), (QA_CLEAR if mask_band == QA_BAND else None)
    if QA_BAND in names:
        return names.index(QA_BAND), QA_CLEAR
    return None, None


def _clear(flags: np.ndarray, clear_value: int | None) -> np.ndarray:
    return flags == 0 if clear_value is None else flags == clear_value


def _invalid_nodata(block: np.ndarray, nodata) -> np.ndarray:
    """``(…, h, W)`` bool: any band equal to the nodata value (over axis -3)."""
    if nodata is None or (isinstance(nodata, float) and np.isnan(nodata)):
        return np.zeros(block.shape[:-3] + block.shape[-2:], dtype=bool)
    return (block == nodata).any(axis=-3)


class FolderSource(SeriesSource):
    """A folder of single-date rasters, the date in each file name.

    Each file has the same bands (names from ``bands`` or the band
    descriptions), optionally one cloud band named ``mask_band`` (non-zero =
    cloud) or a ``QA`` band (1 = clear), and the same grid. Files are ordered by date.
    """

    def __init__(self, folder, bands: Sequence[str] | None = None, mask_band: str = "CLM") -> None:
        folder = Path(folder)
        self.name = str(folder)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
        if not files:
            raise DatasetNotFoundError(f"{folder}: no GeoTIFF files (*.tif) in the folder")
        dated = []
        for p in files:
            m = DATE_RE.search(p.stem)
            if m is None:
                raise SenclipError(f"{p}: no date in the file name; name files like S2_20160107.tif")
            dated.append((parse_dates([m[0].replace("_", "-")])[0], p))
        dated.sort()
        self.dates = [d for d, _ in dated]
        self.files = [p for _, p in dated]
        with _open(self.files[0]) as src:
            self.height, self.width, self.crs, self.transform = src.height, src.width, src.crs, src.transform
            names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
            count = src.count
        self.mask_index, self.mask_clear = _mask_band(names, mask_band)
        data_idx = [i for i in range(count) if i != self.mask_index]
        if bands is None:
            bands = [names[i] for i in data_idx]
        if len(bands) != len(data_idx):
            raise SenclipError(f"{self.files[0]}: {len(data_idx)} data bands but "
                               f"{len(bands)} band names given")
        self.bands, self.data_idx, self.count = tuple(bands), data_idx, count
        for p in self.files[1:]:
            with _open(p) as src:
                if src.count != count:
                    raise SenclipError(f"{p}: {src.count} bands where {self.files[0].name} has {count}; "
                                       "every acquisition needs the same bands")
                if (src.height, src.width) != (self.height, self.width) or src.transform != self.transform:
                    raise SenclipError(f"{p}: grid differs from {self.files[0].name}; resample all "
                                       "acquisitions to one grid first")

    def read(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows)
        h = rows.stop - rows.start
        data = np.empty((len(self.files), len(self.bands), h, self.width), dtype=np.float32)
        valid = np.empty((len(self.files), h, self.width), dtype=bool)
        win = _window(rows, self.width)
        for t, p in enumerate(self.files):
            with _open(p) as src:
                block = src.read(window=win)
                nodata = src.nodata
                scaling = file_scaling(src, [i + 1 for i in self.data_idx])
            values = block[self.data_idx]
            data[t] = values if scaling is None else to_dn_units(values, *scaling)
            ok = ~_invalid_nodata(values, nodata) & np.isfinite(data[t]).all(axis=0)
            if scaling is not None:
                ok &= (data[t] > 0).all(axis=0)
            if self.mask_index is not None:
                ok &= _clear(block[self.mask_index], self.mask_clear)
            valid[t] = ok
        return data, valid

    def _identity(self) -> dict:
        stats = [(p.name, p.stat().st_size, p.stat().st_mtime) for p in self.files]
        return super()._identity() | {"files": stats}


class StackSource(SeriesSource):
    """One raster holding the whole series, bands time-major; or a NetCDF cube.

    Args:
        path: GeoTIFF (``T * C`` bands, or ``T * (C + 1)`` with a per-step
            cloud band named ``mask_band``) or NetCDF (one ``(time, y, x)``
            variable per band, optionally a ``mask_band`` variable).
        dates: the ``T`` dates; default: the file's ``dates`` tag, a
            ``<path>.dates.txt`` sidecar or (NetCDF) the CF time axis.
        bands: band names; default: the file's ``bands`` tag or the band
            descriptions of the first step.
        mask: separate validity raster with ``T`` bands (non-zero = invalid).
        mask_band: name of the cloud band (non-zero = cloud); without one, a ``QA`` band
            (:data:`~senclip.data.series.io.QA_BAND`, senclip's monthly composites: 1 = clear).
    """

    def __init__(self, path, dates=None, bands: Sequence[str] | None = None, mask=None,
                 mask_band: str = "CLM") -> None:
        self.path = Path(path)
        self.name = str(self.path)
        if self.path.suffix.lower() in (".nc", ".nc4", ".netcdf"):
            self._init_netcdf(dates, bands, mask_band)
        else:
            self._init_stack(dates, bands, mask_band)
        self.mask_path = Path(mask) if mask is not None else None
        if self.mask_path is not None:
            with _open(self.mask_path) as m:
                shape = (m.count, m.height, m.width)
            if shape != (len(self.dates), self.height, self.width):
                raise SenclipError(f"{mask}: mask shape {shape} does not match the series' "
                                   f"{(len(self.dates), self.height, self.width)} (T, H, W)")

    def _init_stack(self, dates, bands, mask_band: str) -> None:
        with _open(self.path) as src:
            self.height, self.width, self.crs, self.transform = src.height, src.width, src.crs, src.transform
            tags, descriptions, count = src.tags(), list(src.descriptions), src.count
        if dates is None:
            sidecar = self.path.with_name(self.path.name + ".dates.txt")
            dates = tags.get(DATES_TAG) or (str(sidecar) if sidecar.is_file() else None)
        if not dates:
            raise SenclipError(f"{self.path}: stack has no dates (no '{DATES_TAG}' tag, no "
                               f"{self.path.name}.dates.txt); pass --dates")
        self.dates = parse_dates(dates)
        t = len(self.dates)
        if count % t:
            raise SenclipError(f"{self.path}: {count} bands is not a multiple of the {t} dates; "
                               "the stack must hold T x C bands, time-major")
        per_step = count // t
        step_names = [d or f"band{i + 1}" for i, d in enumerate(descriptions[:per_step])]
        self.mask_index, self.mask_clear = _mask_band(step_names, mask_band)
        self.data_idx = [i for i in range(per_step) if i != self.mask_index]
        if bands is None and tags.get(BANDS_TAG):
            bands = tags[BANDS_TAG].split(",")
        if bands is None:
            bands = [step_names[i] for i in self.data_idx]
        if len(bands) != len(self.data_idx):
            raise SenclipError(f"{self.path}: {len(self.data_idx)} data bands per date but {len(bands)} "
                               f"band names {list(bands)}")
        self.bands, self.per_step, self.netcdf = tuple(bands), per_step, None

    def _init_netcdf(self, dates, bands, mask_band: str) -> None:
        with _open(self.path) as src:
            subs = list(src.subdatasets)
        if not subs:
            raise SenclipError(f"{self.path}: NetCDF has no (time, y, x) variables")
        variables = {s.rsplit(":", 1)[-1]: s for s in subs}
        names = [v for v in variables if v != mask_band]
        if bands is not None:
            missing = [b for b in bands if b not in variables]
            if missing:
                raise SenclipError(f"{self.path}: NetCDF has no variables {missing} (it has {names})")
            names = list(bands)
        self.netcdf = {"data": [variables[v] for v in names], "mask": variables.get(mask_band)}
        with _open(self.netcdf["data"][0]) as src:
            self.height, self.width, self.crs, self.transform = src.height, src.width, src.crs, src.transform
            count = src.count
            if dates is None:
                dates = _cf_dates(src)
        if not dates:
            raise SenclipError(f"{self.path}: NetCDF has no time axis; pass --dates")
        self.dates = parse_dates(dates)
        if len(self.dates) != count:
            raise SenclipError(f"{self.path}: {len(self.dates)} dates for {count} time steps")
        for sub in self.netcdf["data"][1:] + ([self.netcdf["mask"]] if self.netcdf["mask"] else []):
            with _open(sub) as src:
                if src.count != count or (src.height, src.width) != (self.height, self.width):
                    raise SenclipError(f"{sub}: shape differs from {self.netcdf['data'][0]}")
        self.bands, self.mask_index, self.mask_clear = tuple(names), None, None

    def read(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows)
        win = _window(rows, self.width)
        t = len(self.dates)
        if self.netcdf is not None:
            data, valid = self._read_netcdf(win)
        else:
            with _open(self.path) as src:
                block, nodata = src.read(window=win), src.nodata
                scaling = file_scaling(src, [i + 1 for i in self.data_idx])
            block = block.reshape(t, self.per_step, *block.shape[1:])
            data = block[:, self.data_idx].astype(np.float32)
            valid = ~_invalid_nodata(data, nodata)
            if scaling is not None:  # GDAL scale/offset of the first step's bands, the same for every step
                data = to_dn_units(data, *scaling, axis=1)
                valid &= (data > 0).all(axis=1)
            if self.mask_index is not None:
                valid &= _clear(block[:, self.mask_index], self.mask_clear)
        valid &= np.isfinite(data).all(axis=1)
        if self.mask_path is not None:
            with _open(self.mask_path) as m:
                valid &= m.read(window=win) == 0
        return data, valid

    def _read_netcdf(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        arrays, nodata_bad = [], None
        for sub in self.netcdf["data"]:
            with _open(sub) as src:
                a = src.read(window=win).astype(np.float32)
                bad = _invalid_nodata(a[:, None], src.nodata)
            arrays.append(a)
            nodata_bad = bad if nodata_bad is None else nodata_bad | bad
        data = np.stack(arrays, axis=1)
        valid = ~nodata_bad
        if self.netcdf["mask"]:
            with _open(self.netcdf["mask"]) as src:
                valid &= src.read(window=win) == 0
        return data, valid

    def _identity(self) -> dict:
        st = self.path.stat()
        return super()._identity() | {"size": st.st_size, "mtime": st.st_mtime}


def _cf_dates(src) -> list[dt.date] | None:
    """Dates of a GDAL NetCDF subdataset's bands from their ``NETCDF_DIM_time`` tags."""
    units = src.tags().get("time#units", "")
    m = re.match(r"\s*(days|hours|minutes|seconds) since (\S+)", units)
    if m is None:
        return None
    origin = dt.datetime.fromisoformat(m[2][:10])
    out = []
    for i in range(1, src.count + 1):
        value = src.tags(i).get("NETCDF_DIM_time")
        if value is None:
            return None
        out.append((origin + dt.timedelta(**{m[1]: float(value)})).date())
    return out


def write_stack(path, data: np.ndarray, dates: Sequence[dt.date], bands: Sequence[str],
                valid: np.ndarray | None = None, crs=None, transform=None, nodata=None,
                tags: dict | None = None, scaling: tuple[Sequence[float], Sequence[float]] | None = None
                ) -> Path:
    """Write a ``(T, C, H, W)`` series as a time-major GeoTIFF stack (atomically).

    Band descriptions name each band; the ``dates`` and ``bands`` tags make it
    self-describing. With ``valid`` (``(T, H, W)`` bool), each step gets an
    extra ``CLM`` band (1 = invalid). ``tags`` are added to the file's tags;
    ``scaling`` = (scales, offsets) of the ``C`` bands becomes GDAL's per-band
    scale/offset of every step (see :mod:`senclip.data.radiometry`).
    """
    t, c, h, w = data.shape
    per_step = c + (valid is not None)
    path = Path(path)
    profile = {"driver": "GTiff", "count": t * per_step, "height": h, "width": w, "dtype": "float32",
               "crs": crs, "transform": transform, "nodata": nodata}
    if h >= 256 and w >= 256:
        profile |= {"tiled": True, "blockxsize": 256, "blockysize": 256}
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            for i in range(t):
                for j in range(c):
                    dst.write(data[i, j].astype(np.float32), i * per_step + j + 1)
                    dst.set_band_description(i * per_step + j + 1, bands[j])
                if valid is not None:
                    dst.write((~valid[i]).astype(np.float32), i * per_step + c + 1)
                    dst.set_band_description(i * per_step + c + 1, "CLM")
            dst.update_tags(**{DATES_TAG: ",".join(d.isoformat() for d in dates), BANDS_TAG: ",".join(bands)},
                            **{k: str(v) for k, v in (tags or {}).items()})
            if scaling is not None:
                extra = [(1.0, 0.0)] * (per_step - c)
                per = list(zip(scaling[0], scaling[1], strict=True)) + extra
                dst.scales = tuple(float(s) for _ in range(t) for s, _o in per)
                dst.offsets = tuple(float(o) for _ in range(t) for _s, o in per)
    return path


def write_dated_folder(folder, data: np.ndarray, dates: Sequence[dt.date], bands: Sequence[str],
                       valid: np.ndarray | None = None, crs=None, transform=None,
                       prefix: str = "S2_") -> list[Path]:
    """Write a ``(T, C, H, W)`` series as one GeoTIFF per date (``<prefix>YYYYMMDD.tif``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, d in enumerate(dates):
        p = folder / f"{prefix}{d:%Y%m%d}_{i:03d}.tif"
        write_stack(p, data[i:i + 1], [d], bands, None if valid is None else valid[i:i + 1], crs, transform)
        out.append(p)
    return out
