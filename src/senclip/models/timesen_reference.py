"""The TimeSenCLIP encoder as published (``pallavijain-pj/TimeSenCLIP``, ``src/models/encoder.py``).

senclip's own time-series tower (:mod:`senclip.models.timesen`) was written from the
paper's description; the published code differs in shape and conventions, so its
checkpoints need this module. Parameter names follow the newest published state dict
(commit a48994f), so its checkpoints load without renaming:

- ``spectral_embedding.1``: ``Linear(C*H*W -> width)`` on each month's flattened band
  vector (index 0 is the parameter-free flattening);
- ``time_pos_encoding`` ``(1, 12, width)`` and ``time_token`` ``(1, 1, width)``, zero-initialised
  (commits before 8dfc8e6 call the token ``class_token``; both load,
  :mod:`senclip.models.timesen_checkpoints`);
- ``transformer``: PyTorch ``nn.TransformerEncoder`` with the layer's defaults (post-norm,
  ReLU), width 512, 8 heads, feed-forward 256, 6 layers;
- ``mlp_head``: ``LayerNorm`` + ``Linear(width -> width)``; no projection head (about 8.17M
  parameters for 10 bands at 1x1 pixel).

Input conventions (options of :class:`TimeSenRefConfig`; docs/timeseries.md cites each source):

- ``norm``: how L2A digital numbers are normalised with the published Sen4Map constants
  (:data:`NORMALISATIONS`): ``reference-clamped`` (default: per band ``(x - mean) / std``,
  clamped to ``[0, 1]``), ``reference-eval`` (the newest evaluation loader: no clamp),
  ``reference-train`` (the training loader of the published weights' time: clamped, ``+1e-6``
  on the std, and B2 and B4 normalised with each other's constants) or ``none``;
- ``fill: median``: a month without a clear observation (NaN) takes the per-band median
  of the year's valid months, as the published data fills clouded acquisitions
  (``mask``: hidden from attention instead);
- fewer time steps: ``T=12`` months, ``T=4`` seasonal medians (each quarter's position is
  the element-wise median of its three month positions) or ``T=1`` (the year's median;
  ``single_position: first`` uses January's position, which is what the newest published
  ``inference()`` computes with its nearest-neighbour interpolation; ``mean`` uses the
  mean month position, as ``inference()`` at commit bde6e02 did).

Augmentations (``augment``, training only, one draw per batch from a generator seeded by
the training step, :func:`draw_augment`), applied where the published ``forward`` applies them:
spectral dropout on the input bands, the temporal ones on the month tokens after
``spectral_embedding`` (``_tsmixaug`` takes ``torch.median`` of the embedded tokens, and a median
of ``W x`` is not ``W`` times a median of ``x``). ``tsmixaug``: with probability ``augment_p``
either collapse the year to its median token, or drop three consecutive months. ``random-ts``:
keep a random subset of 1 to ``random_ts_max`` months; a single kept step, like the collapsed
year, sits at the mean month position, as in every published training forward.
``spectral-dropout``: zero a random subset of bands, always keeping the first three (the
published code slices the bands away, which the band embedding cannot take). Kept months keep
their calendar positions (``positions: calendar``, the newest training forward); commits before
8dfc8e6 renumber them from 0 (``positions: renumbered``), which misaligns every month after a gap.
Missing months are filled (or masked) before the draw, over the whole year, as the published data
come filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from senclip.data.series.io import S2_BANDS
from senclip.errors import SenclipError
from senclip.models.series_rules import NORMALISATIONS

N_MONTHS = 12

# Published per-band constants (src/Data/dataset_utils.py, bands B2..B12 in S2_BANDS order).
REFERENCE_MEAN = (67.0, 122.0, 93.27, 158.5, 160.77, 174.27, 162.27, 149.0, 84.5, 66.27)
REFERENCE_STD = (2089.0, 2598.45, 3214.5, 3620.45, 4033.61, 4613.0, 4825.45, 4945.72, 5140.84, 4414.45)

LEGACY_NAMES = {"norm": {"reference": "reference-clamped"}, "positions": {"reference": "renumbered"}}
"""Values older senclip checkpoints and configs hold, and what they mean now."""
TRAIN_SWAP = {"B02": "B04", "B04": "B02"}
"""``reference-train``: the training loader indexes the constants by the channel list
``B4, B3, B2, B5, ...`` (``cli_args.py`` at 8dfc8e6 / ca79a49) without reordering the image
(``CrossViewDataset``, ``src/Data/lucas_sen_data.py``), so B2 takes B4's constants and B4 B2's."""
TRAIN_STD_EPS = 1e-6
"""``reference-train``: ``normalize_tensor`` (src/Data/dataset_utils.py, 8dfc8e6) divides by std + 1e-6."""

AUGMENTS = ("tsmixaug", "random-ts", "spectral-dropout")
TIME_STEPS = (12, 4, 1)
# The base CLIP (open_clip architecture, pretrained tag) whose text tower the published
# checkpoints pair with: zeroshot.py embeds the prompts with OpenAI's clip.load(--clip_arch
# "ViT-B/32"), which builds QuickGELU; src/utils/configs/cli_args.py trains against ViT-B/32 CLIP
# embeddings of the ground photos (--ARCH "ViT-B/32", --emb_path ..._clipemb512_ViTB32.pt).
PUBLISHED_BASE = ("ViT-B-32-quickgelu", "openai")


@dataclass(frozen=True)
class TimeSenRefConfig:
    """Shape and conventions of a :class:`TimeSenReferenceTower` (stored in checkpoint headers).

    Attributes:
        bands: names of the C input bands, in order.
        image_size: pixels per side of each input patch (1 for ``TimeSenCLIP_1x1``).
        width: transformer width, also the output size.
        layers, heads, mlp_dim, dropout: the encoder's shape.
        norm: input rule, one of :data:`NORMALISATIONS`.
        mean, std: per-band constants of the ``reference-*`` rules, in band order (default:
            the published ones of the named Sentinel-2 bands).
        fill: ``median`` (fill missing months) or ``mask`` (hide them from attention).
        single_position: position of a ``T=1`` input at inference: ``first`` or ``mean``.
        positions: ``calendar`` or ``renumbered`` positions of months kept by an augmentation.
        augment: names from :data:`AUGMENTS`, applied while training.
        augment_p: probability of applying the temporal augmentation to a batch.
        random_ts_max: ``random-ts`` keeps at most this many months (11 in the newest code, 12 before).
    """

    bands: tuple[str, ...] = S2_BANDS
    image_size: int = 1
    width: int = 512
    layers: int = 6
    heads: int = 8
    mlp_dim: int = 256
    dropout: float = 0.2
    norm: str = "reference-clamped"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    fill: str = "median"
    single_position: str = "first"
    positions: str = "calendar"
    augment: tuple[str, ...] = ()
    augment_p: float = 0.5
    random_ts_max: int = 11

    def __post_init__(self) -> None:
        n = len(self.bands)
        if n == 0:
            raise SenclipError("a time-series tower needs at least one band")
        object.__setattr__(self, "bands", tuple(self.bands))
        for name, legacy in LEGACY_NAMES.items():
            object.__setattr__(self, name, legacy.get(getattr(self, name), getattr(self, name)))
        for name, table in (("mean", REFERENCE_MEAN), ("std", REFERENCE_STD)):
            if len(getattr(self, name)):
                continue
            if all(b in S2_BANDS for b in self.bands):  # the published constants, by band
                value = tuple(table[S2_BANDS.index(b)] for b in self.bands)
            elif self.norm == "none":
                value = (0.0,) if name == "mean" else (1.0,)
            else:
                raise SenclipError(f"timesen-reference norm: {self.norm} needs {name} values for bands "
                                   f"{list(self.bands)} (the published ones cover {', '.join(S2_BANDS)})")
            object.__setattr__(self, name, value)
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) == 1:
                value = value * n
            if len(value) != n:
                raise SenclipError(f"timesen-reference {name} has {len(value)} values for {n} bands "
                                   f"{list(self.bands)}")
            object.__setattr__(self, name, value)
        if any(s <= 0 for s in self.std):
            raise SenclipError("timesen-reference std values must be positive")
        if self.width % self.heads:
            raise SenclipError(f"timesen-reference width {self.width} is not divisible by heads {self.heads}")
        augment = (self.augment,) if isinstance(self.augment, str) else tuple(self.augment)
        object.__setattr__(self, "augment", augment)
        for name, value, allowed in (("norm", self.norm, NORMALISATIONS),
                                     ("fill", self.fill, ("median", "mask")),
                                     ("single_position", self.single_position, ("first", "mean")),
                                     ("positions", self.positions, ("calendar", "renumbered"))):
            if value not in allowed:
                raise SenclipError(f"timesen-reference {name} must be one of {', '.join(allowed)}, "
                                   f"not {value!r}")
        if self.norm == "reference-train" and any(b in self.bands for b in TRAIN_SWAP) and not all(
                b in self.bands for b in TRAIN_SWAP):
            raise SenclipError("norm: reference-train swaps the constants of B02 and B04; the tower needs "
                               f"both or neither, not {list(self.bands)}")
        bad = [a for a in augment if a not in AUGMENTS]
        if bad:
            raise SenclipError(f"unknown augmentation(s) {bad}; known: {', '.join(AUGMENTS)}")
        if not 0.0 <= self.augment_p <= 1.0:
            raise SenclipError(f"augment_p must be in [0, 1], not {self.augment_p}")
        if not 1 <= self.random_ts_max <= N_MONTHS:
            raise SenclipError(f"random_ts_max must be in 1..12, not {self.random_ts_max}")
        if self.image_size < 1:
            raise SenclipError("image_size must be positive")

    @classmethod
    def from_dict(cls, cfg: dict) -> TimeSenRefConfig:
        """Build from a dict (a YAML section or a checkpoint header), refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise SenclipError(f"unknown timesen-reference option(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def input_constants(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` per input band as :attr:`norm` applies them (``reference-train``: B02/B04
        exchanged and ``+1e-6`` on the std)."""
        if self.norm != "reference-train":
            return self.mean, self.std
        at = {b: i for i, b in enumerate(self.bands)}
        src = [at[TRAIN_SWAP.get(b, b)] for b in self.bands]
        return (tuple(self.mean[i] for i in src), tuple(self.std[i] + TRAIN_STD_EPS for i in src))


class TimeSenReferenceTower(nn.Module):
    """The published TimeSenCLIP encoder; see the module docstring.

    Input: ``(B, T, C)`` (one pixel) or ``(B, T, C, H, W)``, ``T`` in 12, 4 or 1, in the
    units ``norm`` expects; NaN marks a month without a clear observation.
    """

    tower_kind = "timesen-reference"

    def __init__(self, config: TimeSenRefConfig | None = None, head: nn.Module | None = None) -> None:
        super().__init__()
        self.config = cfg = config or TimeSenRefConfig()
        self.bands = cfg.bands
        d = cfg.width
        c = len(cfg.bands)
        self.register_buffer("in_mean", torch.zeros(c, 1, 1), persistent=False)
        self.register_buffer("in_std", torch.ones(c, 1, 1), persistent=False)
        self._set_constants()
        patch = c * cfg.image_size ** 2
        self.spectral_embedding = nn.Sequential(nn.Flatten(2), nn.Linear(patch, d))
        self.time_pos_encoding = nn.Parameter(torch.zeros(1, N_MONTHS, d))
        self.time_token = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=cfg.heads, dim_feedforward=cfg.mlp_dim,
                                           dropout=cfg.dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers=cfg.layers, enable_nested_tensor=False)
        self.mlp_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))
        self.head = head if head is not None else nn.Identity()
        self._generator: torch.Generator | None = None
        self.time_steps = N_MONTHS
        self._register_state_dict_hook(_time_steps_to_state)
        self._register_load_state_dict_pre_hook(_time_steps_from_state, with_module=True)

    @property
    def embed_dim(self) -> int:
        return self.config.width

    @property
    def normalisation(self) -> str:
        """The input rule in use (:data:`NORMALISATIONS`); part of the model's identity in results."""
        return self.config.norm

    def set_normalisation(self, rule: str) -> None:
        """Normalise inputs by ``rule`` from now on (``--series-normalisation``)."""
        self.config = replace(self.config, norm=rule)
        self._set_constants()

    def _set_constants(self) -> None:
        mean, std = self.config.input_constants()
        c = len(self.bands)
        self.in_mean.copy_(torch.tensor(mean, dtype=torch.float32).view(c, 1, 1))
        self.in_std.copy_(torch.tensor(std, dtype=torch.float32).view(c, 1, 1))

    def set_augment_seed(self, seed: int) -> None:
        """Seed the next training forward's augmentation draw (the trainer passes a function of the
        step, so a resumed run draws the same); without it the draws follow a per-tower counter."""
        self._generator = torch.Generator().manual_seed(int(seed))

    # ---- input -------------------------------------------------------------------------
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C[, H, W])`` -> normalised ``(B, T, C, H, W)`` float, NaN months kept."""
        c, s = len(self.bands), self.config.image_size
        if x.ndim == 3:
            x = x[..., None, None].expand(*x.shape, s, s) if s > 1 else x[..., None, None]
        if x.ndim != 5 or x.shape[2] != c or x.shape[3] != s or x.shape[4] != s:
            raise SenclipError(f"timesen-reference tower expects (B, T, {c}) or (B, T, {c}, {s}, {s}) "
                               f"for bands "
                               f"{list(self.bands)}, got {tuple(x.shape)}")
        if x.shape[1] not in TIME_STEPS:
            raise SenclipError(f"timesen-reference tower takes 12, 4 or 1 time steps, got {x.shape[1]}")
        x = x.float()
        rule = self.config.norm
        if rule != "none":
            x = (x - self.in_mean) / self.in_std
            if rule != "reference-eval":
                x = x.clamp(0.0, 1.0)
        return x

    def positions(self, t: int, months: Sequence[int] | None = None) -> torch.Tensor:
        """``(1, t, width)`` position encodings of a ``t``-step input (``months``: the calendar months
        kept by a training augmentation; all twelve for a year collapsed to one step)."""
        pos = self.time_pos_encoding
        if months is not None and t == 1:  # a collapsed year, or one kept month: every published training
            return pos.mean(dim=1, keepdim=True)  # forward takes the mean position for a 1-step input
        if months is not None and len(months) == t:
            return pos[:, list(months) if self.config.positions == "calendar" else list(range(t))]
        if t == N_MONTHS:
            return pos
        if t == 4:
            return pos.view(1, 4, 3, -1).median(dim=2).values
        if t == 1:
            return pos[:, :1] if self.config.single_position == "first" else pos.mean(dim=1, keepdim=True)
        raise SenclipError(f"timesen-reference tower takes 12, 4 or 1 time steps, got {t}")

    def forward(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embed ``(B, T, C[, H, W])``; 12-month input is first reduced to :attr:`time_steps` steps.

        Order as in the published training forward: spectral dropout on the input bands, the band
        embedding, then the temporal augmentation on the month tokens (the year's median is taken of
        the embedded tokens, not of the inputs), positions, class token, transformer, head.
        """
        if self.time_steps != N_MONTHS and x.ndim >= 2 and x.shape[1] == N_MONTHS:
            x = reduce_time_steps(x, self.time_steps)
        z = self.prepare(x)
        draw = self._draw(z) if self.training and self.config.augment else None
        if draw is not None:
            z = draw.apply_bands(z)
        missing = ~torch.isfinite(z).flatten(2).all(dim=-1)          # (B, T)
        pad = None
        if bool(missing.any()):
            z = z.masked_fill(missing[..., None, None, None], float("nan"))
            if self.config.fill == "median":
                med = torch.nanmedian(z, dim=1, keepdim=True).values
                z = torch.where(missing[..., None, None, None], med, z)
            else:
                pad = missing
            z = torch.nan_to_num(z, nan=0.0)
        tokens = self.spectral_embedding(z)
        months = None
        if draw is not None:
            tokens, pad, months = draw.apply_time(tokens, pad)
        tokens = tokens + self.positions(tokens.shape[1], months)
        tokens = torch.cat([self.time_token.expand(z.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        if pad is not None:
            pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
        h = self.transformer(tokens, src_key_padding_mask=pad)
        out = self.head(self.mlp_head(h[:, 0]))
        return F.normalize(out, dim=-1) if normalize else out

    # ---- augmentation ------------------------------------------------------------------
    def _draw(self, z: torch.Tensor) -> AugmentDraw:
        self._draws = getattr(self, "_draws", 0) + 1
        gen = self._generator if self._generator is not None else torch.Generator().manual_seed(self._draws)
        self._generator = None
        cfg = self.config
        return draw_augment(cfg.augment, gen, z.shape[1], z.shape[2], cfg.augment_p, cfg.random_ts_max)

    def extra_repr(self) -> str:
        cfg = self.config
        return f"bands={list(self.bands)}, width={cfg.width}, norm={cfg.norm}, fill={cfg.fill}"


_TIME_STEPS_KEY = "_time_steps"
OLD_TOKEN = "class_token"
"""The class token's name before commit 8dfc8e6 (and in senclip files written before this release)."""


def _time_steps_to_state(module, state, prefix, local_metadata):
    """Record a non-default :attr:`time_steps` in the state dict (cache keys and checkpoints see it)."""
    if module.time_steps != N_MONTHS:
        state[prefix + _TIME_STEPS_KEY] = torch.tensor(module.time_steps)
    return state


def _time_steps_from_state(module, state, prefix, local_metadata, strict, missing, unexpected, errors):
    value = state.pop(prefix + _TIME_STEPS_KEY, None)
    module.time_steps = int(value) if value is not None else N_MONTHS
    if prefix + OLD_TOKEN in state and prefix + "time_token" not in state:
        state[prefix + "time_token"] = state.pop(prefix + OLD_TOKEN)


def _uniform(gen: torch.Generator) -> float:
    return float(torch.rand((), generator=gen))


def _randint(lo: int, hi: int, gen: torch.Generator) -> int:
    """Integer in ``[lo, hi]``."""
    return int(torch.randint(lo, hi + 1, (), generator=gen))


@dataclass(frozen=True)
class AugmentDraw:
    """One batch's augmentation draw (:func:`draw_augment`), applied in the published order.

    Attributes:
        bands: ``(C,)`` bands kept by spectral dropout (``None``: all).
        months: calendar months kept (``None``: all ``T`` steps).
        collapse: the year collapsed to its median token (``months`` then lists all twelve).
    """

    bands: torch.Tensor | None = None
    months: tuple[int, ...] | None = None
    collapse: bool = False

    def apply_bands(self, z: torch.Tensor) -> torch.Tensor:
        """Zero the dropped bands of a ``(B, T, C, H, W)`` input (before the band embedding)."""
        if self.bands is None:
            return z
        return z * self.bands.to(z.device, z.dtype).view(1, 1, -1, 1, 1)

    def apply_time(self, tokens: torch.Tensor, pad: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None, list[int] | None]:
        """Keep the drawn months of ``(B, T, D)`` month tokens, or collapse them to their median token.

        ``pad`` (``(B, T)``, True: a masked month) follows the tokens; a collapsed year takes the
        median of its unmasked tokens (masked only where every month is). Returns the tokens, the pad
        mask and the calendar months they stand for (``None``: unchanged).
        """
        if self.months is None:
            return tokens, pad, None
        if self.collapse:
            if pad is None:
                return torch.median(tokens, dim=1, keepdim=True).values, None, list(self.months)
            hidden = tokens.masked_fill(pad[..., None], float("nan"))
            med = torch.nanmedian(hidden, dim=1, keepdim=True).values
            return torch.nan_to_num(med, nan=0.0), pad.all(dim=1, keepdim=True), list(self.months)
        keep = list(self.months)
        return tokens[:, keep], None if pad is None else pad[:, keep], keep


def draw_augment(names: Sequence[str], gen: torch.Generator, t: int = N_MONTHS, c: int = len(S2_BANDS),
                 p: float = 0.5, random_ts_max: int = 11) -> AugmentDraw:
    """Draw the named augmentations for one batch of ``t`` steps and ``c`` bands from ``gen``.

    ``spectral-dropout``: with probability 0.7 keep the first three bands and a random subset of the
    others. Then, for 12 months and with probability ``p``, ``tsmixaug`` either collapses the year
    (even odds) or drops three consecutive months; ``random-ts`` keeps 1 to ``random_ts_max`` months.
    """
    bands = None
    if "spectral-dropout" in names and c > 3 and _uniform(gen) > 0.3:
        n_keep = _randint(3, c, gen)
        bands = torch.zeros(c, dtype=torch.bool)
        bands[:3] = True
        bands[3 + torch.randperm(c - 3, generator=gen)[:n_keep - 3]] = True
    if t != N_MONTHS or _uniform(gen) >= p:
        return AugmentDraw(bands)
    if "tsmixaug" in names:
        if _uniform(gen) > 0.5:
            return AugmentDraw(bands, tuple(range(N_MONTHS)), collapse=True)
        start = _randint(0, t - 3, gen)
        return AugmentDraw(bands, tuple(m for m in range(t) if not start <= m < start + 3))
    if "random-ts" in names:
        n_keep = _randint(1, min(random_ts_max, t), gen)
        return AugmentDraw(bands, tuple(sorted(int(i) for i in torch.randperm(t, generator=gen)[:n_keep])))
    return AugmentDraw(bands)


def reduce_time_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, 12, ...)`` monthly input -> ``steps`` time steps (12: unchanged; 4: quarterly
    medians; 1: the year's median), ignoring NaN months (a step with none stays NaN)."""
    if steps not in TIME_STEPS:
        raise SenclipError(f"--time-steps must be one of 12, 4, 1, not {steps}")
    if steps == N_MONTHS:
        return x
    if x.shape[1] != N_MONTHS:
        raise SenclipError(f"reducing to {steps} time steps needs 12 months, got {x.shape[1]}")
    if steps == 4:
        return torch.nanmedian(x.reshape(x.shape[0], 4, 3, *x.shape[2:]), dim=2).values
    return torch.nanmedian(x, dim=1, keepdim=True).values


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "AUGMENTS", "NORMALISATIONS", "PUBLISHED_BASE", "REFERENCE_MEAN", "REFERENCE_STD", "TIME_STEPS",
    "AugmentDraw", "TimeSenRefConfig", "TimeSenReferenceTower", "count_parameters", "draw_augment",
    "reduce_time_steps",
]
