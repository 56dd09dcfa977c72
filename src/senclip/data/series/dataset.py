"""Per-pixel time-series datasets: labelled pixels for evaluation, proxy pairs for training.

:class:`TimeSeriesDataset` has the interface of
:class:`senclip.data.base.ClassificationDataset` (registered as
``"timeseries"``), so ``senclip zeroshot --dataset timeseries`` and
``senclip fewshot`` work on it. Each sample is one labelled pixel: its 12
calendar-month composites ``(12, C)`` (NaN for months without a clear
observation), composited when the dataset is built, block by block. Pixels
without any valid month, and pixels whose label is 0 ("no data"), are left out.

Labels follow the eo-learn LULC nomenclature (:data:`LULC_CLASSES`; code
``k`` is class ``k - 1``). An EOPatch provides them in
``mask_timeless/LULC.npy``; for a stack or a GeoTIFF folder give a
single-band label raster on the same grid (``labels=``).

``split`` (or a ``:train`` / ``:valid`` suffix on the root, for command lines
such as ``senclip fewshot --data PATCH:train --eval-data PATCH:valid``)
separates the grid spatially: ``"train"`` is the left half of the
columns, ``"valid"`` the right half (``split_axis="row"``: top / bottom), so
no evaluation pixel neighbours a training pixel except along the seam.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from senclip.data.series.base import SeriesDataset
from senclip.data.series.composite import monthly_composite
from senclip.data.series.io import SeriesSource, is_eopatch
from senclip.data.sources import open_series
from senclip.data.transforms import SelectBands
from senclip.errors import SenclipError

LULC_CLASSES: tuple[str, ...] = (
    "cultivated land", "forest", "grassland", "shrubland", "water", "wetlands", "tundra",
    "artificial surface", "bareland", "snow and ice",
)
"""eo-learn LULC classes; raster code ``k`` (1..10) is ``LULC_CLASSES[k - 1]``, 0 is no data."""


def _read_labels(source: SeriesSource, root: Path, labels) -> np.ndarray:
    """``(H, W)`` integer LULC codes for the source's grid."""
    if labels is None and is_eopatch(root):
        path = root / "mask_timeless" / "LULC.npy"
        if not path.is_file():
            raise SenclipError(f"{root}: EOPatch has no mask_timeless/LULC.npy labels; pass labels=")
        codes = np.load(path)
        codes = codes[..., 0] if codes.ndim == 3 else codes
    elif labels is None:
        raise SenclipError(f"{root}: a time-series dataset needs a label raster (labels=PATH, "
                           "one band of LULC codes on the series' grid)")
    else:
        import rasterio

        try:
            with rasterio.open(labels) as src:
                codes = src.read(1)
        except rasterio.errors.RasterioIOError as exc:
            raise SenclipError(f"label raster {labels} cannot be read ({str(exc).splitlines()[0]})") from exc
    if codes.shape != (source.height, source.width):
        raise SenclipError(f"label raster shape {codes.shape} does not match the series grid "
                           f"{(source.height, source.width)}")
    if codes.max() > len(LULC_CLASSES) or codes.min() < 0:
        raise SenclipError(f"label codes must be 0..{len(LULC_CLASSES)} (eo-learn LULC); got "
                           f"{int(codes.min())}..{int(codes.max())}")
    return codes.astype(np.int64)


def _root_options(root, split: str | None, classes) -> tuple[str, str | None, object]:
    """Options given as suffixes of the root, for CLIs that take one root string per split.

    ``PATH:valid``, ``PATH:train:present`` …: ``train``/``valid`` choose the
    split, ``present``/``all`` the class list. A root that exists as given is
    never split.
    """
    text = str(root)
    while not Path(text).exists() and text.rpartition(":")[2] in ("train", "valid", "present", "all"):
        text, _, token = text.rpartition(":")
        if token in ("train", "valid"):
            if split not in (None, token):
                raise SenclipError(f"{root}: split suffix :{token} contradicts split={split!r}")
            split = token
        else:
            classes = token
    return text, split, classes


def _class_table(codes: np.ndarray, classes) -> np.ndarray:
    """``(11,)`` int64: LULC code -> label index, -1 for codes left out (always code 0)."""
    if classes == "all":
        chosen = list(range(1, len(LULC_CLASSES) + 1))
    elif classes == "present":
        chosen = [int(c) for c in np.unique(codes) if c > 0]
    elif isinstance(classes, str):
        raise SenclipError(f"classes must be 'all', 'present' or a list of names, not {classes!r}")
    else:
        unknown = [c for c in classes if c not in LULC_CLASSES]
        if unknown:
            raise SenclipError(f"unknown LULC class(es) {unknown}; choose from {', '.join(LULC_CLASSES)}")
        chosen = sorted(LULC_CLASSES.index(c) + 1 for c in classes)
    table = np.full(len(LULC_CLASSES) + 1, -1, dtype=np.int64)
    table[chosen] = np.arange(len(chosen))
    return table


