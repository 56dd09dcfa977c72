"""Cloud-masked, harmonised Sentinel-2 composites of an area from STAC items, one block at a time.

For one block of the area grid (:func:`composite_block`), in this order:

1. **load** every item that reaches the block, each band onto the block's part of the grid
   (:func:`senclip.acquire.area_read.load_scenes`): windowed reads for the items already on the
   area's grid (the tiles of its UTM zone), odc-stac (``odc.stac.load``) for the others
   (reprojection from another UTM zone, resampling of 20/60 m bands by the named
   ``resampling``, nearest by default). odc-stac does not apply ``raster:bands`` scale/offset and
   its own compositing is first-valid, so steps 2-5 are ours, written once here;
2. **harmonise** each item on its own (never by date): the BOA offset decided once per item
   before any block runs (:func:`senclip.acquire.radiometry.decide` from its metadata: Earth
   Search's flag, the processing baseline, the assets' raster metadata, in that order; then
   checked against the item's own values by :func:`senclip.acquire.area_read.check_radiometry`)
   and removed (:func:`~senclip.acquire.radiometry.harmonise`): values become reflectance x
   10000, nodata 0, valid dark pixels at least 1;
3. **mask**: a pixel of an item is kept when every band is non-zero (inside the item's footprint)
   and its SCL class is not one of ``mask_classes`` (default 0 no data, 1 saturated, 3 cloud
   shadow, 8-9 cloud, 10 cirrus; items without SCL are masked by nodata only);
4. **fuse** the items of one solar day (one acquisition cut into tiles, often in two UTM zones)
   into one observation: the first kept pixel in item-id order, so an acquisition counts once
   (:func:`fuse_days`, also used by ``acquire series`` and the ``stac-area`` series source);
5. **composite** per band over the kept observations: ``median`` (default; an even count gives
   the mean of the two middle values, rounded half up to a whole DN since the file holds
   integers) or ``first-valid`` (items ordered by scene cloud cover, least first, then date and
   id: the first kept pixel, all bands from one date).

Monthly (``year`` set: TimeSenCLIP's input): step 5 runs per calendar month of that year, giving
12 composites, each followed by its ``QA`` band (:data:`senclip.data.series.io.QA_BAND`: 1 the
month was composited from clear observations, 2 it had none, 0 nodata: the pixel has no clear
observation all year or lies outside the area). A month without a kept observation is **filled**
with the per-band median of the pixel's composited months (``fill="median"``; ``"none"`` leaves
it nodata). Readers of the stack (``map-pixels``) take only the months whose ``QA`` is 1: the
fill is for viewers and other tools. Sen4Map's published rule (:mod:`senclip.data.sen4map`)
fills an empty month with the median of all the year's acquisitions, cloudy zeros included; here
clouds are masked first, each month counts once (summer's many clear scenes do not outweigh
winter's few), and memory stays one month of scenes per block.

Values are uint16: reflectance x 10000, 0 = nodata (GDAL scale 0.0001). Memory per block of
``b x b`` pixels with ``C`` bands, ``T`` items reaching it (per month when monthly) and ``D``
solar days among them: the load holds ``T x (2 C + 1) x b²`` bytes (uint16 bands, uint8 SCL),
harmonised in place one item at a time (one item's ``2 C x b²`` copy at a time); the kept-pixel
masks ``T x b²``; fusing, when a day has several items, a copy of all bands ``D x 2 C x b²``; the
median one band at a time, ``D x b² x 2`` (the sorted values) plus ``8 x b²``. Monthly adds the 12
composites and their copy for the fill, ``2 x 12 x 2 C x b²``, and the block's output
``12 x 2 (C + 1) x b²``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from senclip.acquire.area import Area, AreaGrid, Block, block_lonlat_bounds, block_mask
from senclip.acquire.area_items import MONTH_DAY, NODATA, CompositeSpec, SceneRef
from senclip.acquire.area_read import configure_gdal, load_scenes
from senclip.acquire.radiometry import harmonise
from senclip.data.radiometry import REFLECTANCE_SCALE
from senclip.data.series.io import QA_BAND, QA_CLEAR, QA_GAP
from senclip.net import RemoteError, RetryPolicy


def observations(
    raw: np.ndarray, scl: np.ndarray, scenes: list[SceneRef], spec: CompositeSpec, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Steps 2-3: harmonised values ``(T, C, h, w)`` and kept pixels ``(T, h, w)``; the per-item records.

    Each item's own decision (``scene.offset_dn``, checked against its values at plan time) is
    applied; ``raw`` is harmonised in place (one item at a time): the values returned are ``raw``.
    """
    values = raw
    keep = np.zeros((len(scenes), *raw.shape[2:]), dtype=bool)
    records = []
    for i, scene in enumerate(scenes):
        decision = scene.decision()
        values[i] = harmonise(raw[i], decision, spec.bands)
        ok = (values[i] != NODATA).all(axis=0) & inside
        if scene.has_scl:
            ok &= ~np.isin(scl[i], np.asarray(spec.mask_classes, dtype=np.uint8))
        keep[i] = ok
        rec = {"id": scene.id, "offset_dn": decision.offset, "kept": int(ok.sum())}
        if decision.check:
            rec["check"] = decision.check
        records.append(rec)
    return values, keep, records


