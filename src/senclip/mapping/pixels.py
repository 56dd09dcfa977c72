"""Per-pixel zero-shot maps of a time series (the engine of ``senclip map-pixels``).

Each block of rows is read, composited into 12 calendar months, and every pixel
with a valid month gets the class whose prompt-ensemble text embedding is closest
to its embedding (255 without one). It shares the tile map's machinery, so both
resume and finish alike: the next block is read ahead (:func:`~senclip.mapping.engine.prefetch`),
finished blocks go to a :class:`~senclip.mapping.store.RowStore` (``<out>.partial/``) that a
rerun with the same inputs continues, and :func:`~senclip.mapping.writers.write_cog` makes
the COG (colour table, class names, model and prompts identity) that appears only complete.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from senclip.data.series.composite import METHODS, monthly_composite
from senclip.data.series.dataset import LULC_CLASSES
from senclip.data.series.io import SeriesSource
from senclip.errors import SenclipError
from senclip.evaluate.embeddings import tensors_fingerprint
from senclip.mapping.engine import prefetch
from senclip.mapping.store import RowStore, partial_dir
from senclip.mapping.writers import NODATA_CLASS as NODATA
from senclip.mapping.writers import class_colors, class_strips, tiff_profile, write_cog
from senclip.models.kinds import kind_of, set_time_steps
from senclip.prompts import load_prompts, prompts_fingerprint, text_classifier


@dataclass(frozen=True)
class PixelMapOptions:
    """How a series is mapped; part of the run's identity, so a resume uses the same."""

    block_rows: int = 64
    batch_size: int = 4096
    method: str = "median"
    year: int | None = None
    time_steps: int = 12

    def __post_init__(self) -> None:
        if self.block_rows < 1 or self.batch_size < 1:
            raise SenclipError("block rows and batch size must be positive")
        if self.method not in METHODS:
            raise SenclipError(f"unknown composite method {self.method!r}; "
                               f"choose one of {', '.join(METHODS)}")


def lulc_prompts(style: str = "ground", classes: Sequence[str] = LULC_CLASSES) -> dict[str, list[str]]:
    """The built-in eo-learn LULC prompts (dataset ``timeseries``) of ``classes``, one style or ``all``."""
    return load_prompts(style, list(classes), "timeseries")


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


def _composite_block(source: SeriesSource, band_idx: list[int], opts: PixelMapOptions, rows: slice):
    """One row block: ``(rows, has (h, W) bool, series (N, 12, C))`` of the pixels with a valid month."""
    data, valid = source.read(rows)
    comp, ok = monthly_composite(data[:, band_idx], source.dates, valid, method=opts.method, year=opts.year)
    has = ok.any(axis=0)
    return rows, has, np.ascontiguousarray(comp.transpose(2, 3, 0, 1)[has])


