"""An area and a season in, composites and land-use maps out (``composite``, ``map --bbox``, ``map-pixels``).

The steps, each resumable on its own:

1. **plan** (:func:`plan_area`): check the area and the time, choose the grid
   (:func:`senclip.acquire.area.area_grid`), refuse an area above ``--max-area-km2``, search the
   catalogue, decide each item's radiometry. Nothing is written before this succeeds.
2. **composite** (:func:`build_composite`): every block composited on its own
   (:func:`senclip.acquire.composite.run_block`), here or on a Dask cluster, journalled in
   ``WORK/blocks.jsonl``; then the blocks are assembled into one COG with its STAC Item.
3. **map** (:func:`map_area`, :func:`map_pixels_area`): every block mapped on its own from the
   composite (a SenCLIP tile map reads its block plus the overlap its tiles need, so a block's
   cells are those of a map of the whole composite), journalled likewise, then assembled into
   the class-map COG with legend, quick-look, QGIS style and STAC Item.

A killed run, rerun with the same arguments, skips the journalled blocks and gives the same
bytes; a block whose reads failed after the retries is reported and retried by the rerun.
Composites are kept in the cache folder (``--cache``, default ``OUTPUT_composites/``) and reused
by a rerun with other mapping options; a cache holding another request's composite is refused
unless ``--overwrite``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from senclip.acquire.area import Area, AreaGrid, Block, area_grid, check_size
from senclip.acquire.composite import (
    CompositeJob,
    CompositeSpec,
    SceneRef,
    run_block,
    scene_refs,
    search_area,
)
from senclip.acquire.jobs import Journal
from senclip.acquire.stac import open_catalog
from senclip.areas.blocks import run_blocks
from senclip.areas.mosaic import read_decimated, write_composite
from senclip.errors import SenclipError
from senclip.net import RetryPolicy
from senclip.outputs import write_text

IDENTITY = "identity.json"


class NothingClearError(SenclipError):
    """Every pixel of the area is clouded (or nodata) in every scene: nothing is written."""


@dataclass(frozen=True)
class AreaRequest:
    """What to composite: catalogue, area, time, bands and method, grid options (the shared flags)."""

    stac_url: str
    area: Area
    start: dt.date
    end: dt.date
    spec: CompositeSpec
    collection: str = "sentinel-2-l2a"
    signer: str = "auto"
    crs: str | None = None
    max_cloud: float = 80.0
    block_size: int = 1024
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class AreaPlan:
    """A checked request: its grid, the scenes found, the composite's blocks."""

    request: AreaRequest
    grid: AreaGrid
    scenes: tuple[SceneRef, ...]

    @property
    def blocks(self) -> list[Block]:
        return self.grid.blocks(self.request.block_size)

    def identity(self) -> dict:
        """Everything the composite depends on (a cache holding another identity is not reused)."""
        r = self.request
        return {
            "stac_url": r.stac_url,
            "collection": r.collection,
            "area": r.area.wkt,
            "mask": r.area.mask,
            "start": r.start.isoformat(),
            "end": r.end.isoformat(),
            "spec": r.spec.identity(),
            "grid": self.grid.identity(),
            "block_size": r.block_size,
            "max_cloud": r.max_cloud,
            "items": [s.id for s in self.scenes],
        }

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def provenance(self) -> dict:
        r = self.request
        start, end = (
            (r.start, r.end)
            if not r.spec.monthly
            else (dt.date(r.spec.year, 1, 1), dt.date(r.spec.year, 12, 31))
        )
        return {
            "stac_url": r.stac_url,
            "collection": r.collection,
            "items": [s.id for s in self.scenes],
            "start": start.isoformat(),
            "end": end.isoformat(),
            "area": r.area.source,
            "grid": f"EPSG:{self.grid.epsg} {self.grid.resolution:g} m, origin ({self.grid.x0:.0f}, "
            f"{self.grid.y1:.0f}), {self.grid.width} x {self.grid.height} px",
            "baselines": sorted({s.baseline or "unknown" for s in self.scenes}),
        }


