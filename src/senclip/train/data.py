"""Paired data for training: the Lightning DataModule and a resumable batch order.

The order of training batches is a pure function of ``(seed, epoch)``:
:class:`StepBatchSampler` draws one permutation per epoch and slices it into
global batches of ``batch_size * world_size`` points, of which each rank
takes its own ``batch_size``. It starts at any batch index, so a run resumed
from a mid-epoch checkpoint sees exactly the batches the uninterrupted run
would have seen, without Lightning's distributed sampler (which is off).
Loaders get their own ``torch.Generator`` so creating them never consumes the
global random stream (dropout).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from senclip.errors import SenclipError
from senclip.models.kinds import get_kind

log = logging.getLogger(__name__)


class StepBatchSampler(Sampler[list[int]]):
    """Seeded, rank-sharded batches that can start at any global batch index.

    Args:
        n: dataset size.
        batch_size: points per batch and rank.
        seed: seed of the per-epoch permutations.
        rank: this process's rank; ``world_size``: number of ranks.
        start_batch: global batch index (counted over epochs) of the first
            batch; later epochs start from their beginning.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, start_batch: int = 0) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = n // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise SenclipError(f"{n} training points are fewer than one global batch of "
                               f"{batch_size} x {world_size} ranks; lower data.batch_size")
        self._next = start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def permutation(self, epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=gen)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, offset = divmod(self._next, self.batches_per_epoch)
        self._next = (epoch + 1) * self.batches_per_epoch
        perm = self.permutation(epoch)
        global_b = self.batch_size * self.world_size
        for b in range(offset, self.batches_per_epoch):
            start = b * global_b + self.rank * self.batch_size
            yield perm[start:start + self.batch_size].tolist()


def collate(samples: list[dict]) -> dict:
    """Stack tensors of equal shape; keep everything else as lists."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out


def view_columns(views) -> list[int] | None:
    """Columns of the ground cache's views (:data:`~senclip.data.manifest.VIEWS` order) for
    ``model.ground_views``; ``None`` when that is every view in cache order."""
    from senclip.data.manifest import VIEWS

    views = [str(v).upper() for v in views]
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views or len(set(views)) != len(views):
        raise SenclipError(f"model.ground_views must be distinct views among {', '.join(VIEWS)}, got "
                           f"{', '.join(map(str, views)) or 'none'}")
    columns = sorted(VIEWS.index(v) for v in views)
    return None if columns == list(range(len(VIEWS))) else columns


def _with_views(ds, views=None) -> Dataset:
    """Drop points of a PairedDataset that have none of the ground ``views`` (default: any view; logged)."""
    cache, rows = getattr(ds, "cache", None), getattr(ds, "rows", None)
    if cache is None or rows is None:
        return ds
    mask = np.asarray(cache.mask[np.asarray(rows)])
    columns = view_columns(views) if views is not None else None
    if columns is not None:
        mask = mask[:, columns]
    keep = np.flatnonzero(mask.any(axis=1))
    if len(keep) == len(ds):
        return ds
    which = "any ground view" if columns is None else f"any of the ground views {','.join(views)}"
    log.warning("dropping %d of %d points without %s", len(ds) - len(keep), len(ds), which)
    return Subset(ds, keep.tolist())


def build_paired(manifest: str, cache: str, bands, skip_bad: bool, tower: str = "clip-visual",
                 progress: bool = True, views=None) -> Dataset:
    """Paired training data for ``manifest`` and ``cache``.

    A :class:`~senclip.data.paired.PairedDataset` (chips from ``sat_path``)
    for towers of image input, a :class:`~senclip.data.series.paired.SeriesPairedDataset`
    (series from ``series_path``) for towers of series input (the registry says which).
    Points with none of the ground ``views`` (``model.ground_views``; default: any) are dropped.
    """
    from senclip.data.ground_cache import GroundCache
    from senclip.data.manifest import read_manifest

    df = read_manifest(manifest, skip_bad=skip_bad)
    cache = GroundCache.open(cache)
    if get_kind(tower).input == "series":
        from senclip.data.series.paired import SeriesPairedDataset

        return _with_views(SeriesPairedDataset(df, cache, bands=tuple(bands), skip_bad=skip_bad,
                                               progress=progress), views)
    from senclip.data.paired import PairedDataset

    return _with_views(PairedDataset(df, cache, bands=tuple(bands)), views)


class PairedDataModule(L.LightningDataModule):
    """Training and validation loaders of paired points.

    Args:
        cfg: :class:`senclip.train.config.TrainConfig`.
        train_dataset, val_dataset: ready datasets (tests, custom data); when
            ``None`` they are read from ``cfg.data`` (manifest + cache).
        progress: show a progress bar while time series are composited.
    """

    def __init__(self, cfg, train_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
                 progress: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.progress = progress

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        d = self.cfg.data
        if not d.manifest or not d.cache:
            raise SenclipError("training needs data.manifest and data.cache (from `senclip embed-ground` "
                               "or `senclip proxy-pairs`); set them in the config or with "
                               "--data.manifest/--data.cache")
        tower = self.cfg.model.tower
        if get_kind(tower).input == "series" and d.augment:
            raise SenclipError("data.augment flips and rotates chips; a time-series tower has none "
                               "(its augmentation is model.tower_options.month_dropout)")
        views = self.cfg.model.ground_views
        full = build_paired(d.manifest, d.cache, self.cfg.model.bands, d.skip_bad, tower, self.progress,
                            views)
        if d.val_manifest:
            self.train_dataset = full
            self.val_dataset = build_paired(d.val_manifest, d.val_cache or d.cache, self.cfg.model.bands,
                                            d.skip_bad, tower, self.progress, views)
        else:
            self.train_dataset, self.val_dataset = self._split(full, d.val_fraction)
        if self.val_dataset is not None and d.val_max and len(self.val_dataset) > d.val_max:
            self.val_dataset = Subset(self.val_dataset, list(range(d.val_max)))

    def _split(self, ds: Dataset, fraction: float) -> tuple[Dataset, Dataset | None]:
        n_val = round(len(ds) * fraction)
        if n_val == 0:
            return ds, None
        gen = torch.Generator().manual_seed(self.cfg.trainer.seed)
        perm = torch.randperm(len(ds), generator=gen).tolist()
        return Subset(ds, sorted(perm[n_val:])), Subset(ds, sorted(perm[:n_val]))

    def _loader(self, ds: Dataset, **kwargs) -> DataLoader:
        workers = self.cfg.data.workers
        return DataLoader(ds, num_workers=workers, collate_fn=collate, persistent_workers=workers > 0,
                          generator=torch.Generator().manual_seed(self.cfg.trainer.seed), **kwargs)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        start = trainer.global_step * self.cfg.trainer.accumulate if trainer is not None else 0
        sampler = StepBatchSampler(len(self.train_dataset), self.cfg.data.batch_size, self.cfg.trainer.seed,
                                   rank, world, start_batch=start)
        return self._loader(self.train_dataset, batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:
            return []
        # every rank sees the whole (capped) validation set: metrics need no gathering
        return self._loader(self.val_dataset, batch_size=self.cfg.data.batch_size, shuffle=False)
