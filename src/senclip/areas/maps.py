"""Mapping a planned area block by block: SenCLIP tile maps (``map --bbox``) and TimeSenCLIP per-pixel
maps (``map-pixels --bbox``), from the area's composite, resumable, here or on Dask.

A tile map's block reads its pixels of the composite plus the overlap its tiles need, so its
cells are those of a map of the whole composite; a per-pixel block reads its composite block
file alone. Each block's class file is journalled; the class map is then assembled by
:func:`senclip.areas.mosaic.write_class_map`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePath

import numpy as np

from senclip.acquire.area import AreaGrid, Block
from senclip.acquire.jobs import Journal
from senclip.areas.blocks import run_blocks
from senclip.areas.composites import cached_composite, summary_of
from senclip.areas.mosaic import ClassMap, write_class_map
from senclip.areas.plan import AreaPlan, NothingClearError, claim_work


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
    """Map one block of a monthly composite pixel by pixel (its composite block file, if it has one).

    A composite block file exists only when the block has a clear pixel
    (:func:`senclip.acquire.composite.run_block`), so it is not read whole to find out: the
    mapper reads it by row blocks (memory: ``--block-rows`` rows of 12 x bands, not the block).
    """
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


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to the folder ``start``, POSIX separators, ``./`` first when below it."""
    rel = PurePath(os.path.relpath(Path(path).absolute(), Path(start).absolute())).as_posix()
    return rel if rel.startswith("../") else f"./{rel}"


def _run_maps(fn, job, blocks: list[Block], out: Path, identity: dict, scheduler: str | None, progress: bool,
              what: str, overwrite: bool) -> tuple[list[dict], dict, Path, dict[str, Path]]:
    """Map every block into the private work folder ``OUT.blocks/`` (resumed when ``identity`` matches).

    Returns:
        ``(records, summary, work, paths)``.
    """
    work = out.with_name(out.name + ".blocks")
    claim_work(work, identity, overwrite, what, "choose another OUTPUT", restart=True)
    (work / "maps").mkdir(exist_ok=True)
    paths = {b.name: work / "maps" / f"{b.name}.tif" for b in blocks}
    journal = Journal(work / "maps.jsonl", key=("block",))
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    t0 = time.perf_counter()
    records = run_blocks(fn, job, blocks, paths, journal, scheduler, progress, what, key)
    result = summary_of(records, what)
    result["seconds"] = {"blocks": round(time.perf_counter() - t0, 3)}
    return records, result, work, paths


def _finish(out: Path, work: Path, plan: AreaPlan, blocks: list[Block], records: list[dict],
            paths: dict[str, Path], spec: ClassMap, result: dict) -> dict:
    """Assemble the class map and its side files; remove the work folder."""
    if not any(r["status"] == "ok" for r in records):
        raise NothingClearError("no block of the area could be classified (every tile is nodata or below "
                                "--min-valid); nothing written")
    t0 = time.perf_counter()
    write_class_map(out, work, plan.grid, blocks, records, paths, spec)
    result["seconds"]["assemble"] = round(time.perf_counter() - t0, 3)
    shutil.rmtree(work, ignore_errors=True)  # senclip's: _run_maps claimed it
    return {**result, "output": str(out)}


def _model_spec(spec) -> dict:
    """A :class:`~senclip.mapping.scenes.ModelSpec` without where it runs (the device changes no class)."""
    return {k: v for k, v in asdict(spec).items() if k != "device"}


