"""Reading a scene: band selection by name, reflectance scaling, nodata.

:class:`RasterSource` wraps any rasterio-readable input (GeoTIFF, COG, VRT,
``/vsicurl/`` or ``https://`` URL of a STAC asset) and reads horizontal
strips of it with windowed reads, so memory depends on the strip, never on
the scene. Each reading thread gets its own dataset handle (GDAL handles
are not thread-safe).

Band choice (``bands``, ``--input-bands``): names matched against the band descriptions of the
file (e.g. ``B04,B03,B02``), or 1-based band indexes (``4,3,2``); by
default the model's band names are looked up in the descriptions, and a file
without descriptions is read in order if it has exactly as many bands as the
model.

Scaling: ``value * scale + offset``, per band. When the file carries GDAL
per-band scale/offset metadata (what ``senclip acquire`` writes, e.g. scale
``0.0001`` and offset ``-0.1`` for raw L2A digital numbers of processing
baseline 04.00 or later, see :mod:`senclip.data.radiometry`), it is used.
``scale``/``offset`` (``--scale``/``--offset``) override it, with a note on
stderr when they disagree. Without metadata, defaults by data type: ``uint8`` →
``1/255`` (8-bit true colour, as the EuroSAT RGB JPEGs), other integers →
``1e-4`` (Sentinel-2 digital numbers to reflectance; for L2A products of
baseline 04.00 or later without metadata, pass ``offset=-0.1``, i.e. the
``BOA_ADD_OFFSET`` of -1000 DN), floats → ``1`` (reflectance). The values are
computed in float64, so a float32 reflectance file and a uint16 DN file with
scale/offset of the same scene give the same values. When the tower takes the
RGB bands (B04, B03, B02) of a reflectance file (anything but ``uint8``) and no
``scale`` is given, the reflectance is then stretched to display values as
:func:`senclip.data.transforms.true_colour` does for the datasets (x3.5,
clipped to [0, 1]), since RGB CLIP towers were trained on photo-like images;
pass ``scale=1`` for a float file that already holds display values.

Validity: a pixel is nodata if any selected band equals the nodata value
(the file's, or ``nodata`` when given), is not finite, is ≤ 0 after scaling
(reflectance files: DN below the BOA offset, fill values), or if a mask band
(e.g. a cloud mask or the L2A scene classification) flags it: any non-zero
value, or one of ``mask_values`` (SCL: ``3,8,9,10`` = cloud shadow, medium
and high probability cloud, cirrus).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from senclip.bands import RGB_BANDS, band_indices
from senclip.data.radiometry import apply_scaling
from senclip.data.transforms import TRUE_COLOUR_GAIN
from senclip.errors import SenclipError


@dataclass(frozen=True)
class SourceOptions:
    """How to read a scene (see the module docstring).

    Attributes:
        bands: band names or 1-based indexes, in the model's band order;
            ``None`` picks the model's bands by name.
        scale: multiplier to reflectance / [0, 1]; ``None`` = the file's GDAL
            scale, else by data type.
        offset: added after scaling; ``None`` = the file's GDAL offset, else 0.
        nodata: overrides the file's nodata value.
        mask_band: name or 1-based index of a mask band (clouds, SCL).
        mask_values: values of the mask band that mean "masked"; ``None``
            masks every non-zero value.
        allow_no_crs: map a scene without a CRS (output without a CRS too).
    """

    bands: tuple[str | int, ...] | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    mask_band: str | int | None = None
    mask_values: tuple[float, ...] | None = None
    allow_no_crs: bool = False


def default_scale(dtype: str) -> float:
    """Scale used when none is given: 1/255 for uint8, 1e-4 for other ints, 1 for floats."""
    kind = np.dtype(dtype)
    if kind == np.uint8:
        return 1 / 255
    return 1e-4 if np.issubdtype(kind, np.integer) else 1.0


def _one(values: list[float]) -> float | list[float]:
    return values[0] if len(set(values)) == 1 else list(values)


def _fmt(values: list[float]) -> str:
    return ",".join(f"{v:g}" for v in dict.fromkeys(values))


def _open(path: str) -> rasterio.io.DatasetReader:
    try:
        return rasterio.open(path)
    except RasterioError as exc:
        raise SenclipError(f"cannot open {path} as a raster: missing, corrupt, truncated or not a "
                           f"GeoTIFF/COG/VRT ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class RasterSource:
    """A scene opened for strip-wise reading with the bands a model needs.

    Args:
        path: file path or URL (anything ``rasterio.open`` reads).
        model_bands: the image tower's band names, in order.
        options: :class:`SourceOptions`.

    Raises:
        SenclipError: unreadable/corrupt file, missing CRS, too few bands,
            band names not found.
    """

    def __init__(self, path: str, model_bands: Sequence[str], options: SourceOptions | None = None) -> None:
        self.path = str(path)
        self.options = options or SourceOptions()
        self.model_bands = tuple(model_bands)
        self._local = threading.local()
        self._handles: list = []
        self._lock = threading.Lock()
        with _open(self.path) as ds:
            self.width, self.height, self.count = ds.width, ds.height, ds.count
            self.crs, self.transform = ds.crs, ds.transform
            self.dtype = ds.dtypes[0]
            self.descriptions = tuple((d or "").strip().upper() for d in ds.descriptions)
            self.block_height = ds.block_shapes[0][0] if ds.block_shapes else 256
            file_nodata = ds.nodata
            file_scales, file_offsets = ds.scales, ds.offsets
        if self.crs is None and not self.options.allow_no_crs:
            raise SenclipError(f"{self.path} has no CRS, so the map could not be placed on the ground; "
                               "fix the file or pass --allow-no-crs")
        self.indexes = self._resolve_bands()
        self.mask_index = self._resolve_mask_band()
        self.nodata = self.options.nodata if self.options.nodata is not None else file_nodata
        self.scale, self.offset = self._scaling(file_scales, file_offsets)
        self.gain = TRUE_COLOUR_GAIN if self._true_colour_default() else 1.0
        self.reflectance = np.dtype(self.dtype) != np.uint8
        self._check_readable()

    def _scaling(self, file_scales, file_offsets) -> tuple[float | list[float], float | list[float]]:
        """Per-band (scale, offset): options, else the file's GDAL metadata, else by data type.

        Returned as plain floats when every band has the same value (the usual case).
        """
        meta = [(1.0 if file_scales[i - 1] is None else float(file_scales[i - 1]),
                 0.0 if file_offsets[i - 1] is None else float(file_offsets[i - 1])) for i in self.indexes]
        has_meta = any(s != 1.0 or o != 0.0 for s, o in meta)
        opt_s, opt_o = self.options.scale, self.options.offset
        if has_meta:
            scales, offsets = [s for s, _ in meta], [o for _, o in meta]
        else:
            scales, offsets = [default_scale(self.dtype)] * len(meta), [0.0] * len(meta)
        if opt_s is not None or opt_o is not None:
            given = [opt_s if opt_s is not None else s for s in scales], \
                    [opt_o if opt_o is not None else o for o in offsets]
            if has_meta and given != (scales, offsets):
                print(f"note: {self.path}: --scale/--offset ({_fmt(given[0])}, {_fmt(given[1])}) override the "
                      f"file's GDAL scale/offset ({_fmt(scales)}, {_fmt(offsets)})", file=sys.stderr)
            scales, offsets = given
        return _one(scales), _one(offsets)

    def _true_colour_default(self) -> bool:
        """RGB tower, reflectance (any data type but uint8), and no --scale given."""
        return (self.options.scale is None and self.model_bands == RGB_BANDS
                and np.dtype(self.dtype) != np.uint8)

    # -- band resolution -------------------------------------------------
    def _by_name(self, names: Sequence[str]) -> list[int]:
        if not any(self.descriptions):
            raise SenclipError(f"band names {','.join(names)} not found: {self.path} has no band "
                               "descriptions; pass 1-based indexes instead, e.g. --input-bands 4,3,2")
        return [i + 1 for i in band_indices(self.descriptions, names)]

    def _resolve_bands(self) -> list[int]:
        need = len(self.model_bands)
        spec = self.options.bands
        if spec is None:
            if any(self.descriptions) and all(b in self.descriptions for b in self.model_bands):
                return self._by_name(self.model_bands)
            if all(self.descriptions) and self.count >= need:
                missing = [b for b in self.model_bands if b not in self.descriptions]
                raise SenclipError(f"band(s) {','.join(missing)} not found among the band descriptions "
                                   f"{','.join(self.descriptions)} of {self.path}; pass --input-bands "
                                   "(names or 1-based indexes)")
            if self.count < need:
                raise SenclipError(f"{self.path} has {self.count} band(s) but the model needs {need} "
                                   f"({','.join(self.model_bands)}); use a model with fewer bands")
            if self.count == need:
                return list(range(1, need + 1))
            raise SenclipError(f"cannot tell which {need} of the {self.count} bands of {self.path} are "
                               f"{','.join(self.model_bands)}; pass --input-bands")
        if len(spec) != need:
            raise SenclipError(f"--input-bands gives {len(spec)} band(s) but the model needs {need} "
                               f"({','.join(self.model_bands)})")
        if isinstance(spec[0], str):
            if set(spec) != set(self.model_bands):
                raise SenclipError(f"--input-bands {','.join(map(str, spec))} are not the model's bands "
                                   f"({','.join(self.model_bands)}); build the model with these bands")
            return self._by_name(self.model_bands)
        bad = [i for i in spec if not 1 <= int(i) <= self.count]
        if bad:
            raise SenclipError(f"band index {bad[0]} out of range: {self.path} has {self.count} band(s)")
        return [int(i) for i in spec]

    def _resolve_mask_band(self) -> int | None:
        mb = self.options.mask_band
        if mb is None:
            return None
        if isinstance(mb, int) or str(mb).isdigit():
            idx = int(mb)
            if not 1 <= idx <= self.count:
                raise SenclipError(f"mask band {idx} out of range: {self.path} has {self.count} band(s)")
            return idx
        return self._by_name([str(mb).upper()])[0]

    def _check_readable(self) -> None:
        """Decode the last pixel row: a truncated file fails here, before any work."""
        ds = self.dataset()
        try:
            ds.read(self.indexes, window=Window(0, self.height - 1, self.width, 1))
        except RasterioError as exc:
            raise SenclipError(f"{self.path} is corrupt or truncated ({_first_line(exc)}); "
                               "re-download or re-export it") from exc

    # -- reading ------------------------------------------------------------
    def dataset(self) -> rasterio.io.DatasetReader:
        """This thread's own handle on the file."""
        ds = getattr(self._local, "ds", None)
        if ds is None:
            ds = _open(self.path)
            self._local.ds = ds
            with self._lock:
                self._handles.append(ds)
        return ds

    def close(self) -> None:
        with self._lock:
            for ds in self._handles:
                ds.close()
            self._handles.clear()
        self._local = threading.local()

    def read_strip(self, y0: int, y1: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[y0, y1)`` padded to ``width`` columns.

        Returns:
            ``(data, valid)``: float32 ``(C, y1 - y0, width)`` scaled values
            with 0 where not valid, and a bool ``(y1 - y0, width)`` validity
            mask (``False`` in the padding past the scene edge).
        """
        h = y1 - y0
        data = np.zeros((len(self.indexes), h, width), dtype=np.float32)
        valid = np.zeros((h, width), dtype=bool)
        rows = max(0, min(y1, self.height) - y0)
        if rows == 0:
            return data, valid
        part, ok = self._read_scaled(y0, rows)
        if self.gain != 1.0:
            part = np.clip(part * np.float32(self.gain), 0.0, 1.0)
        part[:, ~ok] = 0.0
        data[:, :rows, :self.width] = part
        valid[:rows, :self.width] = ok
        return data, valid

    def read_valid(self, y0: int, y1: int) -> np.ndarray:
        """Validity mask of rows ``[y0, y1)`` (inside the scene) at input resolution."""
        return self._read_scaled(y0, min(y1, self.height) - y0)[1]

    def _read_scaled(self, y0: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Scaled float32 values (C, rows, W) and validity; reflectance ≤ 0 is invalid."""
        raw, ok = self._read_raw(y0, rows)
        part = apply_scaling(raw, np.broadcast_to(self.scale, len(self.indexes)),
                             np.broadcast_to(self.offset, len(self.indexes)))
        if self.reflectance:
            ok &= ~(part <= 0).any(axis=0)
        return part, ok

    def _read_raw(self, y0: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        ds = self.dataset()
        window = Window(0, y0, self.width, rows)
        try:
            raw = ds.read(self.indexes, window=window)
            mask = ds.read(self.mask_index, window=window) if self.mask_index else None
        except RasterioError as exc:
            raise SenclipError(f"{self.path}: cannot read rows {y0}-{y0 + rows} ({_first_line(exc)}); "
                               "the file is corrupt or truncated") from exc
        ok = np.ones(raw.shape[1:], dtype=bool)
        if self.nodata is not None and not np.isnan(self.nodata):
            ok &= ~(raw == np.asarray(self.nodata).astype(raw.dtype)).any(axis=0)
        if np.issubdtype(raw.dtype, np.floating):
            ok &= np.isfinite(raw).all(axis=0)
        if mask is not None:
            if self.options.mask_values is None:
                ok &= mask == 0
            else:
                ok &= ~np.isin(mask, np.asarray(self.options.mask_values))
        return raw, ok

    def cache_bytes(self) -> int:
        """GDAL block cache that holds two block rows of the bands read (32 MiB - 1 GiB).

        Strips are thinner than blocks, so each block row is decoded once and
        reused from the cache; capping the cache keeps memory independent of
        the scene size (GDAL's default grows up to 5% of the RAM).
        """
        bands = len(self.indexes) + (1 if self.mask_index else 0)
        need = 2 * self.block_height * self.width * bands * np.dtype(self.dtype).itemsize
        return int(min(max(need, 32 * 2**20), 2**30))

    def identity(self) -> dict:
        """Facts that make a run of this scene reproducible (for resume checks)."""
        info: dict = {"path": self.path, "size": [self.width, self.height], "indexes": self.indexes,
                      "scale": self.scale, "gain": self.gain, "offset": self.offset, "nodata": self.nodata,
                      "mask": [self.mask_index, self.options.mask_values]}
        if os.path.exists(self.path):
            st = os.stat(self.path)
            info["file"] = [st.st_size, st.st_mtime_ns]
        return info
