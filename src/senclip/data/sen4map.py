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

Label sets (``labels``; classes and texts as the TimeSenCLIP reference names them,
:mod:`senclip.data.sen4map_labels`):

- ``lc1``: 8 land-cover classes by the code's letter (A Artificial Land ... H Wetlands);
- ``lu1``: 16 land-use classes by the code's first three characters (U11 Agriculture ... U42);
- ``crop``: 40 crop types (cropland codes B11 ... B84); points of other land cover are
  not part of this set and are left out (counted in :attr:`Sen4Map.skipped`);
- ``eunis``: 44 ecosystem types (EUNIS level-2 habitats) from ``EUNIS_L2``;
- ``bioregion``: 12 biogeographical regions from ``bioregion_class_code``.

``points`` (a CSV in the published test list's format, :mod:`senclip.data.sen4map_points`) restricts
the samples to the listed points, in the list's order, one per row (a repeated row is a second
sample, as the reference evaluates it), with labels from its columns; listed points the file lacks
are counted (:attr:`Sen4Map.points_info`), not errors, unless none is in the file.

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

from senclip.data.sen4map_labels import (
    CROP_CLASSES,
    LABEL_SETS,
    LC1_CLASSES,
    LU1_CLASSES,
    attr_text,
    class_index,
    label_classes,
    label_of,
    user_class_key,
)
from senclip.data.series.base import SeriesDataset
from senclip.data.series.io import DATE_RE, S2_BANDS, SeriesSource
from senclip.errors import SenclipError

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
    text = attr_text(value)
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
        labels: ``lc1`` (default), ``lu1``, ``crop``, ``eunis`` or ``bioregion``.
        skip_bad: leave unreadable points out (one line each on stderr) instead of stopping.
        points: a test list (CSV, the published format): only its points, labels from its columns.

    ``source`` is the :class:`Sen4MapSource` read; ``rows``/``cols`` place each sample in it.
    ``points_info`` (with ``points``): the list's file, how many points it lists, how many the HDF5
    file holds and lacks, how many have no label in the set, and its coordinate columns' order.
    """

    name = "sen4map"
    multilabel = False
    classes: ClassVar[list[str]] = label_classes("lc1")
    prompt_set: ClassVar[str] = "sen4map"  # built-in prompts (senclip/prompts/data/sen4map.yaml)
    user_class_key = staticmethod(user_class_key)  # user prompt files: other case, previous senclip keys
    download_spec = None  # distributed by its publishers; not fetched by senclip

    def __init__(self, root, transforms: Callable | None = None, labels: str | None = None,
                 skip_bad: bool = False, points=None) -> None:
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
        self.points_info = None
        if points is not None:
            self.labels, self.cols, self.skipped, self.bad = self._select_listed(points)
        else:
            self.labels, self.cols, self.skipped, self.bad = self._select()
        if not len(self.labels):
            info = self.points_info
            if info is not None and not info["present"]:  # a test list of another split
                raise SenclipError(f"0 of {info['listed']} points listed in {info['file']} are in {path}")
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

    def _select_listed(self, points):
        from senclip.data.sen4map_points import COLUMNS, read_points

        plist = read_points(points)
        column = COLUMNS[self.labels_name]
        if self.labels_name not in plist.labels:
            raise SenclipError(f"{plist.path}: no '{column}' column for label set {self.labels_name}")
        at = {name: i for i, name in enumerate(self.source.points)}
        labels, cols, bad, missing, unlabelled = [], [], [], [], 0
        for pid, value in zip(plist.ids, plist.labels[self.labels_name], strict=True):
            if pid not in at:
                missing.append(pid)
                continue
            if value is None:
                unlabelled += 1
                continue
            if pid in self.source.errors:
                message = f"{self.root}: group {pid}: {self.source.errors[pid]}"
            else:
                try:
                    label = class_index(self.labels_name, value)
                    message = None
                except ValueError as exc:
                    message = f"{plist.path}: point {pid}, column {column}: {exc}"
            if message is not None:
                if not self.skip_bad:
                    raise SenclipError(message + " (skip such points with --skip-bad)")
                print(f"skipped {message}", file=sys.stderr)
                bad.append(pid)
                continue
            labels.append(label)
            cols.append(at[pid])
        self.points_info = {"file": str(plist.path), "listed": len(plist.ids), "present": len(plist.ids) -
                            len(missing), "missing_from_h5": len(missing),
                            "missing_examples": list(dict.fromkeys(missing))[:5],
                            "without_label": unlabelled, "duplicate_rows": plist.duplicates,
                            "label_column": column, "coordinates": plist.coordinates}
        return (np.asarray(labels, dtype=np.int64), np.asarray(cols, dtype=np.int64), unlabelled, bad)

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
