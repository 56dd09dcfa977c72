"""Proxy pairs: a pipeline check on real pixels when no ground photos exist.

This is **not** the SenCLIP science. It lets the whole paired pipeline
(manifest → ground cache → training → export → zero-shot) run offline on
labelled data that has no ground photos: EuroSAT images, the labelled
pixels of a Sentinel-2 time series (dataset ``timeseries``, e.g. the eo-learn
patch with its LULC layer), or the LUCAS points of a Sen4Map file (dataset
``sen4map``, chosen for a ``.h5``/``.hdf5`` series root). For each sample the ``V = 5`` "views" are the
frozen text embeddings of ground-style prompts of its class
(``senclip.prompts.load_prompts("ground", classes, dataset)``): the prompts are
permuted per sample with a seeded generator and the first five taken (cycled
when a class has fewer), so different samples of one class get different view
sets. A model trained on these pairs learns to put a sample near its class's
ground-prompt embeddings, which is why zero-shot with ground prompts works
afterwards; it says nothing about real photos.

Outputs, under ``out``: ``manifest.csv`` and ``ground_cache/`` in the exact
format of ``senclip embed-ground``. Manifest rows have ``proxy`` true,
``label`` = class index, ``label_name``, ``view_prompts`` and

* EuroSAT: ``point_id`` = image path relative to the folder, ``sat_path``,
  ``lat``/``lon`` NaN (EuroSAT has no coordinates);
* time series: ``point_id`` = ``"row,col"``, ``series_path`` = the series,
  ``row``/``col`` and the pixel centre's ``lat``/``lon`` (NaN without a CRS);
* Sen4Map: ``point_id`` = the group name (``Lucas_Point_<id>``), ``series_path`` =
  the file, ``row`` 0 and ``col`` = the group's column in
  :class:`~senclip.data.sen4map.Sen4MapSource`, ``lat``/``lon`` NaN.
"""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from senclip.data.ground_cache import CacheWriter, GroundCache, sha256_lines
from senclip.data.manifest import PHOTO_COLUMNS, VIEWS, write_manifest
from senclip.errors import SenclipError

N_VIEWS = len(VIEWS)
_CHUNK = 4096


def assign_prompts(labels: np.ndarray, n_prompts: list[int], views: int = N_VIEWS,
                   seed: int = 0) -> np.ndarray:
    """``(N, views)`` prompt indices: per image a seeded permutation of its class's prompts, cycled."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(labels), views), dtype=np.int64)
    for i, c in enumerate(labels):
        perm = rng.permutation(n_prompts[int(c)])
        out[i] = perm[np.arange(views) % len(perm)]
    return out


def _locations(ds) -> dict:
    """Manifest columns that locate each sample: its chip, or its pixel in its series source."""
    from senclip.data.series.base import SeriesDataset

    if not isinstance(ds, SeriesDataset):
        root = os.path.abspath(ds.root)
        return {"point_id": [Path(os.path.relpath(os.path.abspath(p), root)).as_posix() for p in ds.paths],
                "lat": np.nan, "lon": np.nan, "sat_path": [os.path.abspath(p) for p in ds.paths]}
    lat = lon = np.full(len(ds), np.nan)
    src = ds.source
    if src.transform is not None and src.crs is not None:
        from rasterio.transform import xy
        from rasterio.warp import transform as warp

        xs, ys = xy(src.transform, ds.rows, ds.cols)
        lon, lat = (np.round(np.asarray(v, dtype=float), 7) for v in warp(src.crs, "EPSG:4326", xs, ys))
    return {"point_id": list(ds.paths), "lat": lat, "lon": lon,
            "series_path": os.path.abspath(ds.root), "row": ds.rows, "col": ds.cols}


def build_proxy_pairs(root, model, prompts_spec: str = "ground", out="proxy-pairs",
                      seed: int = 0, progress: bool = True, dataset: str = "eurosat",
                      **dataset_kwargs) -> tuple[Path, Path]:
    """Write a proxy manifest and ground cache for the labelled samples under ``root``.

    Args:
        root: EuroSAT RGB folder (``<Class>/*.jpg``), or a time series root
            (``dataset="timeseries"``; suffixes such as ``PATCH:train`` choose a half;
            a Sen4Map ``.h5`` file, optionally ``FILE.h5:skip-bad``, is read as ``sen4map``).
        model: :class:`~senclip.models.SenCLIP` whose frozen text tower embeds the prompts.
        prompts_spec: prompt style or file, as for :func:`senclip.prompts.load_prompts`.
        out: output directory.
        seed: seed of the per-sample prompt choice.
        progress: show a tqdm bar.
        dataset: ``"eurosat"``, ``"timeseries"`` or ``"sen4map"``.
        **dataset_kwargs: passed to the dataset (e.g. ``labels=``: a label raster for a time
            series, a label set ``lc1``/``lu1``/``crop`` for Sen4Map).

    Returns:
        ``(manifest_path, cache_dir)``.
    """
    from tqdm import tqdm

    from senclip.data import get_dataset
    from senclip.data.sen4map import is_sen4map
    from senclip.prompts import load_prompts, prompts_fingerprint

    if dataset == "timeseries" and is_sen4map(root):
        dataset = "sen4map"
    if dataset not in ("eurosat", "timeseries", "sen4map"):
        raise SenclipError(f"proxy pairs are built from eurosat, timeseries or sen4map data, not {dataset!r}")
    ds = get_dataset(dataset, root, transforms=None, **dataset_kwargs)
    prompts = load_prompts(prompts_spec, ds.classes, dataset)
    lists = [list(prompts[c]) for c in ds.classes]
    flat = model.encode_text([t for p in lists for t in p]).float().cpu().numpy()  # one batch
    bounds = np.cumsum([0] + [len(p) for p in lists])
    text = [flat[a:b] for a, b in pairwise(bounds)]
    labels = np.asarray(ds.labels, dtype=np.int64)
    choice = assign_prompts(labels, [len(p) for p in lists], seed=seed)
    where = _locations(ds)
    ids = where["point_id"]
    used = [[lists[c][j] for j in row] for c, row in zip(labels, choice, strict=True)]
    meta = model.describe() | {
        "preprocess": {"kind": "proxy-text-prompts", "prompts": prompts_spec, "seed": seed,
                       "prompts_sha256": prompts_fingerprint(prompts)},
        "views": list(VIEWS), "dim": int(text[0].shape[1]), "sources_sha256": sha256_lines(used),
        "note": "pipeline check: views are text embeddings of ground-style prompts, not photos",
    }
    out = Path(out)
    cache_dir = out / "ground_cache"
    writer = CacheWriter(cache_dir, meta, ids)
    with tqdm(total=len(ids), initial=writer.rows_done, disable=not progress, desc="proxy-pairs",
              unit="sample") as bar:
        while not writer.complete:
            start = writer.rows_done
            stop = min(start + _CHUNK, len(ids))
            emb = np.stack([text[labels[i]][choice[i]] for i in range(start, stop)])
            writer.write(start, emb, np.ones(emb.shape[:2], dtype=bool))
            bar.update(stop - start)
    cache: GroundCache = writer.finish()
    df = pd.DataFrame({
        **where, "date": "", **{c: "" for c in PHOTO_COLUMNS},
        "proxy": True, "label": labels, "label_name": [ds.classes[c] for c in labels],
        "view_prompts": [" | ".join(u) for u in used],
    })
    manifest = write_manifest(df, out / "manifest.csv")
    return manifest, cache.path