def _split_mask(shape: tuple[int, int], split: str | None, axis: str) -> np.ndarray:
    h, w = shape
    keep = np.ones(shape, dtype=bool)
    if split is None:
        return keep
    if split not in ("train", "valid") or axis not in ("col", "row"):
        raise SenclipError(f"split must be 'train', 'valid' or None and split_axis 'col' or 'row' "
                           f"(got {split!r}, {axis!r})")
    if axis == "col":
        keep[:, w // 2:] = False
    else:
        keep[h // 2:] = False
    return keep if split == "train" else ~keep


class TimeSeriesDataset(SeriesDataset):
    """Labelled pixels of a time series, as 12-month composite series.

    Args:
        root: EOPatch folder, folder of dated GeoTIFFs, or stack file.
        transforms: dict -> dict applied to each sample (e.g.
            ``SelectBands(bands, axis=-1)``); ``None`` keeps all bands.
        labels: label raster (required unless ``root`` is an EOPatch).
        split: ``None`` (all pixels), ``"train"`` or ``"valid"``.
        split_axis: ``"col"`` (left/right halves) or ``"row"`` (top/bottom).
        method, year: compositing options (see :mod:`senclip.data.series.composite`).
        dates, feature, series_bands: passed to :func:`~senclip.data.sources.open_series`.
        block_rows: rows composited at once.
        classes: ``"all"`` (the 10-class nomenclature, default), ``"present"``
            (the classes occurring in the whole label raster, so every split of
            one raster gets the same list) or a list of class names.
    """

    name = "timeseries"
    multilabel = False
    classes: ClassVar[list[str]] = list(LULC_CLASSES)
    prompt_set: ClassVar[str] = "eolearn_lulc"  # built-in prompts (senclip/prompts/data/eolearn_lulc.yaml)
    download_spec = None  # no public archive: series come from `senclip acquire series` or eo-learn

    def __init__(self, root, transforms: Callable | None = None, labels=None, split: str | None = None,
                 split_axis: str = "col", method: str = "median", year: int | None = None, dates=None,
                 feature: str = "NDVI", series_bands: Sequence[str] | None = None,
                 block_rows: int = 256, classes: str | Sequence[str] = "all") -> None:
        root, split, classes = _root_options(root, split, classes)
        self.root = Path(root)
        self.source = open_series(self.root, dates=dates, bands=series_bands, feature=feature)
        self.transforms = transforms
        self.all_bands = self.source.bands
        if isinstance(transforms, SelectBands):  # fail before compositing
            self.source.select_bands(transforms.bands)
        self.options = {"split": split, "axis": split_axis, "method": method, "year": year,
                        "labels": str(labels) if labels else None, "classes": classes}
        codes = _read_labels(self.source, self.root, labels)
        code_to_label = _class_table(codes, classes)
        self.classes = [LULC_CLASSES[c - 1] for c in np.flatnonzero(code_to_label >= 0)]
        keep = _split_mask(codes.shape, split, split_axis) & (code_to_label[codes] >= 0)
        self.series, self.rows, self.cols = self._composite(keep, method, year, block_rows)
        if not len(self.rows):
            raise SenclipError(f"{root}: no labelled pixel with a clear observation in the chosen "
                               "split/period")
        self.labels = code_to_label[codes[self.rows, self.cols]]
        self.paths = [f"{r},{c}" for r, c in zip(self.rows, self.cols, strict=True)]

    def _composite(self, keep: np.ndarray, method: str, year: int | None, block_rows: int):
        series, rows, cols = [], [], []
        for start in range(0, self.source.height, block_rows):
            stop = min(start + block_rows, self.source.height)
            k = keep[start:stop]
            if not k.any():
                continue
            data, valid = self.source.read(slice(start, stop))
            r, c = np.nonzero(k)
            comp, ok = monthly_composite(data[:, :, r, c], self.source.dates, valid[:, r, c],
                                         method=method, year=year)
            has = ok.any(axis=0)
            series.append(comp[:, :, has].transpose(2, 0, 1))
            rows.append(r[has] + start)
            cols.append(c[has])
        if not series:
            return np.zeros((0, 12, len(self.all_bands)), np.float32), np.zeros(0, int), np.zeros(0, int)
        return np.concatenate(series), np.concatenate(rows), np.concatenate(cols)

    def fingerprint(self) -> str:
        """Digest of the input series, labels, split and compositing options."""
        h = hashlib.sha256(json.dumps({"source": self.source.fingerprint(), **self.options}).encode())
        h.update(self.labels.tobytes())
        h.update(np.stack([self.rows, self.cols]).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        split = self.options["split"]
        return f"TimeSeriesDataset(root={str(self.root)!r}, samples={len(self)}, split={split})"
