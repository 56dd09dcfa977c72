"""TimeSenCLIP's time-series tower: 12 monthly band vectors -> one CLIP embedding.

Input: a float tensor ``(B, 12, C)`` indexed by *calendar month* (index 0 is
January, 11 December) holding the monthly composite of each band, with NaN
for months that have no clear observation (see
:mod:`senclip.data.series.composite`). The tower

1. scales and normalises each band with its own buffers
   (``(x * scale - mean) / std``; like :class:`senclip.models.Preprocess` for
   images, the constants belong to the weights and travel in checkpoints);
2. embeds each month's band vector with one linear layer (``C -> d``);
3. adds a learned month-of-year embedding looked up by the calendar month of
   the slot, so a missing month never shifts the position of the others (the
   published TimeSenCLIP code packed the valid months together and then
   numbered them, which misaligns every month after a gap);
4. prepends a CLS token and runs a transformer encoder whose key-padding mask
   hides missing months (the CLS token is never hidden, so a sample with no
   valid month still has a defined, if meaningless, output);
5. projects the final CLS state to the CLIP embedding dimension of the ground
   photo tower; an optional head (:mod:`senclip.models.head`)
   (``.head``, set by the checkpoint loader) sits on top.

During training, month dropout hides each valid month with probability
``month_dropout`` (at least one valid month is always kept). It is part of the
tower (active only in ``train()`` mode) so any trainer gets it.

This is senclip's variant, written from the paper's description. At d 256, 8 heads,
6 layers, feed-forward 2048, dropout 0.2, output 512 (:func:`paper_config`) it has
8.03M parameters, about the published encoder's count, but it is not the published
architecture (width 512, feed-forward 256, post-norm ReLU, no projection): that one is
:mod:`senclip.models.timesen_reference` (tower ``timesen-reference``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from senclip.data.series.io import S2_BANDS
from senclip.errors import SenclipError
from senclip.models.model import SenCLIP, text_embed_dim
from senclip.models.timesen_reference import _time_steps_from_state, _time_steps_to_state, reduce_time_steps

N_MONTHS = 12


@dataclass(frozen=True)
class TimeSenConfig:
    """Shape and input conventions of a :class:`TimeSenTower` (stored in checkpoints).

    Attributes:
        bands: names of the C input bands, in order.
        embed_dim: output dimension (the CLIP space of the ground-photo tower).
        width: transformer width d.
        layers: number of encoder layers.
        heads: attention heads.
        mlp_dim: feed-forward width of each layer.
        dropout: dropout inside the encoder.
        month_dropout: probability of hiding a valid month while training.
        scale: per-band factor turning stored values into physical units
            (e.g. ``1e-4`` for Sentinel-2 digital numbers); one value or one per band.
        mean: per-band mean after scaling.
        std: per-band standard deviation after scaling.
    """

    bands: tuple[str, ...] = S2_BANDS
    embed_dim: int = 512
    width: int = 256
    layers: int = 6
    heads: int = 8
    mlp_dim: int = 2048
    dropout: float = 0.2
    month_dropout: float = 0.0
    scale: tuple[float, ...] = (1.0,)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        n = len(self.bands)
        if n == 0:
            raise SenclipError("a time-series tower needs at least one band")
        for name in ("scale", "mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) == 1:
                value = value * n
            if len(value) != n:
                raise SenclipError(f"timesen {name} has {len(value)} values for {n} bands {list(self.bands)}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "bands", tuple(self.bands))
        if any(s <= 0 for s in self.std):
            raise SenclipError("timesen std values must be positive")
        if self.width % self.heads:
            raise SenclipError(f"timesen width {self.width} is not divisible by heads {self.heads}")
        if not 0.0 <= self.month_dropout < 1.0:
            raise SenclipError(f"month_dropout must be in [0, 1), not {self.month_dropout}")

    @classmethod
    def from_dict(cls, cfg: dict) -> TimeSenConfig:
        """Build from a dict (e.g. a YAML section), refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise SenclipError(f"unknown timesen option(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class TimeSenTower(nn.Module):
    """Transformer over 12 calendar-month slots; see the module docstring.

    Args:
        config: a :class:`TimeSenConfig`.
        head: optional projection head applied after the tower's own projection.
    """

    tower_kind = "timesen"

    def __init__(self, config: TimeSenConfig | None = None, head: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config = config or TimeSenConfig()
        c = len(config.bands)
        self.bands = config.bands
        self.register_buffer("scale", torch.tensor(config.scale, dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(config.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(config.std, dtype=torch.float32))
        self.band_embed = nn.Linear(c, config.width)
        self.month_embed = nn.Embedding(N_MONTHS, config.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, config.mlp_dim, config.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        self.proj = nn.Linear(config.width, config.embed_dim)
        self.head = head if head is not None else nn.Identity()
        nn.init.normal_(self.month_embed.weight, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        self.time_steps = N_MONTHS
        self._register_state_dict_hook(_time_steps_to_state)
        self._register_load_state_dict_pre_hook(_time_steps_from_state, with_module=True)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def valid_months(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 12)`` bool: months whose band vector is fully finite."""
        return torch.isfinite(x).all(dim=-1)

    def embed(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token sequence and key-padding mask before the encoder.

        Args:
            x: ``(B, T, C)`` band vectors, NaN where missing: 12 calendar months, or
                4 quarters / 1 year (their positions are the mean of their months' embeddings).
            valid: optional ``(B, T)`` bool overriding the NaN-derived mask.

        Returns:
            tokens ``(B, 1 + T, d)`` (CLS first, then the steps in calendar order) and the
            key-padding mask ``(B, 1 + T)`` (True = ignored).
        """
        self._check_input(x)
        x = x.float()
        mask = self.valid_months(x) if valid is None else valid.to(torch.bool)
        if self.training and self.config.month_dropout > 0:
            mask = _month_dropout(mask, self.config.month_dropout)
        z = (x * self.scale - self.mean) / self.std
        z = torch.where(mask.unsqueeze(-1), z, torch.zeros((), dtype=z.dtype, device=z.device))
        z = torch.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        t = x.shape[1]
        positions = self.month_embed.weight.view(t, N_MONTHS // t, -1).mean(dim=1)
        tokens = self.band_embed(z) + positions
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        pad = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
        return tokens, pad

    def forward(self, x: torch.Tensor, normalize: bool = True,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        """Embed ``(B, 12, C)`` monthly series into ``(B, embed_dim)`` (reduced to
        :attr:`time_steps` seasonal or annual medians first when that is not 12)."""
        if self.time_steps != N_MONTHS and x.ndim == 3 and x.shape[1] == N_MONTHS:
            x, valid = reduce_time_steps(x, self.time_steps), None
        tokens, pad = self.embed(x, valid)
        h = self.encoder(tokens, src_key_padding_mask=pad)
        out = self.head(self.proj(self.norm(h[:, 0])))
        return F.normalize(out, dim=-1) if normalize else out

    def _check_input(self, x: torch.Tensor) -> None:
        c = len(self.bands)
        if x.ndim != 3 or x.shape[1] not in (N_MONTHS, 4, 1) or x.shape[2] != c:
            raise SenclipError(
                f"time-series tower expects a (B, 12, {c}) batch (or 4 / 1 steps) for bands "
                f"{list(self.bands)}, "
                f"got {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        return f"bands={list(self.bands)}, embed_dim={self.config.embed_dim}"


def _month_dropout(mask: torch.Tensor, p: float) -> torch.Tensor:
    """Hide each valid month with probability ``p``, keeping at least one per sample."""
    drop = torch.rand(mask.shape, device=mask.device) < p
    kept = mask & ~drop
    empty = ~kept.any(dim=1) & mask.any(dim=1)
    if empty.any():
        # restore one random valid month where dropout removed them all
        score = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, -1.0)
        pick = F.one_hot(score.argmax(dim=1), N_MONTHS).bool()
        kept = torch.where(empty.unsqueeze(1), pick, kept)
    return kept


def build_timesen_model(
    base, config: TimeSenConfig | dict | None = None, head: nn.Module | None = None
):
    """A :class:`~senclip.models.model.SenCLIP` whose image tower is a :class:`TimeSenTower`.

    Args:
        base: a SenCLIP model providing the (frozen) text tower and logit scale.
        config: tower config; ``embed_dim`` defaults to the text tower's output size.
        head: optional projection head.
    """
    if config is None or isinstance(config, dict):
        cfg = dict(config or {})
        cfg.setdefault("embed_dim", text_embed_dim(base))
        config = TimeSenConfig.from_dict(cfg)
    if config.embed_dim != text_embed_dim(base):
        raise SenclipError(
            f"timesen embed_dim {config.embed_dim} does not match the text tower's {text_embed_dim(base)}"
        )
    tower = TimeSenTower(config, head=head)
    model = SenCLIP(base.name, tower, base.text_tower, base.logit_scale, base.pretrained)
    return model.to(base.device)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def paper_config(bands: Sequence[str] = S2_BANDS, embed_dim: int = 512) -> TimeSenConfig:
    """senclip's variant at about the published encoder's parameter count (8.03M for 10 bands).

    Not the published shape; see :mod:`senclip.models.timesen_reference` for that.
    """
    return TimeSenConfig(bands=tuple(bands), embed_dim=embed_dim, width=256, layers=6, heads=8,
                         mlp_dim=2048, dropout=0.2)


__all__ = [
    "N_MONTHS", "S2_BANDS", "TimeSenConfig", "TimeSenTower", "build_timesen_model",
    "count_parameters", "paper_config", "text_embed_dim",
]
