"""Point time series paired with their cached ground-view embeddings: training data of the timesen tower.

:class:`SeriesPairedDataset` is the time-series sibling of
:class:`senclip.data.paired.PairedDataset`: the rows of a paired manifest
name a ``series_path`` (a per-point 12-month stack written by
``senclip acquire series``, or any stack, GeoTIFF folder or EOPatch covering
many points), and the ground views come from a
:class:`~senclip.data.ground_cache.GroundCache` keyed by ``point_id``.

Series are composited once, when the dataset is built: rows sharing a
``series_path`` are sampled together with
:func:`senclip.data.series.sampling.sample_points` (pixel from ``row``/``col``
columns when the manifest has them, else from ``lat``/``lon``), and the
``(N, 12, C)`` float32 series are kept in memory (10 bands: 480 bytes a
point). Missing months are NaN, which the timesen tower masks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from senclip.data.ground_cache import GroundCache, ground_norm
from senclip.data.manifest import require_paths
from senclip.errors import SenclipError

log = logging.getLogger(__name__)

_POSITION = ("row", "col", "x", "y", "lon", "lat")


def _sample_group(path: str, rows: pd.DataFrame, bands: Sequence[str], method: str,
                  skip_bad: bool) -> dict:
    from senclip.data.series.sampling import sample_points
    from senclip.data.sources import open_series

    points = rows[["point_id", *[c for c in _POSITION if c in rows.columns]]]
    if {"row", "col"} <= set(points.columns) and points[["row", "col"]].notna().all(axis=None):
        # pixel indices given for every point of this file: use them, not the coordinates
        points = points.drop(columns=[c for c in ("x", "y", "lon", "lat") if c in points.columns])
    else:
        points = points.drop(columns=[c for c in ("row", "col") if c in points.columns])
    try:
        got = sample_points(open_series(path), points, bands=bands, method=method, drop_empty=True)
    except SenclipError as exc:  # name the file unless the message already does
        raise SenclipError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from exc
    empty = sorted(set(points["point_id"]) - set(got["point_id"]))
    if empty and not skip_bad:
        raise SenclipError(f"{path}: {len(empty)} point(s) have no clear observation in any month "
                           f"(e.g. {empty[:3]}); data.skip_bad drops such points")
    return got


class SeriesPairedDataset(Dataset):
    """Point series of a manifest with their ground-view embeddings from a cache.

    Args:
        manifest_df: from :func:`senclip.data.manifest.read_manifest`, with a
            ``series_path`` on every row.
        cache: holds every ``point_id`` of the manifest (it may hold more).
        bands: input bands of the timesen tower, in order (e.g. the ten S2
            bands, or ``["NDVI"]``).
        method: monthly compositing method (see
            :func:`senclip.data.series.composite.monthly_composite`).
        skip_bad: drop points without any clear month (logged) instead of failing.
        progress: show a progress bar over the series files.

    Samples: ``image`` float32 ``(12, C)`` (NaN = missing month), ``ground``
    float32 ``(V, D)``, ``ground_mask`` bool ``(V,)``, ``point_id`` str,
    ``label`` int64 (``-1`` without a ``label`` column), ``path`` (the
    series) and ``bands``; ``ground_norm`` float32 ``(V,)`` when the cache keeps
    the views' norms.
    """

    def __init__(self, manifest_df: pd.DataFrame, cache: GroundCache, bands: Sequence[str],
                 method: str = "median", skip_bad: bool = False, progress: bool = True) -> None:
        from tqdm import tqdm

        require_paths(manifest_df, "series_path", "have no series_path; the timesen tower trains on "
                      "time series (write them with `senclip acquire series`)")
        self.bands = tuple(bands)
        df = manifest_df.reset_index(drop=True)
        groups = df.groupby("series_path", sort=False).groups
        parts = []
        bar = tqdm(groups.items(), desc="series", unit="file", disable=not progress or len(groups) < 2)
        for path, index in bar:
            got = _sample_group(path, df.loc[index], self.bands, method, skip_bad)
            keep = pd.Index(df.loc[index, "point_id"]).get_indexer(got["point_id"])
            parts.append((np.asarray(index)[keep], got["series"]))
        order = np.concatenate([i for i, _ in parts])
        dropped = len(df) - len(order)
        if dropped:
            log.warning("dropping %d of %d points without any clear month", dropped, len(df))
        if not len(order):
            raise SenclipError("no manifest point has a clear observation in any month")
        series = np.concatenate([s for _, s in parts])
        sort = np.argsort(order, kind="stable")  # manifest order, so splits and seeds do not depend on files
        self.series = np.ascontiguousarray(series[sort], dtype=np.float32)
        rows = df.iloc[order[sort]]
        self.point_ids = [str(p) for p in rows["point_id"]]
        self.paths = [str(p) for p in rows["series_path"]]
        self.rows = cache.rows(self.point_ids)
        self.cache = cache
        labels = pd.to_numeric(rows["label"], errors="coerce").fillna(-1) if "label" in rows.columns \
            else pd.Series(-1, index=rows.index)
        self.labels = labels.to_numpy(dtype=np.int64)

    def __len__(self) -> int:
        return len(self.point_ids)

    def __getitem__(self, i: int) -> dict:
        row = self.rows[i]
        return {
            "image": torch.from_numpy(self.series[i]),
            "bands": self.bands,
            "ground": torch.from_numpy(np.array(self.cache.embeddings[row], dtype=np.float32)),
            "ground_mask": torch.from_numpy(np.array(self.cache.mask[row], dtype=bool)),
            **ground_norm(self.cache, row),
            "point_id": self.point_ids[i],
            "label": torch.tensor(self.labels[i], dtype=torch.int64),
            "path": self.paths[i],
        }