class PixelMapper:
    """Map a series block by block; see the module docstring.

    Args:
        model: a SenCLIP model whose image tower takes month series.
        prompts: ``{class: [prompt, ...]}``; value ``k`` of the map is the k-th class.
        options: :class:`PixelMapOptions`.
        device: torch device of the model.

    Raises:
        SenclipError: the tower takes images, or more classes than a byte map holds.
    """

    def __init__(self, model, prompts: Mapping[str, Sequence[str]], options: PixelMapOptions | None = None,
                 device: torch.device | str | None = None) -> None:
        if kind_of(model.image_tower).input != "series":
            raise SenclipError("map-pixels needs a time-series model: pass --checkpoint with a TimeSenCLIP "
                               "(timesen) image tower")
        if len(prompts) > NODATA:
            raise SenclipError(f"at most {NODATA} classes fit in a byte map, got {len(prompts)}")
        self.model = model.eval()
        self.options = options or PixelMapOptions()
        set_time_steps(model.image_tower, self.options.time_steps)
        self.device = torch.device(device) if device is not None else model.device
        self.classes = list(prompts)
        self.classifier = text_classifier(model, prompts).float()
        self.prompts_id = prompts_fingerprint(prompts)

    def identity(self, source: SeriesSource) -> dict:
        """What must match for a partial run to be resumed."""
        return {"source": source.fingerprint(), "model": self.model.describe(),
                "tower": tensors_fingerprint(self.model.image_tower), "prompts": self.prompts_id,
                "options": asdict(self.options), "shape": [source.height, source.width]}

    def run(self, source: SeriesSource, output, progress: bool = True, resume: bool = True,
            on_block: Callable[[int, int], None] | None = None) -> dict:
        """Write the map of ``source`` to ``output`` (a COG); returns a summary dict.

        ``on_block(done, total)`` is called after each block is stored (blocks, resumed ones included).
        """
        import rasterio
        from tqdm.auto import tqdm

        band_idx = source.select_bands(self.model.image_tower.bands)
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        ident = self.identity(source)
        if not resume:
            shutil.rmtree(partial_dir(output), ignore_errors=True)
        height, step = source.height, self.options.block_rows
        store = RowStore(output, ident, {"labels": ((height, source.width), "uint8")})
        try:  # an error leaves no partial state; Ctrl-C and kill keep it for a rerun to resume
            labels_done = store.arrays["labels"]
            resumed = -(-store.rows_done // step)
            bar = tqdm(total=height, initial=store.rows_done, desc="map-pixels", unit="row",
                       disable=not progress, dynamic_ncols=True)
            counts = np.zeros(NODATA + 1, dtype=np.int64)
            blocks = (slice(s, min(s + step, height)) for s in range(store.rows_done, height, step))
            read = lambda rows: _composite_block(source, band_idx, self.options, rows)  # noqa: E731
            for rows, has, series in prefetch(read, blocks):
                labels = np.full(has.shape, NODATA, dtype=np.uint8)
                if len(series):
                    labels[has] = predict_series(self.model, series, self.classifier, self.options.batch_size,
                                                 self.device)
                store.write_rows(rows.start, labels=labels)
                counts += np.bincount(labels.ravel(), minlength=NODATA + 1)
                bar.update(rows.stop - rows.start)
                if on_block is not None:
                    on_block(-(-store.rows_done // step), -(-height // step))
            bar.close()
            if not any((labels_done[s:s + step] != NODATA).any() for s in range(0, height, step)):
                raise SenclipError(f"{source.name}: no pixel has a clear observation in any month (check the "
                                   "cloud mask's polarity: non-zero means cloud); nothing written")
            profile = tiff_profile(source.width, height, 1, "uint8", source.crs, source.transform, NODATA)
            strips = class_strips(labels_done, 1, None, None)  # 256-row blocks, as the map's cell grid
            with rasterio.Env(GDAL_NUM_THREADS="1"):
                write_cog(output, store.dir, strips, profile, "nearest", self._decorate(ident), blocksize=256)
        except Exception:
            store.remove()
            raise
        store.remove()
        return {"output": str(output), "classes": self.classes, "height": height,
                "width": source.width, "resumed_blocks": resumed,
                "counts_this_run": {self.classes[k]: int(n) for k, n in enumerate(counts[:NODATA]) if n},
                "nodata_this_run": int(counts[NODATA])}

    def _decorate(self, ident: dict) -> Callable:
        """Colour table, band description and tags (class names, model, prompts, compositing)."""
        def apply(dst) -> None:
            cmap = {i: (*rgb, 255) for i, rgb in enumerate(class_colors(self.classes))}
            dst.write_colormap(1, cmap | {NODATA: (0, 0, 0, 0)})
            dst.set_band_description(1, "class")
            dst.update_tags(classes=json.dumps(self.classes), nodata_meaning="no valid month",
                            model=json.dumps(ident["model"]), prompts=ident["prompts"],
                            composite=json.dumps(ident["options"]),
                            **{f"CLASS_{i}": c for i, c in enumerate(self.classes)})
        return apply
