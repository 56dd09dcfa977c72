"""Per-pixel zero-shot maps of a time series (the engine of ``senclip map-pixels``).

For each block of rows the series is read, composited into 12 calendar months
(:func:`~senclip.timeseries.composite.monthly_composite`), every pixel with at
least one valid month is embedded by the model's time-series tower and
assigned the class whose prompt-ensemble text embedding is closest. Pixels
without any valid month get nodata (255).

Memory is bounded by one row block (plus the next one, read ahead on a
thread while the model works). The map is written to ``<out>.partial.tif``
(a tiled GTiff updated in place) and each finished block is recorded in
``<out>.progress.json``; an interrupted run started again with the same
inputs skips the finished blocks. At the end the partial file is converted to
a Cloud-Optimised GeoTIFF (``<out>.partial`` then ``os.replace``), so ``out``
only ever appears complete. The COG carries a colour table, the class names
(tags ``classes`` and ``CLASS_<value>``), the model and prompts identity.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from senclip.errors import SenclipError
from senclip.mapping.writers import NODATA_CLASS as NODATA
from senclip.mapping.writers import tiff_profile
from senclip.timeseries.composite import METHODS, monthly_composite
from senclip.timeseries.io import SeriesSource

LULC_COLOURS = {
    "cultivated land": (255, 211, 0), "forest": (34, 139, 34), "grassland": (154, 205, 50),
    "shrubland": (160, 120, 60), "water": (30, 100, 220), "wetlands": (100, 200, 200),
    "tundra": (200, 200, 160), "artificial surface": (220, 30, 30), "bareland": (190, 190, 190),
    "snow and ice": (250, 250, 255),
}


@dataclass(frozen=True)
class PixelMapOptions:
    """How a series is mapped; recorded in the progress file so a resume uses the same."""

    block_rows: int = 64
    batch_size: int = 4096
    method: str = "median"
    year: int | None = None

    def __post_init__(self) -> None:
        if self.block_rows < 1 or self.batch_size < 1:
            raise SenclipError("block rows and batch size must be positive")
        if self.method not in METHODS:
            raise SenclipError(f"unknown composite method {self.method!r}; "
                               f"choose one of {', '.join(METHODS)}")


def class_colours(classes: Sequence[str]) -> dict[int, tuple[int, int, int, int]]:
    """A colour per class value (LULC colours where the name is known, else a tab20 cycle)."""
    from matplotlib import colormaps

    tab = colormaps["tab20"]
    out = {}
    for i, name in enumerate(classes):
        rgb = LULC_COLOURS.get(name.lower()) or tuple(int(255 * v) for v in tab(i % 20)[:3])
        out[i] = (*rgb, 255)
    out[NODATA] = (0, 0, 0, 0)
    return out


@torch.no_grad()
def predict_series(model, series: np.ndarray, classifier: torch.Tensor, batch_size: int,
                   device: torch.device) -> np.ndarray:
    """Class index per ``(N, 12, C)`` series (argmax of cosine similarity)."""
    out = np.empty(len(series), dtype=np.uint8)
    weights = classifier.to(device)
    for i in range(0, len(series), batch_size):
        x = torch.from_numpy(series[i:i + batch_size]).to(device, non_blocking=True)
        emb = model.encode_image(x, normalize=True)
        out[i:i + batch_size] = (emb.float() @ weights.T).argmax(dim=1).to(torch.uint8).cpu().numpy()
    return out


class _Block:
    """Composite of one row block: the pixels to classify and where they go."""

    def __init__(self, source: SeriesSource, band_idx: list[int], rows: slice, opts: PixelMapOptions) -> None:
        data, valid = source.read(rows)
        comp, ok = monthly_composite(data[:, band_idx], source.dates, valid,
                                     method=opts.method, year=opts.year)
        self.rows = rows
        self.has = ok.any(axis=0)  # (h, W)
        self.series = np.ascontiguousarray(comp.transpose(2, 3, 0, 1)[self.has])  # (N, 12, C)


class PixelMapper:
    """Map a series block by block; see the module docstring.

    Args:
        model: a SenCLIP model with a time-series image tower.
        prompts: ``{class: [prompt, ...]}``; value ``k`` of the map is the k-th class.
        options: :class:`PixelMapOptions`.
        device: torch device of the model.
    """

    def __init__(self, model, prompts: Mapping[str, Sequence[str]], options: PixelMapOptions | None = None,
                 device: torch.device | str | None = None) -> None:
        from senclip.prompts import prompts_fingerprint, text_classifier

        if len(prompts) > NODATA:
            raise SenclipError(f"at most {NODATA} classes fit in a byte map, got {len(prompts)}")
        self.model = model.eval()
        self.options = options or PixelMapOptions()
        self.device = torch.device(device) if device is not None else model.device
        self.classes = list(prompts)
        self.classifier = text_classifier(model, prompts).float()
        self.prompts_id = prompts_fingerprint(prompts)

    def identity(self, source: SeriesSource) -> dict:
        """What must match for a partial run to be resumed."""
        from senclip.evaluate.embeddings import tensors_fingerprint

        return {"source": source.fingerprint(), "model": self.model.describe(),
                "tower": tensors_fingerprint(self.model.image_tower), "prompts": self.prompts_id,
                "options": asdict(self.options), "shape": [source.height, source.width]}

    def run(self, source: SeriesSource, output, progress: bool = True, resume: bool = True,
            on_block: Callable[[int, int], None] | None = None) -> dict:
        """Write the map of ``source`` to ``output`` (a COG); returns a summary dict."""
        from tqdm.auto import tqdm

        band_idx = source.select_bands(self.model.image_tower.bands)
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        work = output.with_name(output.name + ".partial.tif")
        state_path = output.with_name(output.name + ".progress.json")
        ident = self.identity(source)
        done = _load_state(state_path, work, ident) if resume else {}
        if not done:
            _create_work_file(work, source, self.classes, ident)
        step = self.options.block_rows
        starts = [s for s in range(0, source.height, step) if s // step not in done]
        bar = tqdm(total=source.height, initial=source.height - sum(
            min(step, source.height - s) for s in starts), desc="map-pixels", unit="row",
            disable=not progress, dynamic_ncols=True)
        counts = np.zeros(NODATA + 1, dtype=np.int64)
        with ThreadPoolExecutor(max_workers=1) as pool:
            read = lambda s: _Block(source, band_idx, slice(s, min(s + step, source.height)), self.options)  # noqa: E731
            pending = pool.submit(read, starts[0]) if starts else None
            for i, start in enumerate(starts):
                block = pending.result()
                pending = pool.submit(read, starts[i + 1]) if i + 1 < len(starts) else None
                labels = self._classify(block)
                _write_rows(work, block.rows, labels)
                done[start // step] = int((labels != NODATA).sum())
                _save_state(state_path, ident, done)
                counts += np.bincount(labels.ravel(), minlength=NODATA + 1)
                bar.update(block.rows.stop - block.rows.start)
                if on_block is not None:
                    on_block(len(done), -(-source.height // step))
        bar.close()
        if not any(done.values()):
            work.unlink(missing_ok=True)
            state_path.unlink(missing_ok=True)
            raise SenclipError(f"{source.name}: no pixel has a clear observation in any month (check the "
                               "cloud mask's polarity: non-zero means cloud); nothing written")
        _to_cog(work, output)
        work.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
        return {"output": str(output), "classes": self.classes, "height": source.height,
                "width": source.width, "resumed_blocks": len(done) - len(starts),
                "counts_this_run": {self.classes[k]: int(n) for k, n in enumerate(counts[:NODATA]) if n},
                "nodata_this_run": int(counts[NODATA])}

    def _classify(self, block: _Block) -> np.ndarray:
        labels = np.full(block.has.shape, NODATA, dtype=np.uint8)
        if len(block.series):
            labels[block.has] = predict_series(self.model, block.series, self.classifier,
                                               self.options.batch_size, self.device)
        return labels


def _load_state(state_path: Path, work: Path, ident: dict) -> dict[int, int]:
    """Finished blocks (index -> mapped pixels) of a matching earlier run (empty to start afresh)."""
    if not (state_path.is_file() and work.is_file()):
        return {}
    try:
        state = json.loads(state_path.read_text())
    except (json.JSONDecodeError, OSError):
        return {}
    if state.get("identity") != json.loads(json.dumps(ident)):
        return {}
    return {int(b): int(n) for b, n in state.get("done", {}).items()}


def _save_state(path: Path, ident: dict, done: dict[int, int]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"identity": ident, "done": {str(k): v for k, v in sorted(done.items())}}))
    os.replace(tmp, path)


def _create_work_file(work: Path, source: SeriesSource, classes: list[str], ident: dict) -> None:
    import rasterio

    profile = tiff_profile(source.width, source.height, 1, "uint8", source.crs, source.transform, NODATA)
    with rasterio.open(work, "w", **profile) as dst:
        dst.write_colormap(1, class_colours(classes))
        dst.set_band_description(1, "class")
        tags = {f"CLASS_{i}": c for i, c in enumerate(classes)}
        dst.update_tags(classes=json.dumps(classes), nodata_meaning="no valid month",
                        model=json.dumps(ident["model"]), prompts=ident["prompts"],
                        composite=json.dumps(ident["options"]), **tags)


def _write_rows(work: Path, rows: slice, labels: np.ndarray) -> None:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(work, "r+") as dst:
        dst.write(labels, 1, window=Window(0, rows.start, labels.shape[1], labels.shape[0]))


def _to_cog(work: Path, output: Path) -> None:
    """Convert the finished work file to a COG at ``output`` (atomically)."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    tmp = output.with_name(output.name + ".partial")
    with rasterio.Env(GDAL_NUM_THREADS="1"):
        rio_copy(work, tmp, driver="COG", COMPRESS="DEFLATE", RESAMPLING="NEAREST",
                 OVERVIEW_RESAMPLING="NEAREST", BLOCKSIZE=256)
    os.replace(tmp, output)
