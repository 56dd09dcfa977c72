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
