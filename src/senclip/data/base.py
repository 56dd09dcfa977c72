"""Common machinery for the classification datasets (EuroSAT, EuroSAT MS, BigEarthNet).

A :class:`ClassificationDataset` knows its sample paths and labels as soon as
it is built (no image is read for that), reads one image per ``__getitem__``
as stored (8-bit values or Sentinel-2 digital numbers, float32 ``(C, H, W)``)
and applies the sample transforms it was given. Subclasses declare their
metadata as class attributes and implement :meth:`ClassificationDataset._scan`
and :meth:`ClassificationDataset._read_image`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from senclip.bands import RGB_BANDS
from senclip.data.download import DatasetSpec
from senclip.data.transforms import Compose, ScaleReflectance, SelectBands, true_colour
from senclip.errors import DatasetNotFoundError, SenclipError

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]

EUROSAT_CLASSES: tuple[str, ...] = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)
"""The 10 EuroSAT classes; a label is the position in this canonical list."""


class ClassificationDataset(Dataset):
    """Image classification dataset returning dict samples.

    Attributes:
        name: Registry name ("eurosat", "eurosat-ms", "bigearthnet").
        classes: Class names; label ``k`` means ``classes[k]``.
        multilabel: True when labels are multi-hot vectors.
        all_bands: Channels of the returned image before transforms.
        layout: One-line description of the expected folder layout, used in errors.
        download_spec: Where the archive lives (``senclip download``, ``download=True``), or None.
        prompt_set: Built-in prompt set (file stem in ``senclip/prompts/data``), or None.
        root: The resolved data root.
        paths: One path per sample (an image file, or a patch folder).
        labels: ``(N,)`` int64 class indices or ``(N, C)`` uint8 multi-hot,
            known without reading any image.
        transforms: Callable applied to each sample dict, or None.
    """

    name: ClassVar[str] = ""
    classes: list[str]
    multilabel: ClassVar[bool] = False
    all_bands: ClassVar[tuple[str, ...]] = ()
    layout: ClassVar[str] = ""
    download_spec: ClassVar[DatasetSpec | None] = None
    prompt_set: ClassVar[str | None] = None

    def __init__(self, root: str | os.PathLike, transforms: Transform | None = None,
                 download: bool = False) -> None:
        """Locate the data under ``root`` and list samples and labels.

        Args:
            root: Dataset root folder (see each dataset's ``layout``).
            transforms: Sample transform (dict -> dict) or None for raw values.
            download: If the data is missing, fetch it with
                ``senclip.data.download.ensure_dataset(name, root)`` first.

        Raises:
            DatasetNotFoundError: ``root`` is missing or has the wrong layout.
            SenclipError: The data is incomplete (e.g. an empty class folder).
        """
        if transforms is not None and not callable(transforms):
            raise SenclipError(f"transforms must be a callable or None, got {type(transforms).__name__}")
        self.transforms = transforms
        self.root = self._locate(Path(root), download)
        self.paths, self.labels = self._scan(self.root)
        if not self.paths:
            raise DatasetNotFoundError(f"no {self.name} samples found in {self.root}; expected {self.layout}")

    # -- subclass hooks -------------------------------------------------
    def _find_root(self, root: Path) -> Path | None:
        """Return the folder holding the data below ``root``, or None if absent."""
        return root if root.is_dir() else None

    def _scan(self, root: Path) -> tuple[list[str], np.ndarray]:
        """List sample paths and labels under the resolved root."""
        raise NotImplementedError

    def _read_image(self, index: int) -> torch.Tensor:
        """Read sample ``index`` as a float32 ``(C, H, W)`` tensor of stored values."""
        raise NotImplementedError

    def _fingerprint_files(self, index: int) -> list[Path]:
        """Files whose sizes enter the fingerprint for sample ``index``."""
        return [Path(self.paths[index])]

    # -- public API -----------------------------------------------------
    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:
        """Return ``{"image", "label", "path", "bands"}`` after transforms."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        image = self._read_image(index)
        if self.multilabel:
            label = torch.from_numpy(self.labels[index].astype(np.float32))
        else:
            label = torch.tensor(int(self.labels[index]), dtype=torch.int64)
        sample: Sample = {"image": image, "label": label, "path": self.paths[index],
                          "bands": self.all_bands}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def fingerprint(self) -> str:
        """SHA-256 hex digest of name, classes, bands, relative paths and file sizes.

        It changes when a file is added, removed, renamed or resized, so it
        serves as a cache key for embeddings computed from this dataset.
        """
        h = hashlib.sha256()
        h.update(f"{self.name}\n{self.all_bands}\n".encode())
        h.update("\n".join(self.classes).encode() + b"\n")
        for i, path in enumerate(self.paths):
            h.update(Path(path).relative_to(self.root).as_posix().encode() + b"\0")
            h.update(str(self.labels[i].tolist()).encode() + b"\0")
            for f in self._fingerprint_files(i):
                try:
                    size = f.stat().st_size
                except OSError:
                    raise SenclipError(f"file {f} is missing; the dataset changed after loading") from None
                h.update(f"{f.name}:{size}\n".encode())
        return h.hexdigest()

    @classmethod
    def default_transforms(cls, bands: Sequence[str] | None = RGB_BANDS) -> Transform:
        """What a model tower whose input bands are ``bands`` expects.

        RGB (``B04, B03, B02``) gives :func:`~senclip.data.transforms.true_colour`
        (reflectance x 3.5, clipped to [0, 1]); other bands give
        ``SelectBands(bands)`` then ``ScaleReflectance(1e-4)`` (reflectance).
        ``bands=None`` keeps all bands.

        Raises:
            SenclipError: A band is not one of ``all_bands``.
        """
        bands = cls.check_bands(bands)
        if bands == RGB_BANDS:
            return true_colour()
        return Compose([SelectBands(bands), ScaleReflectance(scale=1e-4)])

    @classmethod
    def check_bands(cls, bands: Sequence[str] | None) -> tuple[str, ...]:
        """Validate band names against ``all_bands`` (None means all of them)."""
        if bands is None:
            return tuple(cls.all_bands)
        if isinstance(bands, str):
            bands = [b.strip() for b in bands.split(",") if b.strip()]
        bands = tuple(bands)
        unknown = [b for b in bands if b not in cls.all_bands]
        if unknown or not bands:
            raise SenclipError(f"{cls.name} has no band(s) {unknown or '(none given)'}; "
                               f"choose from {','.join(cls.all_bands)}")
        return bands

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, samples={len(self)}, "
                f"classes={len(self.classes)}, transforms={self.transforms!r})")

    # -- helpers --------------------------------------------------------
    def _locate(self, root: Path, download: bool) -> Path:
        found = self._find_root(root)
        if found is None and download:
            from senclip.data.download import ensure_dataset  # lazy: optional module

            result = ensure_dataset(self.name, root)
            found = self._find_root(Path(result) if result is not None else root)
        if found is None:
            hint = " (or pass download=True)" if not download else ""
            raise DatasetNotFoundError(f"{self.name} data not found at {root}: expected {self.layout}{hint}")
        return found