def map_identity(plan: AreaPlan, map_job, weights: str, classifier: str, tile: int, stride: int,
                 size: int) -> dict:
    """What a tile map's blocks depend on: the composite, model, classifier, tiling, reading, precision.

    Not the run-only options (progress, workers, batch size, quick-look): a rerun that changes only
    those continues the finished blocks.
    """
    opts = map_job.options
    return {"composite": plan.key(), "model": _model_spec(map_job.model), "weights": weights,
            "classifier": classifier, "tile": tile, "stride": stride, "resolution": opts.resolution,
            "min_valid": opts.min_valid, "source": asdict(opts.source), "block": size}


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
    from senclip.mapping.grid import TileGrid
    from senclip.mapping.mapper import weights_fingerprint
    from senclip.mapping.provenance import model_identity
    from senclip.mapping.scenes import build_job

    model, classifier = build_job(map_job)  # first: a model that cannot load stops before any work
    opts = map_job.options
    tile = opts.tile or model.image_tower.image_size
    stride = opts.stride or tile
    TileGrid(plan.grid.width, plan.grid.height, tile, stride)  # checks --tile/--stride against the area
    summary, composite, _ = cached_composite(plan, cache, scheduler, progress, overwrite)
    if summary["failed"]:
        return summary
    unit = stride if opts.resolution == "tile" else 1
    size = max(stride, plan.request.block_size // stride * stride)
    blocks = plan.grid.blocks(size)
    identity = map_identity(plan, map_job, weights_fingerprint(model), classifier.fingerprint(), tile, stride,
                            size)
    job = AreaMapJob(map_job, str(composite), plan.grid, tile, stride, unit)
    records, result, work, paths = _run_maps(map_block, job, blocks, out, identity, scheduler, progress,
                                             "map", overwrite)
    result["tiles"] = sum(r.get("tiles", 0) for r in records)
    if result["failed"]:
        return result
    prompts = dict(opts.prompt_spec or {}) | {"classifier": classifier.fingerprint()}
    prov = plan.provenance()
    tags = {"SENCLIP_SOURCE": composite.name, "SENCLIP_MODEL": str(model.describe()),
            "SENCLIP_TILE": str(tile), "SENCLIP_STRIDE": str(stride), "SENCLIP_AREA": prov["area"],
            "SENCLIP_TIME": f"{prov['start']}/{prov['end']}"}
    extra = {"senclip:tile": tile, "senclip:stride": stride, "senclip:resolution": opts.resolution,
             "senclip:composite": _relative(composite, out.parent)}
    spec = ClassMap(list(classifier.classes), model_identity(model, prompts), tags, extra, prov, unit,
                    opts.quicklook)
    done = _finish(out, work, plan, blocks, records, paths, spec, result)
    return {**done, "composite": str(composite), "composite_summary": summary}


def map_pixels_identity(plan: AreaPlan, pixel_job: PixelJob, tower: str) -> dict:
    """What a per-pixel map's blocks depend on (not its batch size or rows per read: run-only)."""
    o = pixel_job.options
    return {"composite": plan.key(), "model": _model_spec(pixel_job.model), "tower": tower,
            "prompts": [[c, list(p)] for c, p in pixel_job.prompts], "method": o.method, "year": o.year,
            "time_steps": o.time_steps}


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
    identity = map_pixels_identity(plan, pixel_job, tensors_fingerprint(mapper.model.image_tower))
    job = AreaPixelJob(pixel_job, str(cwork / "blocks"), plan.grid)
    records, result, work, paths = _run_maps(pixel_block, job, blocks, out, identity, scheduler, progress,
                                             "map-pixels", overwrite)
    if result["failed"]:
        return result
    prov = plan.provenance()
    model_id = model_identity(mapper.model, dict(prompt_spec or {}) | {"prompts": mapper.prompts_id})
    tags = {"classes": json.dumps(mapper.classes), "nodata_meaning": "no valid month",
            "model": json.dumps(mapper.model.describe()), "prompts": mapper.prompts_id,
            "SENCLIP_SOURCE": composite.name, "SENCLIP_AREA": prov["area"]}
    extra = {"senclip:resolution": "input", "senclip:time_steps": pixel_job.options.time_steps,
             "senclip:composite": _relative(composite, out.parent)}
    spec = ClassMap(mapper.classes, model_id, tags, extra, prov, 1, quicklook)
    done = _finish(out, work, plan, blocks, records, paths, spec, result)
    return {**done, "composite": str(composite), "composite_summary": summary}


__all__ = [
    "AreaMapJob",
    "AreaPixelJob",
    "PixelJob",
    "map_area",
    "map_block",
    "map_identity",
    "map_pixels_area",
    "map_pixels_identity",
    "pixel_block",
]