def plan_area(request: AreaRequest, max_area_km2: float = 1000.0, yes: bool = False) -> AreaPlan:
    """Grid, size check, search and radiometry of ``request``; one-line errors, nothing written.

    Raises:
        SenclipError: area too large without ``yes``, no item in the range, an item without a band;
            :class:`~senclip.net.RemoteError` when the catalogue cannot be reached after the retries.
    """
    r = request
    grid = area_grid(r.area, r.crs)
    check_size(grid, max_area_km2, yes)
    client = open_catalog(r.stac_url, r.policy, r.signer)
    items = search_area(client, r.collection, r.area, r.start, r.end, r.policy, r.max_cloud)
    if not items:
        raise SenclipError(
            f"no item of collection {r.collection} at {r.stac_url} covers {r.area.source} between "
            f"{r.start} and {r.end} with at most {r.max_cloud:g} % scene cloud; widen --time "
            "or --max-cloud"
        )
    return AreaPlan(r, grid, tuple(scene_refs(items, r.spec.bands)))


def check_identity(folder: Path, identity: dict, overwrite: bool, what: str) -> bool:
    """Whether ``folder`` holds work of ``identity``; record it if the folder is new (returns False then).

    Raises:
        SenclipError: the folder holds another identity and ``overwrite`` is false.
    """
    path = folder / IDENTITY
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        if old == identity:
            return True
        if not overwrite:
            diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            raise SenclipError(
                f"{folder} holds the {what} of another request ({', '.join(diff) or 'all'} differ); "
                "pass another --cache folder, or --overwrite to replace it"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(identity, indent=1, sort_keys=True))
    return False


