"""Contrastive and regression losses for aligning a satellite tower with ground targets.

All losses are plain :class:`torch.nn.Module` objects that work on already
gathered, L2-normalised embeddings, so they can be tested without Lightning
or a process group:

* :class:`InfoNCELoss`: symmetric InfoNCE (CLIP loss) with a learnable
  temperature and in-batch negatives, plus optional extra negatives for the
  satellite -> ground direction (the :class:`TargetQueue`).
* :class:`QueueCELoss`: the SenCLIP reference loss, one-directional
  cross-entropy over ``[positive | queue]`` with label 0 and no in-batch
  negatives (``src/SenCLIP.py`` and ``src/main.py`` of the reference code).
* :class:`CosineLoss`: ``1 - cos(sat, target)`` averaged over the batch.
* :class:`TargetQueue`: a FIFO of past (detached) target embeddings used as
  extra negatives, empty at the start or (the reference) full of random unit
  vectors. It is a module with buffers, so its content travels with
  the model's ``state_dict`` (and so with training checkpoints).

Distributed training: :func:`gather_with_grad` all-gathers a per-rank batch
so that every rank sees the global batch (ordered by rank) while gradients
still flow into the local slice. Every rank then computes the same global
loss and enqueues the same global targets, which keeps the queues identical.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0
"""CLIP's clamp on ``exp(log_scale)`` (a temperature of 0.01 at the lowest)."""


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    """All-gather in rank order; backward: sum the global gradient over ranks, keep this rank's rows.

    senclip's own function rather than ``torch.distributed.nn.functional.all_gather``: that module
    binds ``group=group.WORLD`` as a default argument when it is first imported, so imported while
    a process group exists (as a lazy import here did) it keeps that group alive for the rest of
    the process, and ``destroy_process_group()`` cannot free it. The gloo worker threads, gloo's
    socket loop and rank 0's TCPStore server then run on into interpreter shutdown, where gloo
    work still held by those threads can abort the process (SIGABRT, "terminate called without
    an active exception"). No group object is stored here: each call uses the current default
    group.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every rank's loss sends gradient to every row
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` (``(B, D)`` per rank) into ``(world * B, D)`` in rank order, differentiably.

    Every rank computes the loss of the whole global batch; the gather's
    backward sums, into each rank's own rows, the gradients that all ranks'
    losses send them (``W`` times the single-process gradient). DDP then
    averages parameter gradients over the ``W`` ranks, so training on ``W``
    ranks follows exactly the gradient of one process on the global batch
    (towers and temperature alike, which keeps gradient clipping consistent).
    Without an initialised process group (or with one process) the input is
    returned unchanged. All ranks must pass the same ``B``. The collectives
    are synchronous and run on the default group; nothing keeps a reference
    to the group (see :class:`_GatherWithGrad`).
    """
    if not _distributed():
        return x
    return _GatherWithGrad.apply(x.contiguous())


