"""EuroSAT RGB (Helber et al. 2019): 64x64 true-colour JPEGs of Sentinel-2 L1C, 10 classes.

Layout: ``<root>/<ClassName>/*.jpg`` with the 10 classes of
:data:`~senclip.data.base.EUROSAT_CLASSES`. The official archive's
``<root>/2750/<ClassName>/`` and the Zenodo release's ``<root>/EuroSAT_RGB/``
are accepted too. Images are returned as stored: 8-bit values as float32
``(3, 64, 64)`` in band order ``B04, B03, B02`` (red, green, blue).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from senclip.bands import RGB_BANDS
from senclip.data.base import EUROSAT_CLASSES, ClassFolderDataset, Transform
from senclip.data.download import DatasetSpec
from senclip.data.transforms import Compose, SelectBands, ToFloat
from senclip.errors import SenclipError

EUROSAT_HF = "https://huggingface.co/datasets/torchgeo/eurosat/resolve"  # TorchGeo's mirror of both archives


class EuroSAT(ClassFolderDataset):
    """EuroSAT RGB JPEGs in class folders; labels are canonical class indices.

    Args:
        root: Folder with the class folders (or the release's ``2750/`` parent).
        transforms: Sample transform (dict -> dict), or None for raw 0-255 values.
        download: Fetch the data with ``senclip.data.download`` when missing.
    """

    name: ClassVar[str] = "eurosat"
    classes: ClassVar[list[str]] = list(EUROSAT_CLASSES)
    multilabel: ClassVar[bool] = False
    all_bands: ClassVar[tuple[str, ...]] = RGB_BANDS
    suffixes: ClassVar[tuple[str, ...]] = (".jpg", ".jpeg")
    nested_roots: ClassVar[tuple[str, ...]] = ("2750", "EuroSAT_RGB", "EuroSAT_RGB/2750")
    layout: ClassVar[str] = ("<root>/<ClassName>/*.jpg for the 10 EuroSAT classes "
                             "(or <root>/2750/<ClassName>/)")
    prompt_set: ClassVar[str] = "eurosat"
    download_spec: ClassVar[DatasetSpec] = DatasetSpec(
        "eurosat", "EuroSAT.zip", extracted="2750", md5="c8fa014336c82ac7804f0398fcb19387",
        approx_size="94.3 MB", aliases=("eurosat-rgb",),
        urls=(f"{EUROSAT_HF}/c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
              "http://madm.dfki.de/files/sentinel/EuroSAT.zip"),
        source="torchvision.datasets.EuroSAT (URL pinned to a commit of the TorchGeo mirror, MD5); "
               "DFKI URL from the EuroSAT README")

    def _read_image(self, index: int) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_image, read_file

        path = self.paths[index]
        try:
            data = read_file(path)
            image = decode_image(data, mode=ImageReadMode.RGB)
        except (RuntimeError, OSError, ValueError) as err:
            reason = str(err).splitlines()[0].rsplit(", ", 1)[-1] if str(err) else type(err).__name__
            raise SenclipError(f"cannot read image {path}: {reason}; replace or delete the file") from None
        return image.to(torch.float32)

    @classmethod
    def default_transforms(cls, bands: Sequence[str] | None = RGB_BANDS) -> Transform:
        """``ToFloat(1/255)``: 8-bit values to [0, 1], as an RGB CLIP expects.

        ``bands`` must be RGB bands (a reordering or subset of ``B04, B03, B02``
        adds a :class:`~senclip.data.transforms.SelectBands`).

        Raises:
            SenclipError: A band other than B04/B03/B02 is asked for.
        """
        asked = bands.split(",") if isinstance(bands, str) else bands or ()
        other = [b for b in asked if b not in RGB_BANDS]
        if other:
            raise SenclipError(f"EuroSAT RGB JPEGs only hold B04,B03,B02, not {','.join(other)}; "
                               "use the 'eurosat-ms' dataset for other bands")
        bands = cls.check_bands(bands)
        return Compose(([] if bands == RGB_BANDS else [SelectBands(bands)]) + [ToFloat(1 / 255)])
