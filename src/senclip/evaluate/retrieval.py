"""Cross-view retrieval: Recall@k between satellite and ground embeddings.

Row ``i`` of the query matrix matches row ``i`` of the gallery. Similarity is
the cosine (both sides are L2-normalised here). The rank of the true match
is the number of gallery rows *strictly* more similar than it, so a tie is
counted in the query's favour; R@k is the fraction of queries whose rank is
below ``k`` (a number in [0, 1]).

A point's ground embedding for retrieval is the mean of its available view
embeddings (missing views masked out), renormalised: :func:`average_views`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

_CHUNK = 2048


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.detach().float().cpu()


def match_ranks(query, gallery) -> torch.Tensor:
    """Rank (0 = best) of gallery row ``i`` among all gallery rows for query row ``i``."""
    q = F.normalize(_as_tensor(query), dim=-1)
    g = F.normalize(_as_tensor(gallery), dim=-1)
    if q.ndim != 2 or q.shape != g.shape:
        raise ValueError(f"query and gallery must both be (N, D); got {tuple(q.shape)} and {tuple(g.shape)}")
    ranks = []
    for start in range(0, len(q), _CHUNK):
        sim = q[start:start + _CHUNK] @ g.T
        idx = torch.arange(start, start + len(sim))
        true = sim[torch.arange(len(sim)), idx]
        ranks.append((sim > true[:, None]).sum(dim=1))
    return torch.cat(ranks) if ranks else torch.empty(0, dtype=torch.long)


def recall_at_k(query, gallery, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``{"R@1": …, "R@5": …, "R@10": …}`` for query row i ↔ gallery row i."""
    ranks = match_ranks(query, gallery)
    if len(ranks) == 0:
        raise ValueError("recall_at_k needs at least one pair")
    return {f"R@{k}": float((ranks < k).double().mean()) for k in ks}


def retrieval_report(sat_emb, ground_emb, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """Recall@k in both directions plus the number of pairs."""
    return {
        "sat_to_ground": recall_at_k(sat_emb, ground_emb, ks),
        "ground_to_sat": recall_at_k(ground_emb, sat_emb, ks),
        "n": len(_as_tensor(sat_emb)),
    }


def average_views(emb, mask) -> torch.Tensor:
    """Mean of the available views, renormalised: ``(N, V, D)``, ``(N, V)`` → ``(N, D)``.

    Rows with no view give a zero vector; callers drop them.
    """
    e = _as_tensor(emb)
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).bool()
    summed = (e * m[..., None]).sum(dim=1)
    return F.normalize(summed / m.sum(dim=1, keepdim=True).clamp(min=1), dim=-1)


@torch.no_grad()
def evaluate_retrieval(model, manifest_df, cache, ks: Sequence[int] = (1, 5, 10), batch_size: int = 64,
                       device="cpu", workers: int = 0, progress: bool = True, skip_bad: bool = False) -> dict:
    """Embed the manifest's chips (or series, for a series tower) and retrieve against the cached views.

    Points whose cache row has no view are left out (``"skipped"`` counts them);
    so are series points without any clear month when ``skip_bad``.

    Raises:
        SenclipError: the cache's dimension differs from the model's, or a
            point is missing from the cache.
    """
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from senclip.data.paired import PairedDataset
    from senclip.errors import SenclipError
    from senclip.data.series.paired import SeriesPairedDataset
    from senclip.models.kinds import kind_of

    tower = model.image_tower.to(device).eval()
    if kind_of(tower).input == "series":
        ds = SeriesPairedDataset(manifest_df, cache, tower.bands, skip_bad=skip_bad, progress=progress)
    else:
        ds = PairedDataset(manifest_df, cache, bands=tuple(tower.bands))
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=False,
                        collate_fn=partial(_collate, size=getattr(tower, "image_size", None)))
    sat, ground, masks = [], [], []
    for batch in tqdm(loader, disable=not progress, desc="retrieval", unit="batch"):
        sat.append(tower(batch["image"].to(device), normalize=True).float().cpu())
        ground.append(batch["ground"])
        masks.append(batch["ground_mask"])
    sat_emb, mask = torch.cat(sat), torch.cat(masks)
    if sat_emb.shape[-1] != cache.dim:
        raise SenclipError(f"model embeds to {sat_emb.shape[-1]} dims but ground cache {cache.path} holds "
                           f"{cache.dim}-dim embeddings of {cache.meta.get('model')}; use the matching cache")
    ground_emb = average_views(torch.cat(ground), mask)
    keep = mask.any(dim=1)
    report = retrieval_report(sat_emb[keep], ground_emb[keep], ks)
    report["skipped"] = int((~keep).sum())
    report["pooling"] = "mean of available views, renormalised"
    return report


def _collate(samples: list[dict], size: int) -> dict:
    images = [s["image"] for s in samples]
    if len({tuple(x.shape) for x in images}) > 1:  # chips of mixed sizes: bring all to the tower's size
        images = [F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True,
                                align_corners=False)[0] for x in images]
    return {
        "image": torch.stack(images),
        "ground": torch.stack([s["ground"] for s in samples]),
        "ground_mask": torch.stack([s["ground_mask"] for s in samples]),
    }