class TargetQueue(nn.Module):
    """FIFO of the last ``size`` target embeddings (extra negatives).

    ``negatives()`` returns the stored targets (oldest first) *before* the
    current batch is added, so a batch never meets its own targets as
    negatives; call :meth:`enqueue` after computing the loss. Stored in
    float32 buffers: ``items`` ``(size, dim)``, ``ptr`` (next write slot) and
    ``filled`` (how many slots hold data).

    Args:
        size: capacity ``K`` (number of past targets kept).
        dim: embedding dimension.
        init: ``"empty"`` (nothing stored at the start) or ``"random"``: full
            of ``K`` random unit vectors (normalised Gaussian draws), which the
            first targets then replace oldest-first, as the reference's queue.
        generator: the random source of ``"random"`` (default: torch's global one).
    """

    INITS = ("empty", "random")

    def __init__(self, size: int, dim: int, init: str = "empty",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be positive, got size={size}, dim={dim}")
        if init not in self.INITS:
            raise ValueError(f"queue init must be one of {', '.join(self.INITS)}, not {init!r}")
        self.size = int(size)
        self.register_buffer("items", torch.zeros(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        if init == "random":
            self.items.copy_(F.normalize(torch.randn(size, dim, generator=generator), dim=-1))
            self.filled.fill_(self.size)

    @property
    def is_full(self) -> bool:
        return int(self.filled) == self.size

    def negatives(self) -> torch.Tensor:
        """The stored targets, oldest first: ``(filled, dim)`` (empty at the start)."""
        n, ptr = int(self.filled), int(self.ptr)
        if n < self.size:
            return self.items[:n]
        return torch.cat([self.items[ptr:], self.items[:ptr]], dim=0)

    @torch.no_grad()
    def enqueue(self, targets: torch.Tensor) -> None:
        """Append ``targets`` ``(B, dim)`` (detached), dropping the oldest when full."""
        targets = targets.detach().to(self.items.dtype)
        n = min(targets.shape[0], self.size)
        if n == 0:
            return
        idx = (int(self.ptr) + torch.arange(n, device=self.items.device)) % self.size
        self.items[idx] = targets[-n:]
        self.ptr.fill_((int(self.ptr) + n) % self.size)
        self.filled.fill_(min(int(self.filled) + n, self.size))


def _check_pair(sat: torch.Tensor, target: torch.Tensor) -> None:
    if sat.shape != target.shape:
        raise ValueError(f"sat and target shapes differ: {tuple(sat.shape)} vs {tuple(target.shape)}")


class _TemperatureLoss(nn.Module):
    """A contrastive loss with a logit scale ``a = exp(log_scale)``, ``log_scale`` starting at ``log(1/T)``.

    ``log_scale`` is a parameter when ``learnable``, else a buffer (same ``state_dict`` key either
    way). :attr:`scale` is ``a`` as used in the logits; a subclass that clamps it overrides it.

    Args:
        init_temperature: initial temperature ``T`` (positive).
        learnable: train the temperature with the model.
    """

    def __init__(self, init_temperature: float = 0.07, learnable: bool = True) -> None:
        super().__init__()
        if init_temperature <= 0:
            raise ValueError(f"temperature must be positive, got {init_temperature}")
        value = torch.tensor(math.log(1.0 / init_temperature), dtype=torch.float32)
        if learnable:
            self.log_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_scale", value)
        self.learnable = learnable

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    @property
    def temperature(self) -> float:
        return float(1.0 / self.scale.detach())


class InfoNCELoss(_TemperatureLoss):
    """Symmetric InfoNCE with a learnable temperature and in-batch negatives.

    For satellite embeddings ``s`` and targets ``t`` (both ``(N, D)``,
    L2-normalised, row ``i`` of one matching row ``i`` of the other) and a
    logit scale ``a = exp(log_scale)`` (clamped to ``MAX_LOGIT_SCALE``)::

        s->g: CE(a * s @ [t; q].T, i)      q: extra negatives (queue)
        g->s: CE(a * t @ s.T,      i)
        loss = (s->g + g->s) / 2

    Args:
        init_temperature: initial temperature ``T`` (``log_scale = log(1/T)``);
            SenCLIP used 0.07 and 0.007.
        learnable: train the temperature with the model.
    """

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(
        self, sat: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss for matching rows of ``sat`` and ``target``; ``negatives`` ``(K, D)`` optional."""
        _check_pair(sat, target)
        scale = self.scale
        sat, target = sat.float(), target.float()
        gallery = target if negatives is None or len(negatives) == 0 else torch.cat(
            [target, negatives.to(target)], dim=0)
        labels = torch.arange(sat.shape[0], device=sat.device)
        s2g = F.cross_entropy(scale * sat @ gallery.T, labels)
        g2s = F.cross_entropy(scale * target @ sat.T, labels)
        return (s2g + g2s) / 2


class QueueCELoss(_TemperatureLoss):
    """One-directional ``[positive | queue]`` cross-entropy with label 0 (the SenCLIP reference loss).

    For satellite embeddings ``s``, their targets ``t`` (``(N, D)``,
    L2-normalised) and the queue ``q`` (``(K, D)``)::

        logits_i = a * [s_i . t_i, s_i . q_1, ..., s_i . q_K]
        loss = mean_i CE(logits_i, 0)

    The other targets of the batch are *not* negatives, and there is no
    ground->satellite term. ``a = exp(log_scale)``, ``log_scale`` starting at
    ``log(1/T)``; when learnable, its value is clamped to ``[0, ln 100]``
    (temperature between 0.01 and 1) before each use, as the reference clamps
    the parameter itself (not only its use, so its gradient never vanishes).

    Args:
        init_temperature: initial temperature ``T`` (the reference: 0.07).
        learnable: train the temperature with the model.
    """

    def forward(
        self, sat: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss of the positives ``(sat_i, target_i)`` against the ``negatives`` ``(K, D)`` (the queue)."""
        _check_pair(sat, target)
        if self.learnable:
            with torch.no_grad():
                self.log_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))
        sat, target = sat.float(), target.float()
        positive = (sat * target).sum(-1, keepdim=True)
        if negatives is not None and len(negatives):
            logits = torch.cat([positive, sat @ negatives.to(sat).T], dim=1)
        else:
            logits = positive
        labels = torch.zeros(sat.shape[0], dtype=torch.long, device=sat.device)
        return F.cross_entropy(self.scale * logits, labels)


class CosineLoss(nn.Module):
    """``mean(1 - cos(sat_i, target_i))``: pulls each satellite embedding onto its target."""

    def forward(
        self, sat: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        del negatives  # a regression loss has no negatives
        return (1.0 - F.cosine_similarity(sat.float(), target.float(), dim=-1)).mean()
