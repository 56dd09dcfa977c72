"""Per-band scale/offset metadata of Sentinel-2 rasters: read it, apply it, write it.

senclip's one radiometric convention for Sentinel-2 L2A (what ``acquire`` writes,
what the datasets and readers expect): **harmonised digital numbers**,
reflectance x 10,000 with the ``BOA_ADD_OFFSET`` of processing baseline ≥ 04.00
removed, i.e. the pre-2022 convention (``reflectance = DN x 1e-4``). Files say so
with GDAL's per-band scale/offset (``scale=0.0001``, ``offset=0``) and the tags in
:data:`TAGS`. Files that keep raw DN of baseline ≥ 04.00 (``acquire --radiometry
raw``, Planetary Computer assets) carry ``offset=-0.1`` instead, so any reader that
honours the metadata gets the same reflectance from both.

This module sits in the data layer because both the datasets (training chips,
series stacks) and :mod:`senclip.mapping.source` read files with it; the decision
of *which* offset a STAC item needs lives in :mod:`senclip.acquire.radiometry`.

A file has scaling metadata when any of the bands read has a GDAL scale ≠ 1 or an
offset ≠ 0 (GDAL reports 1 and 0 when there is none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REFLECTANCE_SCALE = 1e-4
"""Digital numbers to reflectance (L1C and harmonised L2A)."""

BOA_ADD_OFFSET_DN = 1000
"""The L2A ``BOA_ADD_OFFSET`` of processing baseline 04.00 and later, as a positive DN shift."""

CONVENTION = "harmonised"
"""Value of the ``radiometry`` tag of a file in senclip's convention (offset removed)."""

RAW = "raw"
"""Value of the ``radiometry`` tag of a file holding the provider's digital numbers unchanged."""

TAGS = ("radiometry", "radiometry_convention", "boa_offset_dn", "boa_offset_source", "processing_baseline")
"""GeoTIFF tags that ``acquire`` and ``harmonise`` write (see :func:`convention_tags`)."""


def convention_tags(mode: str, offset_dn: int, source: str, baseline: str | None) -> dict[str, str]:
    """The tags that describe a chip's radiometry.

    Args:
        mode: :data:`CONVENTION` (offset removed from the values) or :data:`RAW`.
        offset_dn: the BOA offset of the source product in DN (0 or 1000).
        source: which metadata decided ``offset_dn`` (see ``senclip.acquire.radiometry``).
        baseline: the product's processing baseline, when known.
    """
    text = ("reflectance = DN * 0.0001 (BOA offset removed; nodata 0, valid pixels >= 1)"
            if mode == CONVENTION else f"reflectance = (DN - {offset_dn}) * 0.0001 (provider DN; nodata 0)")
    return {"radiometry": mode, "radiometry_convention": text, "boa_offset_dn": str(offset_dn),
            "boa_offset_source": source, "processing_baseline": baseline or "unknown"}


def file_scaling(src, indexes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """GDAL per-band ``(scales, offsets)`` of the 1-based ``indexes`` of an open rasterio dataset.

    Returns ``None`` when none of these bands has a scale other than 1 or an
    offset other than 0 (no metadata; GDAL's defaults).
    """
    indexes = list(indexes) if indexes is not None else list(range(1, src.count + 1))
    scales = np.array([src.scales[i - 1] if src.scales[i - 1] is not None else 1.0 for i in indexes])
    offsets = np.array([src.offsets[i - 1] if src.offsets[i - 1] is not None else 0.0 for i in indexes])
    if np.all(scales == 1.0) and np.all(offsets == 0.0):
        return None
    return scales.astype(np.float64), offsets.astype(np.float64)


def apply_scaling(raw: np.ndarray, scales, offsets, axis: int = 0) -> np.ndarray:
    """``raw * scale + offset`` per band along ``axis``, computed in float64, returned as float32.

    Computing in float64 makes a uint16 DN file with scale/offset and a float32
    file of the same reflectance give the same float32 values. Bands are done
    in chunks of 65,536 values, so the float64 temporary stays small.
    """
    raw = np.moveaxis(raw, axis, 0)
    out = np.empty(raw.shape, dtype=np.float32)
    scales = np.broadcast_to(np.asarray(scales, np.float64), (raw.shape[0],))
    offsets = np.broadcast_to(np.asarray(offsets, np.float64), (raw.shape[0],))
    flat_in, flat_out = raw.reshape(raw.shape[0], -1), out.reshape(raw.shape[0], -1)
    step = 1 << 16
    for i in range(raw.shape[0]):
        if scales[i] == 1.0 and offsets[i] == 0.0:
            flat_out[i] = flat_in[i]
            continue
        for j in range(0, flat_in.shape[1], step):
            flat_out[i, j:j + step] = flat_in[i, j:j + step].astype(np.float64) * scales[i] + offsets[i]
    return np.moveaxis(out, 0, axis)


def to_dn_units(raw: np.ndarray, scales, offsets, axis: int = 0) -> np.ndarray:
    """Values in harmonised DN units (reflectance x 10,000), float32, from a file's scale/offset.

    The datasets and series readers keep values in DN units (their transforms
    scale by 1e-4); this puts a file with metadata (e.g. raw DN with
    ``offset=-0.1``) in those units: ``(raw * scale + offset) * 10000``.
    """
    s = np.asarray(scales, np.float64) / REFLECTANCE_SCALE
    o = np.asarray(offsets, np.float64) / REFLECTANCE_SCALE
    return apply_scaling(raw, s, o, axis)


def read_dn_units(src, data: np.ndarray, indexes: Sequence[int] | None = None) -> np.ndarray:
    """``data`` (bands first, read from ``src``) in harmonised DN units when ``src`` has GDAL scale/offset.

    Without metadata ``data`` is returned unchanged (stored digital numbers).
    With it: :func:`to_dn_units`, and pixels ≤ 0 after scaling, NaN or nodata
    become 0 (the datasets' nodata value) in every band.
    """
    scaling = file_scaling(src, indexes)
    if scaling is None:
        return data
    values = to_dn_units(data, *scaling)
    values[:, invalid_values(values, data, src.nodata)] = 0.0
    return values


def invalid_values(values: np.ndarray, raw: np.ndarray | None = None, nodata=None,
                   axis: int = 0) -> np.ndarray:
    """Pixels to mask: any band ≤ 0 after scaling, not finite, or (in ``raw``) equal to ``nodata``.

    ``values`` are scaled values (bands along ``axis``); the result has that
    axis removed.
    """
    bad = ~np.isfinite(values).all(axis=axis) | (values <= 0).any(axis=axis)
    if raw is not None and nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        bad |= (raw == np.asarray(nodata).astype(raw.dtype)).any(axis=axis)
    return bad


__all__ = ["BOA_ADD_OFFSET_DN", "CONVENTION", "RAW", "REFLECTANCE_SCALE", "TAGS", "apply_scaling",
           "convention_tags", "file_scaling", "invalid_values", "read_dn_units", "to_dn_units"]
