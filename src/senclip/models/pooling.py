"""Aggregation of the ground-view embeddings of one point into one target.

A point has up to ``V`` ground photos (N, E, S, W, P); their frozen-CLIP
embeddings come from the ground cache as ``(B, V, D)`` with a boolean
``(B, V)`` mask of available views. A pooling module maps them to one
L2-normalised ``(B, D)`` target:

``avg``
    mean of the available (normalised) views; no parameters.
``attn-image``
    one weight per view: ``softmax_v(w2 . tanh(W1 x_v))`` over the available
    views, then the weighted sum.
``attn-dim``
    one weight per view *and* dimension: ``softmax_v(W x_v)`` computed for
    each of the ``D`` dimensions separately, then the weighted sum.

The scoring layers of the attention poolings start at zero, so at
initialisation both equal ``avg``; they are trained with the satellite
tower. Points without any available view give a zero vector: callers drop
them (``mask.any(1)``) before the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("avg", "attn-image", "attn-dim")


def _clean(views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Normalised views with missing ones (possibly NaN in the cache) set to zero."""
    views = F.normalize(torch.nan_to_num(views.float()), dim=-1)
    return torch.where(mask.unsqueeze(-1), views, torch.zeros_like(views))


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 (views) ignoring masked views; all-masked rows give zeros."""
    while mask.ndim < scores.ndim:
        mask = mask.unsqueeze(-1)
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=1)
    return torch.nan_to_num(weights, nan=0.0)


def _check(views: torch.Tensor, mask: torch.Tensor) -> None:
    if views.ndim != 3 or mask.shape != views.shape[:2]:
        raise ValueError(f"expected views (B, V, D) and mask (B, V), got {tuple(views.shape)} "
                         f"and {tuple(mask.shape)}")


class AvgPooling(nn.Module):
    """Mean of the available views, renormalised."""

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check(views, mask)
        views = _clean(views, mask)
        count = mask.sum(1, keepdim=True).clamp(min=1).to(views.dtype)
        return F.normalize(views.sum(1) / count, dim=-1)


class AttnImagePooling(nn.Module):
    """One attention weight per view (masked softmax over the available views).

    Args:
        dim: embedding dimension ``D``.
        hidden: width of the scoring MLP.
    """

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.key = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def weights(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, V)``; zero for missing views, rows sum to 1."""
        scores = self.score(torch.tanh(self.key(views))).squeeze(-1)
        return _masked_softmax(scores, mask)

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check(views, mask)
        views = _clean(views, mask)
        w = self.weights(views, mask)
        return F.normalize((w.unsqueeze(-1) * views).sum(1), dim=-1)


class AttnDimPooling(nn.Module):
    """Per-dimension attention: each of the ``D`` dimensions weighs the views separately.

    Args:
        dim: embedding dimension ``D``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, dim)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def weights(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, V, D)``; zero for missing views, sum 1 over views."""
        return _masked_softmax(self.score(views), mask)

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check(views, mask)
        views = _clean(views, mask)
        return F.normalize((self.weights(views, mask) * views).sum(1), dim=-1)


def build_pooling(name: str, dim: int) -> nn.Module:
    """The pooling module called ``name`` (one of :data:`POOLINGS`) for ``dim``-d embeddings."""
    if name == "avg":
        return AvgPooling()
    if name == "attn-image":
        return AttnImagePooling(dim)
    if name == "attn-dim":
        return AttnDimPooling(dim)
    raise ValueError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")
