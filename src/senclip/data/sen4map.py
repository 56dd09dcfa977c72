"""Sen4Map: LUCAS points with a year of Sentinel-2, the evaluation set of TimeSenCLIP.

One HDF5 file; each point is a group ``Lucas_Point_<id>`` with attributes ``lc1`` (LUCAS
land-cover code, e.g. ``B16``), ``lu1`` (land-use code, e.g. ``U111``), ``nuts0``,
``lc1_label``, ``Coordinates``, ``bioregion_class_code``, ``EUNIS_L2``, and its Sentinel-2
year in one of two layouts; each group is read in the layout it has, and both give the same
kind of sample, the ``(12, 10)`` series of the group's centre pixel:

* **1x1** (what TimeSenCLIP trains and evaluates on; ``Sen4MapDataset_1x1`` in
  ``src/Data/lucas_sen_data.py`` and ``Sen4MapDataset_withlabels`` in
  ``src/Data/sen4map_data.py`` of ``pallavijain-pj/TimeSenCLIP``): a dataset ``image`` of shape
  ``(12, 10, H, W)`` [month, band, y, x], bands B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12
  (L2A digital numbers), months already composited and filled by the publishers.
* **raw** (``BaseSen4MapDataset.get_data`` in ``src/Data/lucas_sen_data.py``): one dataset per
  band, named ``B2`` ... ``B12`` as above, each ``(T, H, W)`` over the ``T`` acquisitions; a
  dataset ``SCL`` ``(T, H, W)`` (scene classification); and the attribute ``Image_ID``, the
  ``T`` acquisition ids, each holding its date as ``YYYYMMDD`` (a dataset ``Image_ID`` is read
  too). The 12 monthly steps are made as that reference code makes them
  (:func:`reference_composite`): values whose SCL is 9 or more (cloud high probability, thin
  cirrus, snow) are set to 0 *and kept*; each calendar month of the year is the per-band
  median of that month's acquisitions (``torch.median``: the lower middle value for an even
  count); a month without any acquisition takes the median of all the year's acquisitions;
  and 1 is added to every value. The reference matches acquisitions to months by the
  substring ``2018MM`` of their ids (Sen4Map is the LUCAS 2018 survey); senclip parses the
  id's date and composites the year most acquisitions fall in, which for Sen4Map is 2018.
  Note what follows from the rule: a month whose acquisitions are all cloudy is 1 (zeros'
  median + 1), and cloudy zeros pull a month's median down; nothing is masked.

Label sets (``labels``), grouped as the TimeSenCLIP code groups LUCAS codes
(``src/Data/label_mapping.py``, ``src/Data/lucas_class_mapping.py``):

- ``lc1``: 8 land-cover classes by the code's letter (A artificial land ... H wetlands);
- ``lu1``: 16 land-use classes by the code's first three characters (U11 agriculture ... U42);
- ``crop``: 40 crop types (cropland codes B11 ... B84); points of other land cover are
  not part of this set and are left out (counted in :attr:`Sen4Map.skipped`).

A group in neither layout, with another shape, a raw group missing a band, ``SCL`` or
``Image_ID`` or whose lengths disagree, non-finite values or a label code the set does not
know stops the read with one line naming the group; with ``skip_bad`` it is left out
instead (one line each on stderr).

``root`` may carry options after the file: ``FILE.h5:lu1`` or ``FILE.h5:crop:skip-bad``.

As a series source (:class:`Sen4MapSource`, what :func:`senclip.data.sources.open_series`
returns for a ``.h5``/``.hdf5`` file), the points form a ``1 x N`` grid, so
``senclip proxy-pairs --series FILE.h5 --labels lc1`` writes manifest rows (``row`` 0, ``col``
= the group's index among the file's sorted groups) that ``senclip train`` reads back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from senclip.data.series.base import SeriesDataset
from senclip.data.series.io import DATE_RE, S2_BANDS, SeriesSource
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
RAW_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
"""Names of the band datasets of the raw layout, in :data:`SEN4MAP_BANDS` order."""
SCL_CLOUDY = 9
"""Raw layout: SCL classes from 9 up (cloud high probability, thin cirrus, snow) are cloudy."""
RAW_OFFSET = 1.0
"""Raw layout: added to every composited value, as the reference does."""
SEN4MAP_YEAR = 2018
"""The LUCAS survey year of Sen4Map (the nominal year of its monthly steps)."""
H5_SUFFIXES = (".h5", ".hdf5")


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


def sen4map_path(root) -> Path:
    """The file of a Sen4Map root, without its options (``FILE.h5:lu1:skip-bad`` -> ``FILE.h5``)."""
    return _root_options(root)[0]


def is_sen4map(root) -> bool:
    """Whether ``root`` (optionally ``FILE:labels[:skip-bad]``) names an HDF5 file, read as Sen4Map."""
    return sen4map_path(root).suffix.lower() in H5_SUFFIXES


def lower_median(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The median as ``torch.median`` defines it: for an even count, the lower of the two middle values."""
    n = values.shape[axis]
    return np.take(np.sort(values, axis=axis), (n - 1) // 2, axis=axis)


def reference_composite(values: np.ndarray, scl: np.ndarray, dates: Sequence[dt.date],
                        year: int | None = None) -> np.ndarray:
    """Twelve monthly steps from raw acquisitions, by the TimeSenCLIP rule (see the module docstring).

    Args:
        values: ``(T, C, ...)`` band values of the ``T`` acquisitions.
        scl: ``(T, ...)`` scene classification; ``>= 9`` (cloud high probability, cirrus,
            snow) is cloudy and enters the medians as 0.
        dates: the ``T`` acquisition dates.
        year: the composited year (default: the year most acquisitions fall in).

    Returns:
        float32 ``(12, C, ...)``: per month the lower median of its acquisitions (of all the
        acquisitions when the month has none), plus :data:`RAW_OFFSET`.
    """
    values = np.asarray(values, dtype=np.float32)
    clear = np.asarray(scl) < SCL_CLOUDY
    masked = np.where(clear[:, None], values, np.float32(0))
    if year is None:
        year = Counter(d.year for d in dates).most_common(1)[0][0]
    months = np.array([d.month if d.year == year else 0 for d in dates])
    out = np.empty((12, *values.shape[1:]), dtype=np.float32)
    for m in range(12):
        sel = np.flatnonzero(months == m + 1)
        out[m] = lower_median(masked[sel] if sel.size else masked, axis=0)
    return out + np.float32(RAW_OFFSET)


def _id_date(value) -> dt.date:
    text = _text(value)
    m = DATE_RE.search(text)
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except (TypeError, ValueError):
        raise ValueError(f"Image_ID {text!r} holds no YYYYMMDD date") from None


def _read_1x1(group) -> np.ndarray:
    image = group["image"]
    if image.ndim != 4 or image.shape[:2] != (12, len(SEN4MAP_BANDS)):
        raise ValueError(f"image of shape {tuple(image.shape)}, expected (12, 10, H, W)")
    h, w = image.shape[2:]
    pixel = np.asarray(image[:, :, h // 2, w // 2], dtype=np.float32)
    if not np.isfinite(pixel).all():
        raise ValueError("non-finite values in image (months are expected filled)")
    return pixel


def _read_raw(group) -> np.ndarray:
    missing = [b for b in (*RAW_BANDS, "SCL") if b not in group]
    if missing:
        raise ValueError(f"raw layout without dataset(s) {', '.join(missing)}")
    ids = group.attrs["Image_ID"] if "Image_ID" in group.attrs else \
        group["Image_ID"][()] if "Image_ID" in group else None
    if ids is None:
        raise ValueError("raw layout without Image_ID (the acquisition dates)")
    dates = [_id_date(v) for v in np.atleast_1d(ids)]
    scl = group["SCL"]
    if scl.ndim != 3 or not scl.shape[0]:
        raise ValueError(f"SCL of shape {tuple(scl.shape)}, expected (T, H, W) with T >= 1")
    for band in RAW_BANDS:
        if group[band].shape != scl.shape:
            raise ValueError(f"{band} of shape {tuple(group[band].shape)} where SCL is {tuple(scl.shape)}")
    if len(dates) != scl.shape[0]:
        raise ValueError(f"{len(dates)} Image_ID dates for {scl.shape[0]} acquisitions")
    y, x = scl.shape[1] // 2, scl.shape[2] // 2
    values = np.stack([np.asarray(group[b][:, y, x], dtype=np.float32) for b in RAW_BANDS], axis=1)
    if not np.isfinite(values).all():
        raise ValueError("non-finite values in the band datasets")
    return reference_composite(values, np.asarray(scl[:, y, x]), dates)


def read_point(group) -> np.ndarray:
    """``(12, 10)`` float32 series of one ``Lucas_Point_<id>`` group in either layout (centre pixel).

    Raises:
        ValueError: the group is in neither layout or its data do not fit (the message says how).
    """
    if "image" in group:
        return _read_1x1(group)
    if any(b in group for b in (*RAW_BANDS, "SCL")):
        return _read_raw(group)
    raise ValueError("no 'image' dataset (1x1 layout) nor band datasets B2 ... B12 + SCL (raw layout)")


class Sen4MapSource(SeriesSource):
    """A Sen4Map file as a series source: its points in a ``1 x N`` grid, one column per group.

    Columns are the file's top-level entries in sorted name order (:attr:`points`), so a
    column index names the same point whenever the file is read. Each point is read (and a
    raw one composited) once, here; the 12 monthly steps are dated the 15th of each month of
    :data:`SEN4MAP_YEAR` (nominal dates: the values are composites already, so compositing
    them again by calendar month returns them unchanged). A group that cannot be read is an
    all-NaN column (no clear month) and its reason is kept in :attr:`errors`.
    """

    def __init__(self, path) -> None:
        try:
            import h5py
        except ImportError as exc:  # pragma: no cover - a dependency
            raise SenclipError("reading Sen4Map needs h5py (pip install h5py)") from exc
        self.path = Path(path)
        self.name = str(self.path)
        self.bands = SEN4MAP_BANDS
        self.dates = [dt.date(SEN4MAP_YEAR, m, 15) for m in range(1, 13)]
        self.errors: dict[str, str] = {}
        self.attrs: list[dict] = []
        try:
            f = h5py.File(self.path, "r")
        except OSError as exc:
            raise SenclipError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from exc
        with f:
            self.points = sorted(f.keys())
            self.data = np.full((12, len(self.bands), 1, len(self.points)), np.nan, dtype=np.float32)
            for i, name in enumerate(self.points):
                group = f[name]
                try:
                    if not isinstance(group, h5py.Group) or not name.startswith("Lucas_Point_"):
                        raise ValueError("not a Lucas_Point_<id> group")
                    self.data[:, :, 0, i] = read_point(group)
                except ValueError as exc:
                    self.errors[name] = str(exc)
                self.attrs.append(dict(group.attrs) if isinstance(group, h5py.Group) else {})
        self.height, self.width = 1, len(self.points)

    def read(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        block = self.data[:, :, self._check_rows(rows)]
        return block.copy(), np.isfinite(block).all(axis=1)

    def _identity(self) -> dict:
        st = self.path.stat()
        return super()._identity() | {"size": st.st_size, "mtime": st.st_mtime}


class Sen4Map(SeriesDataset):
    """Sen4Map points as ``(12, C)`` month series with one label set; see the module docstring.

    Args:
        root: the HDF5 file (optionally ``FILE:labels[:skip-bad]``).
        transforms: dict -> dict per sample (default: the tower's bands, ``SelectBands``).
        labels: ``lc1`` (default), ``lu1`` or ``crop``.
        skip_bad: leave unreadable points out (one line each on stderr) instead of stopping.

    ``source`` is the :class:`Sen4MapSource` read; ``rows``/``cols`` place each sample in it.
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
        self.source = Sen4MapSource(path)
        self.labels, self.cols, self.skipped, self.bad = self._select()
        if not len(self.labels):
            raise SenclipError(f"{path}: no valid Sen4Map point for label set {self.labels_name}")
        self.rows = np.zeros_like(self.cols)
        self.series = np.ascontiguousarray(self.source.data[:, :, 0, self.cols].transpose(2, 0, 1))
        self.paths = [self.source.points[i] for i in self.cols]

    def _select(self):
        labels, cols, skipped, bad = [], [], 0, []
        for i, name in enumerate(self.source.points):
            try:
                if name in self.source.errors:
                    raise ValueError(self.source.errors[name])
                label = label_of(self.labels_name, self.source.attrs[i])
            except ValueError as exc:
                message = f"{self.root}: group {name}: {exc}"
                if not self.skip_bad:
                    raise SenclipError(message + " (skip such points with --skip-bad)") from None
                print(f"skipped {message}", file=sys.stderr)
                bad.append(name)
                continue
            if label is None:
                skipped += 1
                continue
            labels.append(label)
            cols.append(i)
        return np.asarray(labels, dtype=np.int64), np.asarray(cols, dtype=np.int64), skipped, bad

    def fingerprint(self) -> str:
        """Digest of the points read, their labels and the label set."""
        h = hashlib.sha256(json.dumps({"file": str(self.root.resolve()), "labels": self.labels_name,
                                       "points": self.paths}).encode())
        h.update(self.series.tobytes())
        h.update(self.labels.tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"Sen4Map(root={str(self.root)!r}, labels={self.labels_name}, samples={len(self)})"


__all__ = ["CROP_CLASSES", "LABEL_SETS", "LC1_CLASSES", "LU1_CLASSES", "RAW_BANDS", "SEN4MAP_BANDS",
           "Sen4Map", "Sen4MapSource", "is_sen4map", "label_classes", "label_of", "lower_median",
           "read_point", "reference_composite", "sen4map_path"]