def build_composite(
    plan: AreaPlan,
    out: Path,
    work: Path,
    scheduler: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Composite every block into ``work/blocks`` and assemble ``out`` (COG + STAC Item).

    Returns:
        A summary: blocks, their counts by status, the failed ones (then ``out`` is not written).

    Raises:
        NothingClearError: no block has a clear pixel (``work`` is removed, nothing written).
    """
    created = not work.exists()
    check_identity(work, plan.identity(), overwrite, "composite")
    blocks = plan.blocks
    paths = {b.name: work / "blocks" / f"{b.name}.tif" for b in blocks}
    job = CompositeJob(plan.scenes, plan.grid, plan.request.area, plan.request.spec, plan.request.policy)
    journal = Journal(work / "blocks.jsonl", key=("block",))
    t0 = time.perf_counter()
    records = run_blocks(run_block, job, blocks, paths, journal, scheduler, progress, "composite", plan.key())
    summary = _summary(records, "composite")
    summary["seconds"] = {"blocks": round(time.perf_counter() - t0, 3)}
    if summary["failed"]:
        return summary
    if not any(r["status"] == "ok" for r in records):
        if created:
            shutil.rmtree(work, ignore_errors=True)
        r = plan.request
        raise NothingClearError(
            f"every pixel of {r.area.source} is clouded or nodata in all {len(plan.scenes)} scene(s) between "
            f"{r.start} and {r.end} (SCL classes {','.join(map(str, r.spec.mask_classes))} masked); nothing "
            "written — widen --time or change --mask-classes"
        )
    t0 = time.perf_counter()
    write_composite(out, work, plan.grid, blocks, records, paths, plan.request.spec, plan.provenance())
    summary["seconds"]["assemble"] = round(time.perf_counter() - t0, 3)
    summary["output"] = str(out)
    return summary


def _summary(records: list[dict], what: str) -> dict:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {
        "what": what,
        "blocks": len(records),
        "counts": counts,
        "failed": [
            {"block": r["block"], "error": r.get("error", "")} for r in records if r["status"] == "failed"
        ],
    }


def composite_area(
    plan: AreaPlan, out: Path, scheduler: str | None = None, progress: bool = True, overwrite: bool = False
) -> dict:
    """``senclip composite``: the COG at ``out``; its blocks stay in ``OUT.blocks/`` until it is written."""
    work = out.with_name(out.name + ".blocks")
    summary = build_composite(plan, out, work, scheduler, progress, overwrite)
    if not summary["failed"]:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def cached_composite(
    plan: AreaPlan, cache: Path, scheduler: str | None, progress: bool, overwrite: bool
) -> tuple[dict, Path, Path]:
    """The composite of ``plan`` in ``cache`` (built, or reused when a run already made it)."""
    name = "monthly" if plan.request.spec.monthly else "composite"
    out, work = cache / f"{name}.tif", cache / f"{name}.blocks"
    created = not cache.exists()
    cache.mkdir(parents=True, exist_ok=True)
    ready = check_identity(work, plan.identity(), overwrite, "composite")
    if ready and out.is_file() and (work / "done").is_file():
        return {"what": "composite", "reused": True, "failed": [], "output": str(out)}, out, work
    try:
        summary = build_composite(plan, out, work, scheduler, progress, overwrite)
    except NothingClearError:
        if created:
            shutil.rmtree(cache, ignore_errors=True)
        raise
    if not summary["failed"]:
        write_text(work / "done", str(out.name))
    return summary, out, work


# ---- SenCLIP tile maps ------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaMapJob:
    """What a map block needs (picklable): the map job, the composite, the grid, tiling."""

    map_job: object  # senclip.mapping.scenes.MapJob
    composite: str
    grid: AreaGrid
    tile: int
    stride: int
    unit: int  # composite pixels per map cell (stride at tile resolution, 1 at input resolution)


def _window_profile(src, x0: int, y0: int, w: int, h: int) -> dict:
    from rasterio.windows import Window
    from rasterio.windows import transform as wtransform

    return {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": src.count,
        "dtype": src.dtypes[0],
        "crs": src.crs,
        "transform": wtransform(Window(x0, y0, w, h), src.transform),
        "nodata": src.nodata,
        "compress": "deflate",
    }


def _span(start: int, size: int, total: int, tile: int, stride: int) -> tuple[int, int]:
    """The pixels ``[a, b)`` of the composite a block of ``[start, start + size)`` is mapped from.

    The tiles covering the block's cells start up to ``tile - stride`` pixels before it and end as
    far after it; at the area's far edge the span reaches back to hold one whole tile, as a map of
    the whole composite does (its last tile overhangs the edge). ``a`` stays on the cell grid.
    """
    halo = tile - stride
    a, b = max(0, start - halo), min(total, start + size + halo)
    if b - a < tile:
        a = max(0, min(a, (b - tile) // stride * stride))
    return a, b


def map_block(job: AreaMapJob, block: Block, path: str) -> dict:
    """Map one block of the area from the composite (with the overlap its tiles need); crop its cells."""
    import rasterio
    from rasterio.windows import Window

    from senclip.mapping.mapper import EmptySceneError, map_scene
    from senclip.mapping.scenes import build_job
    from senclip.mapping.writers import NODATA_CLASS
    from senclip.outputs import atomic_path

    out = Path(path)
    tmp = out.with_name(out.stem + ".work")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    g = job.grid
    x0, x1 = _span(block.x, block.width, g.width, job.tile, job.stride)
    y0, y1 = _span(block.y, block.height, g.height, job.tile, job.stride)
    cells_w, cells_h = math.ceil(block.width / job.unit), math.ceil(block.height / job.unit)
    classes = np.full((cells_h, cells_w), NODATA_CLASS, dtype=np.uint8)
    status, tiles = "ok", 0
    try:
        with rasterio.open(job.composite) as src:
            data = src.read(window=Window(x0, y0, x1 - x0, y1 - y0))
            if (data != 0).all(axis=0).any():
                scene = tmp / "window.tif"
                with rasterio.open(scene, "w", **_window_profile(src, x0, y0, x1 - x0, y1 - y0)) as dst:
                    dst.write(data)
                    dst.descriptions = src.descriptions
                    dst.scales, dst.offsets = src.scales, src.offsets
                    dst.update_tags(**src.tags())
            else:
                scene = None
        del data
        if scene is not None and (x1 - x0) >= job.tile and (y1 - y0) >= job.tile:
            model, classifier = build_job(job.map_job)
            opts = replace(
                job.map_job.options, quicklook=False, sidecars=False, progress=False, probabilities=None
            )
            try:
                tiles = map_scene(model, classifier, str(scene), tmp / "map.tif", opts)["tiles"]
                with rasterio.open(tmp / "map.tif") as m:
                    cls = m.read(1)
                ox, oy = (block.x - x0) // job.unit, (block.y - y0) // job.unit
                classes = np.ascontiguousarray(cls[oy : oy + cells_h, ox : ox + cells_w])
            except EmptySceneError:
                status = "empty"
        else:
            status = "empty"
        profile = {
            "driver": "GTiff",
            "width": cells_w,
            "height": cells_h,
            "count": 1,
            "dtype": "uint8",
            "crs": g.crs,
            "transform": g.window_transform(block) @ _scale(job.unit),
            "nodata": NODATA_CLASS,
            "compress": "deflate",
        }
        if status == "ok":
            with atomic_path(out) as part:
                with rasterio.open(part, "w", **profile) as dst:
                    dst.write(classes, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"block": block.name, "status": status, "classified": int((classes != NODATA_CLASS).sum()),
            "tiles": tiles}


def _scale(unit: int):
    from affine import Affine

    return Affine.scale(unit)


_PIXEL_LOCK = threading.Lock()
_PIXEL_CACHE: dict[str, object] = {}


@dataclass(frozen=True)
class PixelJob:
    """What a per-pixel (TimeSenCLIP) map block needs: the model, the prompts, the mapping options."""

    model: object  # senclip.mapping.scenes.ModelSpec
    prompts: tuple[tuple[str, tuple[str, ...]], ...]
    options: object  # senclip.mapping.pixels.PixelMapOptions

    def mapper(self):
        """The :class:`~senclip.mapping.pixels.PixelMapper`, built once per process."""
        from senclip.mapping.pixels import PixelMapper

        key = repr(self)
        with _PIXEL_LOCK:
            if key not in _PIXEL_CACHE:
                model = self.model.build()
                _PIXEL_CACHE[key] = PixelMapper(model, {c: list(p) for c, p in self.prompts}, self.options)
            return _PIXEL_CACHE[key]


@dataclass(frozen=True)
class AreaPixelJob:
    pixel_job: PixelJob
    blocks_dir: str
    grid: AreaGrid


def pixel_block(job: AreaPixelJob, block: Block, path: str) -> dict:
    """Map one block of a monthly composite pixel by pixel (its composite block file, if it has one)."""
    import rasterio

    from senclip.data.series.rasters import StackSource
    from senclip.mapping.writers import NODATA_CLASS
    from senclip.outputs import atomic_path

    src_file = Path(job.blocks_dir) / f"{block.name}.tif"
    out = Path(path)
    if not src_file.is_file():
        return {"block": block.name, "status": "empty", "classified": 0}
    tmp = out.with_name(out.stem + ".work")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        source = StackSource(src_file)
        _, valid = source.read(slice(0, source.height))
        if not valid.any():
            return {"block": block.name, "status": "empty", "classified": 0}
        mapper = job.pixel_job.mapper()
        mapper.run(source, tmp / "map.tif", progress=False, resume=False)
        with rasterio.open(tmp / "map.tif") as m:
            classes, profile = m.read(1), m.profile
        profile.update(driver="GTiff", compress="deflate")
        for k in ("blockxsize", "blockysize", "tiled", "interleave"):
            profile.pop(k, None)
        with atomic_path(out) as part:
            with rasterio.open(part, "w", **profile) as dst:
                dst.write(classes, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"block": block.name, "status": "ok", "classified": int((classes != NODATA_CLASS).sum())}


# ---- assembling a class map ---------------------------------------------------------------------


def write_class_map(
    out: Path,
    work: Path,
    grid: AreaGrid,
    unit: int,
    blocks: list[Block],
    records: list[dict],
    paths: dict[str, Path],
    classes: list[str],
    model_id: dict,
    tags: dict,
    item_extra: dict,
    provenance: dict,
    quicklook: bool,
) -> None:
    """The area's class-map COG (colour table, names), legend, quick-look, QGIS style, STAC Item."""
    from senclip.areas.mosaic import assemble, block_windows
    from senclip.mapping.mapper import sidecar_paths
    from senclip.mapping.writers import (
        NODATA_CLASS,
        class_colors,
        class_map_item,
        decorate_classes,
        tiff_profile,
        write_item,
        write_legend,
        write_qml,
        write_quicklook,
    )

    width, height = math.ceil(grid.width / unit), math.ceil(grid.height / unit)
    transform = grid.transform @ _scale(unit)
    colors = class_colors(classes)
    profile = tiff_profile(width, height, 1, "uint8", grid.crs, transform, NODATA_CLASS)
    if not any(r["status"] == "ok" for r in records):
        raise NothingClearError(
            "no block of the area could be classified (every tile is nodata or below "
            "--min-valid); nothing written"
        )
    side = sidecar_paths(out)
    when = {
        "start": dt.date.fromisoformat(provenance["start"]),
        "end": dt.date.fromisoformat(provenance["end"]),
    }
    item = class_map_item(
        out,
        classes,
        colors,
        grid.crs,
        transform,
        (height, width),
        when,
        model_id,
        item_extra
        | {
            "senclip:stac_api": provenance["stac_url"],
            "senclip:collection": provenance["collection"],
            "senclip:items": provenance["items"],
            "senclip:area": provenance["area"],
        },
    )
    write_item(out, item)
    write_qml(side["style"], classes, colors)
    write_legend(
        side["legend"],
        classes,
        colors,
        {"model": model_id, **item_extra, "crs": f"EPSG:{grid.epsg}", "area": provenance["area"]},
    )
    assemble(
        out,
        work,
        block_windows(blocks, records, paths, unit),
        profile,
        "nearest",
        decorate_classes(classes, colors, tags),
    )
    if quicklook:
        write_quicklook(
            side["quicklook"],
            read_decimated(out),
            classes,
            colors,
            f"{out.name}: senclip map of {provenance['area']} ({width}x{height})",
        )


def _map_work(out: Path, identity: dict) -> Path:
    """The map's private work folder ``OUT.blocks/`` (restarted when the job changed)."""
    work = out.with_name(out.name + ".blocks")
    path = work / IDENTITY
    if work.exists():
        try:
            same = json.loads(path.read_text()) == identity
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(work)
    if not work.exists():
        work.mkdir(parents=True)
        write_text(path, json.dumps(identity, indent=1, sort_keys=True, default=str))
    return work


def map_area(
    plan: AreaPlan,
    map_job,
    out: Path,
    cache: Path,
    scheduler: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """``senclip map --bbox|--area``: composite (cached), map block by block, assemble the class map."""
    from senclip.mapping.mapper import weights_fingerprint
    from senclip.mapping.provenance import model_identity
    from senclip.mapping.scenes import build_job

    model, classifier = build_job(map_job)  # first: a model that cannot load stops before any work
    opts = map_job.options
    tile = opts.tile or model.image_tower.image_size
    stride = opts.stride or tile
    from senclip.mapping.grid import TileGrid

    TileGrid(plan.grid.width, plan.grid.height, tile, stride)  # checks --tile/--stride against the area
    summary, composite, _ = cached_composite(plan, cache, scheduler, progress, overwrite)
    if summary["failed"]:
        return summary
    unit = stride if opts.resolution == "tile" else 1
    size = max(stride, plan.request.block_size // stride * stride)
    blocks = plan.grid.blocks(size)
    identity = {
        "composite": plan.identity(),
        "job": repr(map_job),
        "weights": weights_fingerprint(model),
        "classifier": classifier.fingerprint(),
        "tile": tile,
        "stride": stride,
        "block": size,
    }
    work = _map_work(out, identity)
    paths = {b.name: work / "maps" / f"{b.name}.tif" for b in blocks}
    (work / "maps").mkdir(exist_ok=True)
    job = AreaMapJob(map_job, str(composite), plan.grid, tile, stride, unit)
    journal = Journal(work / "maps.jsonl", key=("block",))
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    t0 = time.perf_counter()
    records = run_blocks(map_block, job, blocks, paths, journal, scheduler, progress, "map", key)
    result = _summary(records, "map")
    result["seconds"] = {"blocks": round(time.perf_counter() - t0, 3)}
    result["tiles"] = sum(r.get("tiles", 0) for r in records)
    if result["failed"]:
        return result
    spec = getattr(opts, "prompt_spec", None) or {}
    model_id = model_identity(model, dict(spec) | {"classifier": classifier.fingerprint()})
    prov = plan.provenance()
    tags = {
        "SENCLIP_SOURCE": composite.name,
        "SENCLIP_MODEL": str(model.describe()),
        "SENCLIP_TILE": str(tile),
        "SENCLIP_STRIDE": str(stride),
        "SENCLIP_AREA": prov["area"],
        "SENCLIP_TIME": f"{prov['start']}/{prov['end']}",
    }
    extra = {
        "senclip:tile": tile,
        "senclip:stride": stride,
        "senclip:resolution": opts.resolution,
        "senclip:composite": f"./{composite.parent.name}/{composite.name}"
        if composite.parent != out.parent
        else f"./{composite.name}",
    }
    t0 = time.perf_counter()
    write_class_map(
        out,
        work,
        plan.grid,
        unit,
        blocks,
        records,
        paths,
        list(classifier.classes),
        model_id,
        tags,
        extra,
        prov,
        opts.quicklook,
    )
    result["seconds"]["assemble"] = round(time.perf_counter() - t0, 3)
    shutil.rmtree(work, ignore_errors=True)
    return {**result, "output": str(out), "composite": str(composite), "composite_summary": summary}


def map_pixels_area(
    plan: AreaPlan,
    pixel_job: PixelJob,
    out: Path,
    cache: Path,
    scheduler: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    quicklook: bool = True,
    prompt_spec: dict | None = None,
) -> dict:
    """``senclip map-pixels --bbox|--area --year``: monthly composite (cached), per-pixel map by block."""
    from senclip.evaluate.embeddings import tensors_fingerprint
    from senclip.mapping.provenance import model_identity

    mapper = pixel_job.mapper()  # first: a model that cannot load stops before any work
    summary, composite, cwork = cached_composite(plan, cache, scheduler, progress, overwrite)
    if summary["failed"]:
        return summary
    blocks = plan.blocks
    identity = {
        "composite": plan.identity(),
        "job": repr(pixel_job),
        "tower": tensors_fingerprint(mapper.model.image_tower),
    }
    work = _map_work(out, identity)
    (work / "maps").mkdir(exist_ok=True)
    paths = {b.name: work / "maps" / f"{b.name}.tif" for b in blocks}
    job = AreaPixelJob(pixel_job, str(cwork / "blocks"), plan.grid)
    journal = Journal(work / "maps.jsonl", key=("block",))
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    t0 = time.perf_counter()
    records = run_blocks(pixel_block, job, blocks, paths, journal, scheduler, progress, "map-pixels", key)
    result = _summary(records, "map-pixels")
    result["seconds"] = {"blocks": round(time.perf_counter() - t0, 3)}
    if result["failed"]:
        return result
    prov = plan.provenance()
    model_id = model_identity(mapper.model, dict(prompt_spec or {}) | {"prompts": mapper.prompts_id})
    tags = {
        "classes": json.dumps(mapper.classes),
        "nodata_meaning": "no valid month",
        "model": json.dumps(mapper.model.describe()),
        "prompts": mapper.prompts_id,
        "SENCLIP_SOURCE": composite.name,
        "SENCLIP_AREA": prov["area"],
    }
    extra = {
        "senclip:resolution": "input",
        "senclip:time_steps": pixel_job.options.time_steps,
        "senclip:composite": f"./{composite.parent.name}/{composite.name}",
    }
    t0 = time.perf_counter()
    write_class_map(
        out,
        work,
        plan.grid,
        1,
        blocks,
        records,
        paths,
        mapper.classes,
        model_id,
        tags,
        extra,
        prov,
        quicklook,
    )
    result["seconds"]["assemble"] = round(time.perf_counter() - t0, 3)
    shutil.rmtree(work, ignore_errors=True)
    return {**result, "output": str(out), "composite": str(composite), "composite_summary": summary}


__all__ = [
    "AreaMapJob",
    "AreaPlan",
    "AreaRequest",
    "NothingClearError",
    "PixelJob",
    "build_composite",
    "cached_composite",
    "composite_area",
    "map_area",
    "map_block",
    "map_pixels_area",
    "pixel_block",
    "plan_area",
]
