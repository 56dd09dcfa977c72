"""BigEarthNet-S2 v1.0 (Sumbul et al. 2019): 120x120 px Sentinel-2 L2A patches, multi-label.

Layout: ``<root>/<patch>/<patch>_B01.tif ... <patch>_B12.tif, <patch>_B8A.tif`` plus
``<root>/<patch>/<patch>_labels_metadata.json`` (the release's ``BigEarthNet-v1.0/``
folder under ``root`` is accepted too). Each band is a single-band GeoTIFF at its
native resolution: 10 m bands (B02, B03, B04, B08) are 120x120, 20 m bands
(B05, B06, B07, B8A, B11, B12) 60x60, 60 m bands (B01, B09) 20x20.

The image is the 12 bands stacked in the order of :data:`BIGEARTHNET_BANDS`
(``B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B11, B12``; B10 is not
in L2A), all resampled to the 10 m grid (120x120) by rasterio on read with
``resampling`` (default bilinear), as stored digital numbers
(reflectance x 10,000) in float32. RGB for a CLIP tower is ``B04, B03, B02``
(red, green, blue) -- not ``B02, B03, B04`` (BGR), which the published SenCLIP
code fed as RGB; :func:`rgb_transforms` with ``"reference-bgr"`` feeds that
order, to reproduce the reference's numbers only.

Labels: the 43 original CORINE labels of the JSON files, or the 19-class
nomenclature of Sumbul et al. 2021 (default), as multi-hot vectors. The table
is ``bigearthnet_labels.json`` beside this module. Eleven original labels have
no 19-class counterpart (see its ``dropped`` list); a patch with only such
labels gets an all-zero 19-class target (the official 19-class splits leave
those patches out).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from senclip.bands import RGB_ORDERS, S2_L2A_BANDS, STRETCHES
from senclip.data.base import GEOTIFF_OPEN_OPTIONS, ClassificationDataset, Transform, raster_read_env
from senclip.data.download import DatasetSpec
from senclip.data.radiometry import read_dn_units
from senclip.data.transforms import true_colour
from senclip.errors import SenclipError

BIGEARTHNET_BANDS: tuple[str, ...] = S2_L2A_BANDS
BAND_RESOLUTION_M: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}
NOMENCLATURES = (19, 43)



class ReferenceMinMax:
    """The SenCLIP reference's per-image stretch of BigEarthNet, in the reference's order of steps.

    ``BigEarthNetDataset`` (``src/dataset_bigearthnet.py`` of ``yghlc/SenCLIP``, 4ae3131 and 921c4c3)
    takes torchgeo's 120 x 120 image, stretches the three bands' digital numbers together, one minimum
    and one maximum over the whole ``(3, H, W)`` array, to 0 ... 255 (``cv2.normalize(..., 0, 255,
    cv2.NORM_MINMAX)``), truncates to 8 bit (``np.uint8``), makes a PIL RGB image of it, resizes that
    with ``transforms.Resize((224, 224), BICUBIC)`` (on a PIL image: PIL's own bicubic resampling of
    the 8-bit image, whose result is 8 bit again) and only then ``ToTensor`` (/ 255).

    With ``size`` (the tower's input size) this does the same: quantise, resize the 8-bit image with
    PIL's bicubic, divide by 255; the tower then has nothing left to resize. Without it the image stays
    at its own size, in 1/255 steps, and the tower resizes the floats (not the reference's order). A
    constant image becomes 0. The stretch is computed in float64, so the maximum maps to 255 exactly
    (OpenCV's float32 arithmetic may truncate it to 254, one 8-bit step on that pixel).
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = int(size) if size else None

    def __call__(self, sample: dict) -> dict:
        image = sample["image"].to(torch.float64)
        lo, hi = image.min(), image.max()
        scaled = (image - lo) * 255.0 / (hi - lo) if hi > lo else torch.zeros_like(image)
        eight_bit = torch.floor(scaled).to(torch.uint8)
        if self.size is not None and tuple(eight_bit.shape[-2:]) != (self.size, self.size):
            eight_bit = _pil_bicubic(eight_bit, self.size)
        return sample | {"image": eight_bit.to(torch.float32) / 255.0}

    def __repr__(self) -> str:
        at = f", PIL bicubic to {self.size} px on 8 bit" if self.size else ""
        return f"ReferenceMinMax(joint over bands, 8 bit{at})"


def _pil_bicubic(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(C, H, W)`` uint8 -> ``(C, size, size)`` uint8 by PIL's bicubic resampling, per channel (what
    torchvision's ``Resize(BICUBIC)`` does to a PIL image)."""
    from PIL import Image

    planes = [Image.fromarray(np.ascontiguousarray(plane.numpy())) for plane in image]
    resized = [p.resize((size, size), Image.Resampling.BICUBIC) for p in planes]
    return torch.from_numpy(np.stack([np.asarray(p) for p in resized]))


_LABEL_TABLE = Path(__file__).with_name("bigearthnet_labels.json")


@functools.lru_cache(maxsize=1)
def label_table() -> dict[str, Any]:
    """The label table: ``labels43`` list, ``nomenclature19`` {class: [43-labels]}, ``dropped``."""
    return json.loads(_LABEL_TABLE.read_text(encoding="utf-8"))


def class_names(nomenclature: int = 19) -> list[str]:
    """Class names of the 19-class (default) or 43-class nomenclature, in label order."""
    nomenclature = _check_nomenclature(nomenclature)
    table = label_table()
    return list(table["nomenclature19"]) if nomenclature == 19 else list(table["labels43"])


@functools.lru_cache(maxsize=2)
def _label_index(nomenclature: int) -> dict[str, int | None]:
    """Map each original (43-class) label name to its class index, None if dropped."""
    table = label_table()
    if nomenclature == 43:
        return {name: k for k, name in enumerate(table["labels43"])}
    index: dict[str, int | None] = dict.fromkeys(table["labels43"])
    for k, sources in enumerate(table["nomenclature19"].values()):
        for source in sources:
            index[source] = k
    return index


def encode_labels(names: Iterable[str], nomenclature: int = 19, source: str = "labels") -> np.ndarray:
    """Multi-hot uint8 vector for original BigEarthNet label names.

    Args:
        names: Original (43-class) label names as in the JSON files.
        nomenclature: 19 or 43.
        source: Where the names come from, for error messages.

    Raises:
        SenclipError: A name is not one of the 43 original labels.
    """
    nomenclature = _check_nomenclature(nomenclature)
    index = _label_index(nomenclature)
    target = np.zeros(nomenclature, dtype=np.uint8)
    for name in names:
        if name not in index:
            raise SenclipError(f"unknown BigEarthNet label {name!r} in {source}; "
                               "expected one of the 43 BigEarthNet-S2 v1 labels")
        k = index[name]
        if k is not None:
            target[k] = 1
    return target


def rgb_transforms(order: str = "rgb", stretch: str = "true-colour", size: int | None = None) -> Transform:
    """Transforms for an RGB tower with the bands of ``RGB_ORDERS[order]`` as R, G, B.

    ``"rgb"`` is the default order (``B04, B03, B02``); ``"reference-bgr"`` feeds
    :data:`senclip.bands.REFERENCE_BGR_BANDS` and exists only to reproduce the SenCLIP reference's
    BigEarthNet numbers. ``stretch``: ``true-colour`` (default,
    :func:`~senclip.data.transforms.true_colour`) or ``reference-minmax`` (:class:`ReferenceMinMax`,
    resized to ``size``, the tower's input size, on 8 bit as the reference does).

    Raises:
        SenclipError: Unknown order or stretch.
    """
    from senclip.data.transforms import Compose, SelectBands

    if order not in RGB_ORDERS:
        raise SenclipError(f"unknown BigEarthNet RGB order {order!r}; choose from {', '.join(RGB_ORDERS)}")
    if stretch not in STRETCHES:
        raise SenclipError(f"unknown BigEarthNet stretch {stretch!r}; choose from {', '.join(STRETCHES)}")
    if stretch == "reference-minmax":
        return Compose([SelectBands(RGB_ORDERS[order]), ReferenceMinMax(size)])
    return true_colour(bands=RGB_ORDERS[order])


def _check_nomenclature(nomenclature: int | str) -> int:
    try:
        value = int(nomenclature)
    except (TypeError, ValueError):
        value = -1
    if value not in NOMENCLATURES:
        raise SenclipError(f"nomenclature must be 19 or 43, got {nomenclature!r}")
    return value


class BigEarthNet(ClassificationDataset):
    """BigEarthNet-S2 v1.0 patch folders with multi-hot targets.

    Args:
        root: Folder holding the patch folders.
        transforms: Sample transform (dict -> dict), or None for raw digital numbers.
        download: Fetch the data with ``senclip.data.download`` when missing.
        nomenclature: 19 (Sumbul et al. 2021, default) or 43 (original labels).
        split_file: Optional CSV/text file whose first column lists the patch
            names to use (e.g. the official ``train.csv``); default: every patch
            folder under ``root``.
        resampling: rasterio resampling used to bring 20 m and 60 m bands to
            the 10 m grid ("bilinear", "nearest", "cubic", ...).
        size: Output height and width in pixels (the 10 m grid: 120).
    """

    name: ClassVar[str] = "bigearthnet"
    multilabel: ClassVar[bool] = True
    all_bands: ClassVar[tuple[str, ...]] = BIGEARTHNET_BANDS
    nested_roots: ClassVar[tuple[str, ...]] = ("BigEarthNet-v1.0",)
    layout: ClassVar[str] = ("<root>/<patch>/<patch>_B01.tif ... _B12.tif, _B8A.tif and "
                             "<patch>_labels_metadata.json (BigEarthNet-S2 v1.0 patch folders)")
    classes = class_names(19)  # the default nomenclature; an instance holds the one it was built with
    prompt_set: ClassVar[str] = "bigearthnet"
    download_spec: ClassVar[DatasetSpec] = DatasetSpec(
        "bigearthnet-s2", "BigEarthNet-S2-v1.0.tar.gz", extracted="BigEarthNet-v1.0",
        urls=("https://bigearth.net/downloads/BigEarthNet-S2-v1.0.tar.gz",
              "https://zenodo.org/records/12687186/files/BigEarthNet-S2-v1.0.tar.gz"),
        md5="5a64e9ce38deb036a435a7b59494924c", aliases=("bigearthnet", "bigearthnet-s2-v1"),
        source="torchgeo.datasets.BigEarthNet (MD5, Zenodo mirror); bigearth.net (official URL)")

    def __init__(self, root: str | os.PathLike, transforms: Transform | None = None,
                 download: bool = False, nomenclature: int = 19,
                 split_file: str | os.PathLike | None = None, resampling: str = "bilinear",
                 size: int = 120) -> None:
        from rasterio.enums import Resampling

        self.nomenclature = _check_nomenclature(nomenclature)
        self.classes = class_names(self.nomenclature)
        if resampling not in Resampling.__members__:
            raise SenclipError(f"unknown resampling {resampling!r}; choose from "
                               f"{', '.join(Resampling.__members__)}")
        self.resampling = resampling
        self.size = int(size)
        self.split_file = Path(split_file) if split_file is not None else None
        super().__init__(root, transforms=transforms, download=download)

    # -- discovery ------------------------------------------------------
    def _find_root(self, root: Path) -> Path | None:
        if not root.is_dir():
            return None
        for sub in self.nested_roots:
            if (root / sub).is_dir():
                return root / sub
        # a root counts only if it holds a patch folder (so download=True fills an empty folder)
        if next(root.glob("*/*_labels_metadata.json"), None) is None:
            return None
        return root

    def _patch_names(self, root: Path) -> list[str]:
        if self.split_file is not None:
            if not self.split_file.is_file():
                raise SenclipError(f"split file {self.split_file} not found")
            lines = self.split_file.read_text(encoding="utf-8").splitlines()
            names = [ln.split(",")[0].strip() for ln in lines if ln.strip()]
            names = [n for n in names if n and n.lower() not in ("patch_id", "name", "patch")]
            missing = [n for n in names if not (root / n).is_dir()]
            if missing:
                raise SenclipError(f"{len(missing)} patch(es) of {self.split_file} not under {root}, "
                                   f"e.g. {missing[0]}")
            return names
        with os.scandir(root) as it:
            names = sorted(e.name for e in it if e.is_dir())
        patches = []
        for n in names:
            if (root / n / f"{n}_labels_metadata.json").is_file():
                patches.append(n)
            elif (root / n / f"{n}_B02.tif").is_file():
                raise SenclipError(f"patch folder {root / n} has no {n}_labels_metadata.json")
        return patches

    def _scan(self, root: Path) -> tuple[list[str], np.ndarray]:
        names = self._patch_names(root)
        labels = np.zeros((len(names), len(self.classes)), dtype=np.uint8)
        for i, n in enumerate(names):
            meta = root / n / f"{n}_labels_metadata.json"
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
                names_43 = data["labels"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise SenclipError(f"cannot read labels from {meta}: {err!r}") from None
            labels[i] = encode_labels(names_43, self.nomenclature, source=str(meta))
        return [str(root / n) for n in names], labels

    # -- reading --------------------------------------------------------
    def band_file(self, index: int, band: str) -> Path:
        """Path of one band's GeoTIFF for sample ``index``."""
        folder = Path(self.paths[index])
        return folder / f"{folder.name}_{band}.tif"

    def _fingerprint_files(self, index: int) -> list[Path]:
        folder = Path(self.paths[index])
        return [self.band_file(index, b) for b in self.all_bands] + [
            folder / f"{folder.name}_labels_metadata.json"]

    def _read_image(self, index: int) -> torch.Tensor:
        out = np.empty((len(self.all_bands), self.size, self.size), dtype=np.float32)
        with raster_read_env():
            for c, band in enumerate(self.all_bands):
                out[c] = self._read_band(self.band_file(index, band))
        return torch.from_numpy(out)

    def _read_band(self, path: Path) -> np.ndarray:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.errors import RasterioError

        if not path.is_file():
            raise SenclipError(f"band file {path.name} missing from patch folder {path.parent}; "
                               "re-extract the patch")
        try:
            with rasterio.open(path, **GEOTIFF_OPEN_OPTIONS) as src:
                if src.shape == (self.size, self.size):
                    return read_dn_units(src, src.read([1]), [1])[0]  # GDAL scale/offset (data.radiometry)
                return read_dn_units(src, src.read([1], out_shape=(1, self.size, self.size),
                                                   resampling=Resampling[self.resampling]), [1])[0]
        except RasterioError as err:
            raise SenclipError(f"cannot read GeoTIFF {path}: {err}; re-extract the patch") from None

    def label_names(self, index: int) -> list[str]:
        """Class names of sample ``index`` in this dataset's nomenclature."""
        return [self.classes[k] for k in np.flatnonzero(self.labels[index])]

    @classmethod
    def band_resolutions(cls, bands: Sequence[str] | None = None) -> dict[str, int]:
        """Native ground sampling distance (m) of each band."""
        return {b: BAND_RESOLUTION_M[b] for b in cls.check_bands(bands)}