def fuse_days(
    values: np.ndarray, keep: np.ndarray, days: Sequence[str], ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Step 4: one observation per solar day, the first kept pixel in item-id order; and the days, sorted.

    Args:
        values: ``(T, C, …)`` observations (any dtype: values where not kept are never read).
        keep: ``(T, …)`` kept pixels.
        days: each observation's solar day (:func:`senclip.acquire.area_items.solar_day`).
        ids: each observation's item id.
    """
    order_days = sorted(set(days))
    if len(order_days) == len(days):  # one item per day, the usual case: nothing to fuse, nothing copied
        order = [days.index(d) for d in order_days]
        if order == list(range(len(days))):
            return values, keep, order_days
        return values[order], keep[order], order_days
    out = np.zeros((len(order_days), *values.shape[1:]), dtype=values.dtype)
    ok = np.zeros((len(order_days), *keep.shape[1:]), dtype=bool)
    for d, day in enumerate(order_days):
        items = sorted((i for i, s in enumerate(days) if s == day), key=lambda i: ids[i])
        if len(items) == 1:  # values where not kept are never read
            out[d], ok[d] = values[items[0]], keep[items[0]]
            continue
        for i in items:
            take = keep[i] & ~ok[d]
            np.copyto(out[d], values[i], where=take[None])
            ok[d] |= take
    return out, ok, order_days


def median_kept(values: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band median of the kept observations: ``(T, C, h, w)`` uint16 → ``(C, h, w)`` uint16 and counts.

    An even count gives the mean of the two middle values rounded half up; no kept observation
    gives 0 (nodata). Sorting with the dropped values set to 65535, band by band: they sort after
    (or among equal) real values, and only the first ``count`` sorted values are read.
    """
    t, c = values.shape[:2]
    n = keep.sum(axis=0)
    out = np.zeros(values.shape[1:], dtype=np.uint16)
    if t == 0:
        return out, n
    lo_idx = np.maximum(n - 1, 0)[None] // 2
    hi_idx = (n // 2)[None]
    hi_idx = np.minimum(hi_idx, t - 1)
    for b in range(c):
        v = np.where(keep, values[:, b], np.uint16(65535))
        v.sort(axis=0)
        lo = np.take_along_axis(v, lo_idx, axis=0)[0].astype(np.uint32)
        hi = np.take_along_axis(v, hi_idx, axis=0)[0]
        out[b] = np.where(n > 0, (lo + hi + 1) // 2, 0)
    return out, n


def first_kept(values: np.ndarray, keep: np.ndarray, order: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The first kept observation in ``order`` per pixel: ``(C, h, w)`` uint16 and counts."""
    out = np.zeros(values.shape[1:], dtype=np.uint16)
    got = np.zeros(keep.shape[1:], dtype=bool)
    for i in order:
        take = keep[i] & ~got
        out[:, take] = values[i][:, take]
        got |= take
    return out, keep.sum(axis=0)


def _least_cloud_first(scenes: list[SceneRef]) -> list[int]:
    return sorted(
        range(len(scenes)),
        key=lambda i: (
            scenes[i].cloud_cover if scenes[i].cloud_cover is not None else math.inf,
            scenes[i].when,
            scenes[i].id,
        ),
    )


def _reduce(values, keep, scenes: list[SceneRef], method: str) -> tuple[np.ndarray, np.ndarray]:
    if method == "first-valid":
        return first_kept(values, keep, _least_cloud_first(scenes))
    fused, ok, _ = fuse_days(values, keep, [s.solar_day for s in scenes], [s.id for s in scenes])
    return median_kept(fused, ok)


def fill_months(months: np.ndarray, month_ok: np.ndarray) -> np.ndarray:
    """Fill each pixel's months without observation with the per-band median of its composited months."""
    filled = months.copy()
    med, n = median_kept(months, month_ok)
    gap = ~month_ok & (n > 0)[None]
    for m in range(months.shape[0]):
        filled[m][:, gap[m]] = med[:, gap[m]]
    return filled


def composite_block(
    scenes: list[SceneRef],
    grid: AreaGrid,
    area: Area,
    block: Block,
    spec: CompositeSpec,
    policy: RetryPolicy,
    signer: str = "none",
) -> tuple[np.ndarray, dict]:
    """The composite of one block and its record; see the module docstring.

    Returns:
        ``(values, record)``: uint16 ``(len(spec.out_bands), h, w)``; the record counts the
        scenes, the pixels with a composite and the per-item radiometry, and the seconds spent
        loading (odc-stac) and harmonising, masking and compositing.
    """
    t0 = time.perf_counter()
    loading = 0.0

    def load(these):
        nonlocal loading
        t = time.perf_counter()
        got = load_scenes(these, grid, block, spec, policy, signer)
        loading += time.perf_counter() - t
        return got

    def seconds() -> dict:
        return {"load": round(loading, 4), "composite": round(time.perf_counter() - t0 - loading, 4)}

    inside = block_mask(area, grid, block)
    reach = _reaching(scenes, grid, block)
    unread = next((s for s in reach if s.unread), None)
    if unread is not None:
        raise RemoteError(f"item {unread.id}: {unread.unread}")
    shape = (len(spec.out_bands), block.height, block.width)
    if not reach or not inside.any():
        return np.zeros(shape, dtype=np.uint16), {
            "scenes": len(reach),
            "clear": 0,
            "pixels": int(inside.sum()),
        }
    if not spec.monthly:
        raw, scl = load(reach)
        values, keep, records = observations(raw, scl, reach, spec, inside)
        del raw, scl  # (values is raw, harmonised in place)
        out, n = _reduce(values, keep, reach, spec.method)
        return out, {
            "scenes": len(reach),
            "clear": int((n > 0).sum()),
            "pixels": int(inside.sum()),
            "items": records,
            "seconds": seconds(),
        }
    out, month_ok, records = _monthly(reach, spec, inside, load)
    return out, {
        "scenes": len(reach),
        "clear": int(month_ok.any(axis=0).sum()),
        "pixels": int(inside.sum()),
        "items": records,
        "clear_months": [round(float(month_ok[m].sum()) / max(1, int(inside.sum())), 4) for m in range(12)],
        "seconds": seconds(),
    }


def _monthly(reach: list[SceneRef], spec: CompositeSpec, inside: np.ndarray, load) -> tuple:
    """Steps 2-5 per calendar month of ``spec.year``, the gaps filled, each month followed by its QA band.

    Returns:
        ``(values, month_ok, records)``: uint16 ``(12 (C + 1), h, w)``, bool ``(12, h, w)``, item records.
    """
    c, (h, w) = len(spec.bands), inside.shape
    months = np.zeros((12, c, h, w), dtype=np.uint16)
    month_ok = np.zeros((12, h, w), dtype=bool)
    records = []
    for m in range(12):
        these = [s for s in reach if dt.date.fromisoformat(s.solar_day).month == m + 1
                 and dt.date.fromisoformat(s.solar_day).year == spec.year]
        if not these:
            continue
        raw, scl = load(these)
        values, keep, recs = observations(raw, scl, these, spec, inside)
        del raw, scl
        months[m], n = _reduce(values, keep, these, spec.method)
        month_ok[m] = n > 0
        records += recs
    if spec.fill == "median":
        months = fill_months(months, month_ok)
    out = np.zeros((12 * (c + 1), h, w), dtype=np.uint16)
    seen = month_ok.any(axis=0)
    for m in range(12):
        out[m * (c + 1) : m * (c + 1) + c] = months[m]
        out[m * (c + 1) + c] = np.where(month_ok[m], QA_CLEAR, np.where(seen, QA_GAP, NODATA))
    return out, month_ok, records


def _reaching(scenes: list[SceneRef], grid: AreaGrid, block: Block) -> list[SceneRef]:
    """The scenes whose footprint bounds meet the block's (cheap; odc-stac checks the footprint itself)."""
    w, s, e, n = block_lonlat_bounds(grid, block)
    return [
        sc for sc in scenes if sc.bbox[0] <= e and sc.bbox[2] >= w and sc.bbox[1] <= n and sc.bbox[3] >= s
    ]


def write_block(
    path: str | Path, values: np.ndarray, grid: AreaGrid, block: Block, spec: CompositeSpec
) -> Path:
    """Write one block's composite as a GeoTIFF (uint16, deflate), atomically.

    It describes itself as the assembled composite does (band names, GDAL scale 0.0001, for
    monthly composites the ``dates`` and ``bands`` tags), so a series reader takes a block alone.
    A block without a clear pixel has no file (:func:`run_block`).
    """
    import rasterio

    from senclip.outputs import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": block.width,
        "height": block.height,
        "count": values.shape[0],
        "dtype": "uint16",
        "crs": grid.crs,
        "transform": grid.window_transform(block),
        "nodata": NODATA,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    if block.width >= 256 and block.height >= 256:
        profile |= {"tiled": True, "blockxsize": 256, "blockysize": 256}
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(values)
            names = spec.out_bands
            dst.descriptions = tuple(names)
            dst.scales = tuple(1.0 if n == QA_BAND else REFLECTANCE_SCALE for n in names)
            dst.offsets = tuple(0.0 for _ in names)
            if spec.monthly:
                dates = [dt.date(spec.year, m, MONTH_DAY).isoformat() for m in range(1, 13)]
                dst.update_tags(dates=",".join(dates), bands=",".join(spec.bands))
    return path


@dataclass(frozen=True)
class CompositeJob:
    """Everything the blocks need, as plain data (sent once to each Dask worker).

    ``signer``: the resolved signer of the hrefs (:func:`senclip.acquire.stac.resolve_signer`),
    applied by each block right before it reads.
    """

    scenes: tuple[SceneRef, ...]
    grid: AreaGrid
    area: Area
    spec: CompositeSpec
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    signer: str = "none"


def run_block(job: CompositeJob, block: Block, path: str) -> dict:
    """Composite ``block`` into ``path``; the journal record (``ok``, ``empty`` or ``failed``).

    A block without any clear pixel writes no file (``empty``); a remote failure that outlived the
    retries is ``failed`` (a rerun retries it) and names the error.
    """
    configure_gdal(job.policy)
    base = {"block": block.name}
    try:
        values, rec = composite_block(list(job.scenes), job.grid, job.area, block, job.spec, job.policy,
                                      job.signer)
    except RemoteError as exc:
        return base | {"status": "failed", "error": str(exc).splitlines()[0]}
    if rec["clear"] == 0:
        return base | {"status": "empty", **rec}
    write_block(path, values, job.grid, block, job.spec)
    return base | {"status": "ok", "path": str(path), **rec}


__all__ = [
    "CompositeJob",
    "composite_block",
    "fill_months",
    "first_kept",
    "fuse_days",
    "median_kept",
    "observations",
    "run_block",
    "write_block",
]
