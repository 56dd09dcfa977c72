"""Sen4Map: LUCAS points with a year of Sentinel-2, the evaluation set of TimeSenCLIP.

One HDF5 file; each point is a group ``Lucas_Point_<id>`` holding a dataset ``image``
of shape ``(12, 10, H, W)`` [month, band, y, x] (bands B2, B3, B4, B5, B6, B7, B8, B8A,
B11, B12 as L2A digital numbers; months without a clear acquisition already filled by
the publishers, as the TimeSenCLIP code expects) and attributes ``lc1`` (LUCAS land-cover
code, e.g. ``B16``), ``lu1`` (land-use code, e.g. ``U111``), ``nuts0``, ``lc1_label``,
``Coordinates``, ``bioregion_class_code``, ``EUNIS_L2``. senclip reads this 1x1 layout
(``H = W = 1``; larger patches give their centre pixel).

Label sets (``labels``), grouped as the TimeSenCLIP code groups LUCAS codes:

- ``lc1``: 8 land-cover classes by the code's letter (A artificial land ... H wetlands);
- ``lu1``: 16 land-use classes by the code's first three characters (U11 agriculture ... U42);
- ``crop``: 40 crop types (cropland codes B11 ... B84); points of other land cover are
  not part of this set and are left out (counted in :attr:`Sen4Map.skipped`).

A group without ``image``, with another shape, with non-finite values or with a label
code the set does not know stops the read with one line naming the group; with
``skip_bad`` it is left out instead (one line each on stderr).

``root`` may carry options after the file: ``FILE.h5:lu1`` or ``FILE.h5:crop:skip-bad``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from senclip.data.series.io import S2_BANDS
from senclip.data.transforms import SelectBands
from senclip.errors import SenclipError

LC1_CLASSES = {  # LC1 letter -> class
    "A": "artificial land", "B": "cropland", "C": "woodland", "D": "shrubland",
    "E": "grassland", "F": "bare land", "G": "water", "H": "wetlands",
}
LU1_CLASSES = {  # LU1 code prefix -> class
    "U11": "agriculture", "U12": "forestry", "U13": "aquaculture and fishing",
    "U14": "mining and quarrying", "U15": "other primary production", "U21": "energy production",
    "U22": "industry and manufacturing",
    "U31": "transport, communication networks, storage and protection works",
    "U32": "water and waste treatment", "U33": "construction",
    "U34": "commerce, financial, professional and information services", "U35": "community services",
    "U36": "recreation, leisure and sport", "U37": "residential", "U41": "abandoned areas",
    "U42": "semi-natural and natural areas not in use",
}
CROP_CLASSES = {  # LC1 cropland code -> crop type
    "B11": "common wheat", "B12": "durum wheat", "B13": "barley", "B14": "rye", "B15": "oats",
    "B16": "maize", "B17": "rice", "B18": "triticale", "B19": "other cereals", "B21": "potatoes",
    "B22": "sugar beet", "B23": "other root crops", "B31": "sunflower", "B32": "rape and turnip rape",
    "B33": "soya", "B34": "cotton", "B35": "other fibre and oleaginous crops", "B36": "tobacco",
    "B37": "other non-permanent industrial crops", "B41": "dry pulses", "B42": "tomatoes",
    "B43": "other fresh vegetables", "B44": "floriculture and ornamental plants", "B45": "strawberries",
    "B51": "clovers", "B52": "lucerne", "B53": "other leguminous and mixtures for fodder",
    "B54": "mix of cereals", "B55": "temporary grassland", "B71": "apple fruit", "B72": "pear fruit",
    "B73": "cherry fruit", "B74": "nut trees", "B75": "other fruit trees and berries", "B76": "oranges",
    "B77": "other citrus fruit", "B81": "olive groves", "B82": "vineyards", "B83": "nurseries",
    "B84": "permanent industrial crops",
}
LABEL_SETS = ("lc1", "lu1", "crop")
SEN4MAP_BANDS = S2_BANDS
"""Band order of ``image`` (B2 ... B12 in senclip's spelling)."""


def label_classes(labels: str) -> list[str]:
    """The class names of a label set, in label order."""
    table = {"lc1": LC1_CLASSES, "lu1": LU1_CLASSES, "crop": CROP_CLASSES}.get(labels)
    if table is None:
        raise SenclipError(f"unknown Sen4Map label set {labels!r}; choose one of {', '.join(LABEL_SETS)}")
    return list(table.values())


def label_of(labels: str, attrs) -> int | None:
    """Class index of a point (``None``: not in a ``crop`` set); :class:`ValueError` for an unknown code."""
    key = "lu1" if labels == "lu1" else "lc1"
    if key not in attrs:
        raise ValueError(f"no '{key}' attribute")
    code = _text(attrs[key]).strip().upper()
    if labels == "lc1":
        table, token = LC1_CLASSES, code[:1]
        if len(code) < 2:
            token = ""
    elif labels == "lu1":
        table, token = LU1_CLASSES, code[:3]
    else:
        if code[:1] in LC1_CLASSES and code not in CROP_CLASSES and len(code) >= 2:
            return None  # another land cover: not a crop point
        table, token = CROP_CLASSES, code
    if token not in table:
        raise ValueError(f"unknown {key} code {code!r}")
    return list(table).index(token)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.reshape(()).item())
    return str(value)


