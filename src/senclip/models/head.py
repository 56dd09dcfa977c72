"""Heads placed on top of the satellite tower's trunk.

Two kinds (``model.head_kind``), both ending in a LayerNorm:

``residual`` (default for new trainings; the SenCLIP reference head)
    ``LayerNorm(x + P x + Dropout(F GELU(P x)))`` with ``P`` and ``F`` square
    (``D -> D``) linear maps whose weights and biases start at zero. At step 0
    ``P x = 0`` and ``F GELU(0) = 0`` exactly, so the tower outputs
    ``LayerNorm(trunk embedding)``: training starts from the base CLIP's
    embedding space instead of a random projection of it. It needs the trunk
    width to equal the target width: across widths there is no identity map for
    a zero-initialised residual to start from.
``projecting``
    ``LayerNorm(z + Dropout(W2 GELU(z)))`` with ``z = W1 x``, randomly
    initialised, mapping any trunk width to the target width. This was senclip's
    only head before the residual one; checkpoints and exported files that do
    not name a head kind hold this one and keep loading as before.

``model.head_at_inference: drop`` trains with the head and exports the trunk
alone (what the reference did: its published weights are plain CLIPs);
``keep`` exports and applies the trained head at inference.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from senclip.errors import SenclipError

HEAD_KINDS = ("residual", "projecting")
LEGACY_HEAD_KIND = "projecting"
"""The kind of a head whose stored config does not name one (written before the residual head)."""


@dataclass(frozen=True)
class HeadConfig:
    """Shape of a head; stored in checkpoints as JSON.

    ``kind`` defaults to ``projecting`` because headers written before the
    residual head existed have no ``kind`` and hold a projecting head.
    """

    dim_in: int
    dim_out: int
    dropout: float = 0.1
    kind: str = LEGACY_HEAD_KIND

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise SenclipError(f"unknown head kind {self.kind!r}; choose one of {', '.join(HEAD_KINDS)}")

    def to_dict(self) -> dict:
        return asdict(self)


class Head(nn.Module):
    """Base class of the heads: ``config`` is their :class:`HeadConfig`."""

    config: HeadConfig


class ResidualHead(Head):
    """``LayerNorm(x + P x + Dropout(F GELU(P x)))``, ``P``, ``F`` square and zero-initialised.

    The identity plus a learned correction: at initialisation the output is
    exactly ``LayerNorm(x)``. Parameter names follow the reference
    (``projection``, ``fc``, ``layer_norm``).
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        if config.dim_in != config.dim_out:
            raise SenclipError(
                f"the residual head maps D-d features to D-d, but the trunk outputs {config.dim_in}-d and "
                f"the targets are {config.dim_out}-d (a zero-initialised residual cannot start as the "
                "identity across widths); set model.head_kind: projecting")
        self.config = config
        dim = config.dim_in
        self.projection = nn.Linear(dim, dim)
        self.fc = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(config.dropout)
        self.layer_norm = nn.LayerNorm(dim)
        for layer in (self.projection, self.fc):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.projection(x)
        return self.layer_norm(x + p + self.dropout(self.fc(F.gelu(p))))


class ProjectingHead(Head):
    """``LayerNorm(z + Dropout(W2 GELU(z)))`` with ``z = W1 x`` (random init, any widths)."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.dim_in, config.dim_out)
        self.mlp = nn.Linear(config.dim_out, config.dim_out)
        self.dropout = nn.Dropout(config.dropout)
        self.norm = nn.LayerNorm(config.dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.proj(x)
        return self.norm(z + self.dropout(self.mlp(F.gelu(z))))


ProjectionHead = ProjectingHead
"""The projecting head's earlier name (kept for imports)."""


def build_head(config: HeadConfig | dict) -> Head:
    """The head a :class:`HeadConfig` (or its stored dict; no ``kind``: projecting) describes."""
    if isinstance(config, dict):
        config = HeadConfig(**config)
    return ResidualHead(config) if config.kind == "residual" else ProjectingHead(config)


def trunk_output_dim(tower: nn.Module) -> int:
    """Output dimension of the tower's trunk (``visual.output_dim`` or a probe forward)."""
    visual = getattr(tower, "visual", None)
    dim = getattr(visual, "output_dim", None)
    if isinstance(dim, int):
        return dim
    if hasattr(tower, "embed_dim"):
        return int(tower.embed_dim)
    size = tower.preprocess.image_size
    with torch.no_grad():
        out = visual(torch.zeros(1, len(tower.bands), size, size))
    return int(out.shape[-1])


def attach_head(tower: nn.Module, model_cfg, target_dim: int) -> None:
    """Give a tower being trained its head (``model.head_kind``), or none if the sizes already match."""
    dim_in = trunk_output_dim(tower)
    if model_cfg.head:
        kind = getattr(model_cfg, "head_kind", LEGACY_HEAD_KIND)
        tower.head = build_head(HeadConfig(dim_in, target_dim, model_cfg.head_dropout, kind))
    elif dim_in != target_dim:
        raise SenclipError(f"the trunk outputs {dim_in}-d features but the targets are {target_dim}-d; "
                           "set model.head: true with model.head_kind: projecting")
    else:
        tower.head = nn.Identity()


def drop_head(tower: nn.Module) -> nn.Module:
    """Remove the tower's head (in place): it then outputs its trunk's embedding. Returns the tower."""
    tower.head = nn.Identity()
    return tower


@contextmanager
def head_dropped(tower: nn.Module, drop: bool = True):
    """Within the block the tower has no head (when ``drop``); the head is put back afterwards."""
    if not drop:
        yield tower
        return
    head = tower.head
    tower.head = nn.Identity()
    try:
        yield tower
    finally:
        tower.head = head
