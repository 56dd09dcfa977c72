"""Projection head placed on top of the satellite image trunk.

SenCLIP's head: a linear map into the target space, a residual GELU MLP
with dropout, and a LayerNorm over the sum. The same module (with its trained
weights) is used in training, inference and export.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from senclip.errors import SenclipError


@dataclass(frozen=True)
class HeadConfig:
    """Shape of a :class:`ProjectionHead`; stored in checkpoints as JSON."""

    dim_in: int
    dim_out: int
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class ProjectionHead(nn.Module):
    """``LayerNorm(z + Dropout(W2 GELU(z)))`` with ``z = W1 x``."""

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
    """Give a tower being trained its head: SenCLIP's projection head, or none if the sizes already match."""
    dim_in = trunk_output_dim(tower)
    if model_cfg.head:
        tower.head = ProjectionHead(HeadConfig(dim_in, target_dim, model_cfg.head_dropout))
    elif dim_in != target_dim:
        raise SenclipError(f"the trunk outputs {dim_in}-d features but the targets are {target_dim}-d; "
                           "set model.head: true")
    else:
        tower.head = nn.Identity()