def _root_options(root) -> tuple[Path, str | None, bool]:
    text = str(root)
    labels, skip_bad = None, False
    while not Path(text).exists() and ":" in text:
        head, _, token = text.rpartition(":")
        if token in LABEL_SETS:
            labels = labels or token
        elif token == "skip-bad":
            skip_bad = True
        else:
            break
        text = head
    return Path(text), labels, skip_bad


class Sen4Map(Dataset):
    """Sen4Map points as ``(12, C)`` month series with one label set; see the module docstring.

    Args:
        root: the HDF5 file (optionally ``FILE:labels[:skip-bad]``).
        transforms: dict -> dict per sample (default: the tower's bands, ``SelectBands``).
        labels: ``lc1`` (default), ``lu1`` or ``crop``.
        skip_bad: leave unreadable points out (one line each on stderr) instead of stopping.
    """

    name = "sen4map"
    multilabel = False
    classes: ClassVar[list[str]] = label_classes("lc1")
    prompt_set: ClassVar[str] = "sen4map"  # built-in prompts (senclip/prompts/data/sen4map.yaml)
    download_spec = None  # distributed by its publishers; not fetched by senclip

    def __init__(self, root, transforms: Callable | None = None, labels: str | None = None,
                 skip_bad: bool = False) -> None:
        path, root_labels, root_skip = _root_options(root)
        self.labels_name = labels or root_labels or "lc1"
        self.classes = label_classes(self.labels_name)
        self.skip_bad = skip_bad or root_skip
        self.root = path
        self.transforms = transforms
        self.all_bands = SEN4MAP_BANDS
        if not path.is_file():
            raise SenclipError(f"Sen4Map file not found: {path}")
        self.series, self.labels, self.paths, self.skipped, self.bad = self._read(path)
        if not len(self.labels):
            raise SenclipError(f"{path}: no valid Sen4Map point for label set {self.labels_name}")

    def _read(self, path: Path):
        try:
            import h5py
        except ImportError as exc:  # pragma: no cover - a dependency
            raise SenclipError("reading Sen4Map needs h5py (pip install h5py)") from exc
        series, labels, names, skipped, bad = [], [], [], 0, []
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise SenclipError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from exc
        with f:
            for name in sorted(f.keys()):
                group = f[name]
                try:
                    if not isinstance(group, h5py.Group) or not name.startswith("Lucas_Point_"):
                        raise ValueError("not a Lucas_Point_<id> group")
                    if "image" not in group:
                        raise ValueError("no 'image' dataset")
                    image = group["image"]
                    if image.ndim != 4 or image.shape[:2] != (12, len(SEN4MAP_BANDS)):
                        raise ValueError(f"image of shape {tuple(image.shape)}, expected (12, 10, H, W)")
                    h, w = image.shape[2:]
                    pixel = np.asarray(image[:, :, h // 2, w // 2], dtype=np.float32)
                    if not np.isfinite(pixel).all():
                        raise ValueError("non-finite values in image (months are expected filled)")
                    label = label_of(self.labels_name, group.attrs)
                except ValueError as exc:
                    message = f"{path}: group {name}: {exc}"
                    if not self.skip_bad:
                        raise SenclipError(message + " (skip such points with --skip-bad)") from None
                    print(f"skipped {message}", file=sys.stderr)
                    bad.append(name)
                    continue
                if label is None:
                    skipped += 1
                    continue
                series.append(pixel)
                labels.append(label)
                names.append(name)
        stack = np.stack(series) if series else np.zeros((0, 12, len(SEN4MAP_BANDS)), np.float32)
        return stack, np.asarray(labels, dtype=np.int64), names, skipped, bad

    @classmethod
    def default_transforms(cls, bands: Sequence[str] | None = None) -> Callable | None:
        """Band selection for a tower with ``bands`` (scaling lives in the tower)."""
        if bands is None:
            return None
        if isinstance(bands, str):
            bands = [b.strip() for b in bands.split(",") if b.strip()]
        return SelectBands(bands, axis=-1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        sample = {"image": torch.from_numpy(self.series[index]),
                  "label": torch.tensor(int(self.labels[index])), "path": self.paths[index],
                  "bands": self.all_bands}
        return self.transforms(sample) if self.transforms is not None else sample

    def fingerprint(self) -> str:
        """Digest of the points read, their labels and the label set."""
        h = hashlib.sha256(json.dumps({"file": str(self.root.resolve()), "labels": self.labels_name,
                                       "points": self.paths}).encode())
        h.update(self.series.tobytes())
        h.update(self.labels.tobytes())
        return h.hexdigest()

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True) if n}

    def __repr__(self) -> str:
        return f"Sen4Map(root={str(self.root)!r}, labels={self.labels_name}, samples={len(self)})"


__all__ = ["CROP_CLASSES", "LABEL_SETS", "LC1_CLASSES", "LU1_CLASSES", "SEN4MAP_BANDS", "Sen4Map",
           "label_classes", "label_of"]
