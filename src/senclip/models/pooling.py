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

The SenCLIP reference's poolings (``src/attention_pool.py`` and
``src/SenCLIP.py`` of the reference code), under their names there:

``avgpool``
    mean of the *raw* views (not normalised first), then normalised.
``attpool_perimage``
    ``softmax_v(w . x_v)`` with ``w = Linear(D, 1, bias=False)``, default
    (random) init, over the raw views; the weighted views are combined by
    ``pool_out`` (``sum``, ``mean`` or ``max`` over the views), then normalised.
``attpool_perdim``
    ``softmax_v(W x_v)`` per dimension, ``W = Linear(D, D, bias=False)``,
    default init; combined by ``pool_out``, then normalised.

The reference has all four views (W, E, N, S) of every point; here missing
views are masked out (of the softmax, the mean's count and the max), which
gives the reference's result whenever all views are present. With senclip's
ground cache, whose views are stored L2-normalised, ``avgpool`` equals
``avg``; they differ on raw embeddings. ``sum`` and ``mean`` differ only by
the factor 1/V, which the final normalisation removes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REFERENCE_POOLINGS = ("avgpool", "attpool_perimage", "attpool_perdim")
POOLINGS = ("avg", "attn-image", "attn-dim", *REFERENCE_POOLINGS)
POOL_OUTS = ("sum", "mean", "max")


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


def _raw(views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The views as stored (not normalised), missing ones (possibly NaN in the cache) set to zero."""
    views = torch.nan_to_num(views.float())
    return torch.where(mask.unsqueeze(-1), views, torch.zeros_like(views))


def _combine(weighted: torch.Tensor, mask: torch.Tensor, out: str) -> torch.Tensor:
    """``sum``, ``mean`` or ``max`` over the available views of ``(B, V, D)`` weighted views."""
    if out == "sum":
        return weighted.sum(1)
    if out == "mean":
        return weighted.sum(1) / mask.sum(1, keepdim=True).clamp(min=1).to(weighted.dtype)
    best = weighted.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    return torch.where(mask.any(1, keepdim=True), best, torch.zeros_like(best))


def _check_out(out: str) -> str:
    if out not in POOL_OUTS:
        raise ValueError(f"unknown pool_out {out!r}; choose one of {', '.join(POOL_OUTS)}")
    return out


class _ViewPooling(nn.Module):
    """What every pooling does: views (normalised, or ``raw`` as stored) times their weights,
    combined over the available views by ``out``, then L2-normalised.

    A subclass sets ``raw`` and ``out`` and, for attention, :meth:`weights` (``(B, V)`` per view or
    ``(B, V, D)`` per view and dimension; ``None``: no weighting).
    """

    raw: bool = False
    out: str = "sum"

    def weights(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        return None

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check(views, mask)
        views = (_raw if self.raw else _clean)(views, mask)
        w = self.weights(views, mask)
        if w is not None:
            views = views * (w.unsqueeze(-1) if w.ndim == 2 else w)
        return F.normalize(_combine(views, mask, self.out), dim=-1)


class AvgPooling(_ViewPooling):
    """Mean of the available views, renormalised."""

    out = "mean"


class AttnImagePooling(_ViewPooling):
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


class AttnDimPooling(_ViewPooling):
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


class RefAvgPooling(_ViewPooling):
    """The reference's ``avgpool``: mean of the available raw views, then normalised."""

    raw = True
    out = "mean"


class _RefAttnPooling(_ViewPooling):
    """The reference's attention poolings: softmax over the raw views of ``Linear(D, width, bias=False)``
    scores (default init), the weighted views combined by ``out``."""

    raw = True

    def __init__(self, dim: int, width: int, out: str = "sum") -> None:
        super().__init__()
        self.linear = nn.Linear(dim, width, bias=False)
        self.out = _check_out(out)


class RefAttnImagePooling(_RefAttnPooling):
    """The reference's ``attpool_perimage``: one softmax weight per view from ``Linear(D, 1, bias=False)``.

    Args:
        dim: embedding dimension ``D``.
        out: ``sum``, ``mean`` or ``max`` of the weighted views.
    """

    def __init__(self, dim: int, out: str = "sum") -> None:
        super().__init__(dim, 1, out)

    def weights(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, V)`` of raw (cleaned) views; zero for missing views."""
        return _masked_softmax(self.linear(views).squeeze(-1), mask)


class RefAttnDimPooling(_RefAttnPooling):
    """The reference's ``attpool_perdim``: per-dimension softmax weights from ``Linear(D, D, bias=False)``.

    Args:
        dim: embedding dimension ``D``.
        out: ``sum``, ``mean`` or ``max`` of the weighted views.
    """

    def __init__(self, dim: int, out: str = "sum") -> None:
        super().__init__(dim, dim, out)

    def weights(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, V, D)`` of raw (cleaned) views; zero for missing views."""
        return _masked_softmax(self.linear(views), mask)


def build_pooling(name: str, dim: int, out: str = "sum") -> nn.Module:
    """The pooling module called ``name`` (one of :data:`POOLINGS`) for ``dim``-d embeddings.

    ``out`` (:data:`POOL_OUTS`) is how the reference's attention poolings
    combine the weighted views; the other poolings ignore it.
    """
    if name == "avg":
        return AvgPooling()
    if name == "attn-image":
        return AttnImagePooling(dim)
    if name == "attn-dim":
        return AttnDimPooling(dim)
    if name == "avgpool":
        return RefAvgPooling()
    if name == "attpool_perimage":
        return RefAttnImagePooling(dim, out)
    if name == "attpool_perdim":
        return RefAttnDimPooling(dim, out)
    raise ValueError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")
