"""Map one scene: tiles → class scores → COG, legend, probabilities, quick-look.

:func:`map_scene` is what ``senclip map INPUT OUTPUT`` runs. Work is kept in
a :class:`~senclip.mapping.store.RowStore` beside the output (one row of map
cells at a time), so a killed run continues where it stopped when rerun with
the same arguments, and the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch

from senclip.errors import SenclipError
from senclip.mapping.engine import StripTiles, run_tiles
from senclip.mapping.grid import TileGrid
from senclip.mapping.source import RasterSource, SourceOptions
from senclip.mapping.store import RowStore, check_writable
from senclip.mapping.writers import (
    NODATA_CLASS,
    class_colors,
    class_strips,
    decorate_classes,
    tiff_profile,
    write_cog,
    write_legend,
    write_quicklook,
)


@dataclass(frozen=True)
class MapOptions:
    """Options of :func:`map_scene` (the ``senclip map`` flags).

    Attributes:
        tile: tile size in input pixels (default: the model's input size).
        stride: distance between tiles (default: ``tile``, no overlap).
        resolution: ``"tile"`` (one map cell per ``stride`` pixels) or
            ``"input"`` (classes repeated to the input grid, input nodata
            blanked pixel by pixel).
        probabilities: path of a per-class float32 score COG (cell grid).
        min_valid: share of valid pixels a tile needs to be classified, and
            a cell needs to get a class.
        batch_size: tiles per forward pass.
        workers: reading threads.
        quicklook: write ``<output>.png`` with a legend.
        sidecars: write the legend, the STAC Item and the QGIS style beside the map (the area
            pipeline's blocks do without).
        prompt_spec: how the classes were given (``{"classes": …, "prompts": …}`` or the
            classifier file), recorded in the map's STAC Item.
        progress: show a progress bar.
        source: how to read the input (:class:`SourceOptions`).
    """

    tile: int | None = None
    stride: int | None = None
    resolution: str = "tile"
    probabilities: str | None = None
    min_valid: float = 0.5
    batch_size: int = 64
    workers: int = 2
    quicklook: bool = True
    sidecars: bool = True
    prompt_spec: dict | None = None
    progress: bool = True
    source: SourceOptions = field(default_factory=SourceOptions)


class EmptySceneError(SenclipError):
    """Every tile of the scene is nodata (or masked): there is nothing to map."""


def sidecar_paths(output: str | Path) -> dict[str, Path]:
    """Files written beside the class map ``output``: legend JSON, STAC Item, QGIS style, quick-look PNG."""
    from senclip.stacitem import item_path

    out = Path(output)
    return {"legend": out.with_suffix(".legend.json"), "item": item_path(out),
            "style": out.with_suffix(".qml"), "quicklook": out.with_suffix(".png")}


class CellAccumulator:
    """Averages tile scores over the cells they cover and stores finished cell rows.

    Keeps ``k`` cell rows of running sums (a ring), so memory is
    ``k * cells_x * classes`` whatever the scene height.
    """

    def __init__(self, grid: TileGrid, n_values: int, store: RowStore, min_valid: float) -> None:
        self.grid, self.store, self.min_valid = grid, store, min_valid
        self.sums = np.zeros((grid.k, grid.cells_x, n_values), dtype=np.float64)
        self.counts = np.zeros((grid.k, grid.cells_x), dtype=np.int32)

    def __call__(self, row: int, values: np.ndarray, strip: StripTiles) -> None:
        k, nx = self.grid.k, self.grid.tiles_x
        ok = ~np.isnan(values[:, 0])
        v = np.where(ok[:, None], values, 0.0)
        for di in range(k):
            slot = (row + di) % k
            for dj in range(k):
                self.sums[slot, dj:dj + nx] += v
                self.counts[slot, dj:dj + nx] += ok
        self._emit(row, strip.cell_valid[0])
        if row == self.grid.tiles_y - 1:
            for di in range(1, k):
                self._emit(row + di, strip.cell_valid[di])

    def _emit(self, cell_row: int, cell_valid: np.ndarray) -> None:
        slot = cell_row % self.grid.k
        if cell_row >= self.store.rows_done:
            counts = self.counts[slot]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = (self.sums[slot] / counts[:, None]).astype(np.float32)
            mean[(counts == 0) | (cell_valid < self.min_valid)] = np.nan
            self.store.write_row(cell_row, scores=mean)
        self.sums[slot] = 0.0
        self.counts[slot] = 0


def tile_encoder(model, classifier=None):
    """``(N, C, T, T)`` tiles → class probabilities (or embeddings without a classifier)."""
    device = model.device

    def encode(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            emb = model.encode_image(x.to(device, non_blocking=True))
        if classifier is None:
            return emb.float().cpu().numpy()
        return classifier(emb)

    return encode


def progress_bar(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tile", desc=desc, disable=not enabled, dynamic_ncols=True)


def open_scene(model, input_path: str, options: MapOptions) -> tuple[RasterSource, TileGrid]:
    """Open the input and lay out its tile grid (all input checks happen here)."""
    source = RasterSource(input_path, model.image_tower.bands, options.source)
    tile = options.tile or model.image_tower.image_size
    grid = TileGrid(source.width, source.height, tile, options.stride or tile, source.transform)
    if not 0.0 < options.min_valid <= 1.0:
        raise SenclipError(f"--min-valid must be in (0, 1], got {options.min_valid}")
    return source, grid


def weights_fingerprint(model) -> str:
    """SHA-256 of the image tower's first and last tensors and of the logit scale (cheap)."""
    import hashlib

    state = list(model.image_tower.state_dict().values())
    h = hashlib.sha256()
    for t in (state[0], state[-1], model.logit_scale):
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def run_identity(model, source: RasterSource, grid: TileGrid, options: MapOptions, kind: str) -> dict:
    """Everything that determines the stored rows (a resumed run must match it)."""
    return {
        "kind": kind, "source": source.identity(), "model": model.describe(),
        "weights": weights_fingerprint(model),
        "bands": list(model.image_tower.bands), "tile": grid.tile, "stride": grid.stride,
        "min_valid": options.min_valid, "batch_size": options.batch_size, "device": str(model.device),
        "torch": torch.__version__,
    }


def map_scene(model, classifier, input_path: str, output: str | Path, options: MapOptions) -> dict:
    """Classify every tile of a scene and write the map.

    Args:
        model: a :class:`~senclip.models.SenCLIP` (its image tower's bands
            are read from the input by name).
        classifier: a :mod:`senclip.mapping.classify` classifier (``classes``,
            ``fingerprint()``, and embeddings → probabilities).
        input_path: GeoTIFF/COG/VRT path or rasterio URL.
        output: class COG path; legend/PNG go beside it.
        options: :class:`MapOptions`.

    Returns:
        A summary (paths, tiles, seconds, tiles/s, whether it resumed).

    Raises:
        SenclipError: bad input, unwritable output, all-nodata scene.
    """
    output = Path(output)
    check_writable(output)
    if options.probabilities:
        check_writable(options.probabilities)
    if options.resolution not in ("tile", "input"):
        raise SenclipError(f"--resolution must be 'tile' or 'input', not {options.resolution!r}")
    source, grid = open_scene(model, input_path, options)
    config = run_identity(model, source, grid, options, "map") | {"classifier": classifier.fingerprint()}
    n_cls = len(classifier.classes)
    store = RowStore(output, config, {"scores": ((grid.cells_y, grid.cells_x, n_cls), "float32")})
    resumed_rows = store.rows_done
    t0 = time.perf_counter()
    try:
        if not store.complete:
            sink = CellAccumulator(grid, n_cls, store, options.min_valid)
            with progress_bar(grid.n_tiles, options.progress, f"map {Path(input_path).name}") as bar, \
                    rasterio.Env(GDAL_CACHEMAX=source.cache_bytes()):
                run_tiles(source, grid, tile_encoder(model, classifier), sink, n_cls,
                          start_row=max(0, store.rows_done - grid.k + 1), batch_size=options.batch_size,
                          min_valid=options.min_valid, workers=options.workers, progress=bar)
        seconds = time.perf_counter() - t0
        with rasterio.Env(GDAL_CACHEMAX=source.cache_bytes()):
            _finish(store, source, grid, classifier.classes, output, options, model, classifier.fingerprint())
    except Exception:  # an error leaves no partial state; Ctrl-C and kill keep it for a rerun to resume
        store.remove()
        raise
    finally:
        source.close()
    store.remove()
    return {"input": input_path, "output": str(output), "tiles": grid.n_tiles, "seconds": seconds,
            "tiles_per_s": grid.n_tiles / seconds if seconds > 0 else None, "resumed_rows": resumed_rows,
            **{k: str(v) for k, v in sidecar_paths(output).items()
               if options.sidecars or (k == "quicklook" and options.quicklook)}}


def _finish(store: RowStore, source: RasterSource, grid: TileGrid, classes: list[str], output: Path,
            options: MapOptions, model, classifier_id: str = "") -> None:
    """Write probabilities, legend, quick-look, the class COG, then its STAC Items and QGIS style."""
    scores = store.arrays["scores"]
    cls = np.full((grid.cells_y, grid.cells_x), NODATA_CLASS, dtype=np.uint8)
    for j in range(grid.cells_y):
        row = np.asarray(scores[j])
        ok = ~np.isnan(row[:, 0])
        cls[j, ok] = row[ok].argmax(axis=1)
    if not (cls != NODATA_CLASS).any():
        raise EmptySceneError(f"{source.path}: every tile is nodata (or masked); nothing to map — check "
                           "--nodata/--mask-band, or the scene")
    colors = class_colors(classes)
    tags = {"SENCLIP_SOURCE": source.path, "SENCLIP_MODEL": str(model.describe()),
            "SENCLIP_TILE": str(grid.tile), "SENCLIP_STRIDE": str(grid.stride)}
    cell_profile = dict(width=grid.cells_x, height=grid.cells_y, crs=source.crs,
                        transform=grid.cell_transform)
    if options.probabilities:
        _write_probabilities(scores, grid, cell_profile, classes, Path(options.probabilities), store, tags)
    side = sidecar_paths(output)
    info = {"source": source.path, "model": model.describe(), "bands": list(model.image_tower.bands),
            "tile": grid.tile, "stride": grid.stride, "resolution": options.resolution,
            "crs": source.crs.to_string() if source.crs else None}
    if options.sidecars:
        write_legend(side["legend"], classes, colors, info)
    if options.quicklook:
        write_quicklook(side["quicklook"], cls, classes, colors,
                        f"{Path(source.path).name}: senclip map ({grid.cells_x}x{grid.cells_y} cells)")
    if options.resolution == "input":
        profile = tiff_profile(source.width, source.height, 1, "uint8", source.crs, source.transform,
                               NODATA_CLASS)
        strips = class_strips(cls, grid.stride, (source.height, source.width), source.read_valid)
    else:
        profile = tiff_profile(grid.cells_x, grid.cells_y, 1, "uint8", source.crs, grid.cell_transform,
                           NODATA_CLASS)
        strips = class_strips(cls, grid.stride, None, None)
    write_cog(output, store.dir, strips, profile, "nearest", decorate_classes(classes, colors, tags))
    if options.sidecars and source.crs is not None:  # after the COG: no Item ever describes a missing raster
        _write_sidecars(output, classes, colors, profile, source, model, classifier_id, options, grid,
                        cell_profile)


def _write_sidecars(output: Path, classes: list[str], colors, profile: dict, source: RasterSource, model,
                    classifier_id: str, options: MapOptions, grid: TileGrid, cell_profile: dict) -> None:
    """The STAC Items of the class map (and probabilities) and the QGIS style."""
    from senclip.mapping.provenance import input_time, model_identity
    from senclip.mapping.writers import class_map_item, probabilities_item, write_item, write_qml

    with rasterio.open(source.path) as src:
        when = input_time(src.tags(), source.path)
    prompts = dict(options.prompt_spec or {}) | {"classifier": classifier_id}
    item = class_map_item(output, classes, colors, profile["crs"], profile["transform"],
                          (profile["height"], profile["width"]), when, model_identity(model, prompts),
                          {"senclip:tile": grid.tile, "senclip:stride": grid.stride,
                           "senclip:resolution": options.resolution, "senclip:time_source": when["source"],
                           "senclip:source": Path(source.path).name})
    write_item(output, item)
    write_qml(sidecar_paths(output)["style"], classes, colors)
    if options.probabilities:
        cells, model_id = cell_profile, item["properties"]["senclip:model"]
        probs = probabilities_item(options.probabilities, classes, cells["crs"], cells["transform"],
                                   (cells["height"], cells["width"]), when, model_id)
        write_item(options.probabilities, probs)


def _write_probabilities(scores, grid: TileGrid, cell_profile: dict, classes: list[str], path: Path,
                         store: RowStore, tags: dict) -> None:
    profile = tiff_profile(cell_profile["width"], cell_profile["height"], len(classes), "float32",
                       cell_profile["crs"], cell_profile["transform"], float("nan"))

    def strips():
        for j in range(0, grid.cells_y, 256):
            yield j, np.ascontiguousarray(np.asarray(scores[j:j + 256]).transpose(2, 0, 1))

    def decorate(dst) -> None:
        for i, name in enumerate(classes):
            dst.set_band_description(i + 1, name)
        dst.update_tags(CLASSES=json.dumps(classes), **tags)

    write_cog(path, store.dir, strips(), profile, "average", decorate)
