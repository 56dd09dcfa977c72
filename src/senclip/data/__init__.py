"""Datasets (dict samples), transforms and the dataset registry.

:data:`DATASETS` is the one registry: each class declares its classes, download
spec and prompt set, and the download catalogue, the built-in prompt sets and
``senclip map --classes`` read them from here. A new dataset is one module
with its class, imported and listed below.

``get_dataset(name, root, bands, transforms)`` builds a dataset by registry
name with the transforms a model tower whose input bands are ``bands`` expects.
See ``docs/datasets.md`` for layouts, band orders, scaling and nomenclatures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from senclip.data.base import RGB_BANDS, ClassificationDataset
from senclip.data.bigearthnet import BigEarthNet
from senclip.data.download import DATASET_SPECS
from senclip.data.eurosat import EuroSAT
from senclip.data.eurosat_ms import EuroSATMS
from senclip.data.sen4map import Sen4Map
from senclip.data.series.dataset import TimeSeriesDataset
from senclip.errors import SenclipError

DATASETS: dict[str, type[ClassificationDataset]] = {
    "eurosat": EuroSAT,
    "eurosat-ms": EuroSATMS,
    "bigearthnet": BigEarthNet,
    "timeseries": TimeSeriesDataset,
    "sen4map": Sen4Map,
}
DATASET_SPECS.update({c.download_spec.name: c.download_spec for c in DATASETS.values() if c.download_spec})


def get_dataset(name: str, root: str | os.PathLike, bands: Sequence[str] | None = RGB_BANDS,
                transforms: str | Callable | None = "default", **kwargs: Any) -> ClassificationDataset:
    """Build a registered dataset.

    Args:
        name: Registry name, one of ``DATASETS`` ("eurosat", "eurosat-ms", "bigearthnet").
        root: Dataset root folder.
        bands: Input bands of the model tower the samples are for (default RGB
            ``B04, B03, B02``); used by ``transforms="default"``.
        transforms: "default" for the dataset's ``default_transforms(bands)``
            (EuroSAT RGB: ``ToFloat(1/255)``; Sentinel-2 GeoTIFFs: ``true_colour()``
            for RGB, else ``SelectBands(bands)`` + ``ScaleReflectance(1e-4)``),
            None for stored values, or a callable (dict -> dict).
        **kwargs: Passed to the dataset (e.g. ``download=True``, ``nomenclature=43``).

    Raises:
        SenclipError: Unknown name, bands or transforms; or the dataset's own errors.
    """
    cls = DATASETS.get(name)
    if cls is None:
        raise SenclipError(f"unknown dataset {name!r}; choose from {', '.join(sorted(DATASETS))}")
    if isinstance(transforms, str):
        if transforms != "default":
            raise SenclipError(f"transforms must be 'default', None or a callable, got {transforms!r}")
        transforms = cls.default_transforms(bands)
    elif transforms is not None and not callable(transforms):
        raise SenclipError("transforms must be 'default', None or a callable, "
                           f"got {type(transforms).__name__}")
    return cls(root, transforms=transforms, **kwargs)


__all__ = ["DATASETS", "RGB_BANDS", "BigEarthNet", "ClassificationDataset", "EuroSAT", "EuroSATMS",
           "get_dataset"]
