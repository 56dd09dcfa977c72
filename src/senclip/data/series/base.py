"""The base of the labelled series datasets: samples, band selection and class counts, written once.

:class:`SeriesDataset` serves :class:`~senclip.data.series.dataset.TimeSeriesDataset` (pixels of
a gridded series) and :class:`~senclip.data.sen4map.Sen4Map` (LUCAS points of an HDF5 file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from senclip.data.transforms import SelectBands


class SeriesDataset(Dataset):
    """Labelled ``(12, C)`` series: the shared part of ``TimeSeriesDataset`` and ``Sen4Map``.

    A subclass fills ``series`` (``(N, 12, C)`` float32), ``labels`` (``(N,)`` int64),
    ``paths`` (one name per sample), ``all_bands`` (the ``C`` band names), ``classes``
    and ``transforms``, plus ``source`` (the :class:`~senclip.data.series.io.SeriesSource`
    read), ``rows`` and ``cols`` (each sample's pixel in it), from which proxy pairs
    locate their training points. Samples are dicts: ``image`` ``(12, C)``, ``label``,
    ``path`` and ``bands``.
    """

    series: np.ndarray
    labels: np.ndarray
    paths: list[str]
    all_bands: tuple[str, ...]
    transforms: Callable | None

    @classmethod
    def default_transforms(cls, bands: Sequence[str] | None = None) -> Callable | None:
        """Band selection for a tower with ``bands`` (scaling lives in the tower's buffers)."""
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
                  "label": torch.tensor(int(self.labels[index])),
                  "path": self.paths[index], "bands": self.all_bands}
        return self.transforms(sample) if self.transforms is not None else sample

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True) if n}