class ClassFolderDataset(ClassificationDataset):
    """A dataset laid out as ``<root>/<ClassName>/*<suffix>`` (EuroSAT RGB and MS).

    Subclasses declare ``classes``, ``suffixes``, ``nested_roots`` (release
    layouts to look into) and ``layout``, and implement ``_read_image``.
    """

    suffixes: ClassVar[tuple[str, ...]] = ()
    nested_roots: ClassVar[tuple[str, ...]] = ()

    def _find_root(self, root: Path) -> Path | None:
        # an empty folder is no dataset (so download=True fills it)
        if not root.is_dir() or next(root.iterdir(), None) is None:
            return None
        if (root / self.classes[0]).is_dir():
            return root
        for sub in self.nested_roots:
            if (root / sub).is_dir():
                return root / sub
        return root  # scanning it explains what is missing (e.g. a split folder one level down)

    def _scan(self, root: Path) -> tuple[list[str], np.ndarray]:
        return scan_class_folders(root, self.classes, self.suffixes, self.layout)


GEOTIFF_OPEN_OPTIONS: dict[str, str] = {"GEOREF_SOURCES": "NONE"}
"""rasterio open options for reading sample pixels: skip the CRS and geotransform.

Samples need pixels only; parsing a GeoTIFF's CRS through PROJ costs several
milliseconds per file (most of the open time for a 120x120 BigEarthNet band).
"""


def raster_read_env():
    """A ``rasterio.Env`` for reading many small GeoTIFFs: one GDAL environment, no sidecar scan.

    ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` stops GDAL from listing the folder
    for ``.aux.xml``/``.ovr`` sidecars on every open; samples read stored values,
    which sidecars do not change.
    """
    import rasterio

    return rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR")


def scan_class_folders(root: Path, classes: Sequence[str], suffixes: Sequence[str],
                       layout: str) -> tuple[list[str], np.ndarray]:
    """List ``<root>/<Class>/*<suffix>`` files and their class indices.

    Args:
        root: Folder holding one sub-folder per class.
        classes: Canonical class names; a label is the index in this list.
        suffixes: Accepted file suffixes, lower case (e.g. ``(".jpg", ".jpeg")``).
        layout: Layout description for error messages.

    Returns:
        Sorted file paths (per class, by name) and an int64 label array.

    Raises:
        DatasetNotFoundError: No class folder exists under ``root``.
        SenclipError: A class folder is missing or holds no matching file.
    """
    present = [c for c in classes if (root / c).is_dir()]
    if not present:
        hint = _subfolder_hint(root, classes)
        raise DatasetNotFoundError(f"no class folders ({', '.join(classes[:3])}, ...) in {root}; "
                                   f"expected {layout}{hint}")
    paths: list[str] = []
    labels: list[int] = []
    for k, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise SenclipError(f"class folder {folder} is missing; expected {layout}")
        with os.scandir(folder) as it:
            files = sorted(e.name for e in it if e.name.lower().endswith(tuple(suffixes)) and e.is_file())
        if not files:
            raise SenclipError(f"class folder {folder} holds no {'/'.join(suffixes)} files")
        paths.extend(str(folder / f) for f in files)
        labels.extend([k] * len(files))
    return paths, np.asarray(labels, dtype=np.int64)


def _subfolder_hint(root: Path, classes: Sequence[str]) -> str:
    """Suggest sub-folders of ``root`` (e.g. ``train/``) that do hold class folders."""
    if not root.is_dir():
        return ""
    hits = sorted(d.name for d in root.iterdir() if d.is_dir() and (d / classes[0]).is_dir())
    return f" (did you mean {', '.join(str(root / h) for h in hits)}?)" if hits else ""
