"""Published TimeSenCLIP checkpoints: every layout the reference wrote or loads, found from the keys.

The encoder's own keys (:func:`encoder_keys`) are ``spectral_embedding.1.{weight,bias}``,
``time_pos_encoding``, the class token, ``transformer.layers.<i>.*`` (12 tensors per layer) and
``mlp_head.{0,1}.{weight,bias}``. Around them the reference moved between commits of
``pallavijain-pj/TimeSenCLIP``:

* the class token is ``class_token`` up to commit 8d19b88 (``src/models/encoder.py``) and
  ``time_token`` from 8dfc8e6 on;
* the README (a48994f) loads a bare state dict (``checkpoints/TimeSenCLIP_1x1.pt``; another stored
  README version downloads ``TimeSenCLIP_1x1.ckpt`` from the Hub) with ``strict=True``;
* Lightning checkpoints hold the encoder under ``state_dict`` with the prefix ``learner.TS_ViT.``
  (``src/models/learner.py``, 8d19b88: the cross-view model stores it as ``TS_ViT``) or
  ``learner.ts_encoder.`` (``src/models/model.py`` from 8dfc8e6 on), usually beside a second copy,
  the validation encoder, at the top level (``TS_ViT.``);
* ``src/utils/model_utils.py`` (a48994f, ``pretrained_weights_ts``) accepts bare keys or strips
  ``learner.ts_encoder.``, ``ts_encoder.`` and ``TS_ViT.`` (inside ``state_dict`` or not); the
  ``zeroshot.py`` of 8dfc8e6 / ca79a49 strips ``learner.TS_ViT.``.

:func:`find_encoder` tries every container (the file itself, its ``state_dict``), every prefix
(:data:`PREFIXES`) and both token names, and takes the one whose keys are exactly the encoder's:
the trained encoder of a Lightning file (``learner.*``) before a top-level copy. Keys outside the
prefix are ignored, as the reference ignores them; the bare layout must hold the encoder alone
(``strict=True``). A file that fits none but looks like the encoder (a ``time_pos_encoding`` or
``spectral_embedding`` key anywhere) is refused in one line naming the closest layout's missing
and unexpected keys. Shapes are checked when the tower loads the tensors, strictly.

Files are read by :func:`read_checkpoint`, the one reader of ``--checkpoint`` and ``senclip convert``,
with ``torch.load(weights_only=True)`` (:func:`senclip.models.pickles.load_pickle`, which also allows
the ``argparse.Namespace`` of a Lightning checkpoint's ``hyper_parameters``); a file holding other
Python objects is refused with a hint on keeping its tensors alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from senclip.data.series.io import S2_BANDS
from senclip.errors import SenclipError
from senclip.models.pickles import load_pickle
from senclip.models.timesen_reference import N_MONTHS, TimeSenRefConfig, TimeSenReferenceTower

TOKENS = ("time_token", "class_token")
"""The class token's name: newest first (8dfc8e6 on), then before."""
PREFIXES = ("learner.ts_encoder.", "learner.TS_ViT.", "ts_encoder.", "TS_ViT.", "")
"""Key prefixes of the encoder, in the order they are preferred when a file holds several copies."""
LAYER_KEYS = (
    "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
    "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
)
"""The 12 tensors of one ``nn.TransformerEncoderLayer``."""


def encoder_keys(layers: int, token: str = "time_token") -> set[str]:
    """The keys of a published encoder with ``layers`` transformer layers and class token ``token``."""
    keys = {"spectral_embedding.1.weight", "spectral_embedding.1.bias", "time_pos_encoding", token,
            "mlp_head.0.weight", "mlp_head.0.bias", "mlp_head.1.weight", "mlp_head.1.bias"}
    return keys | {f"transformer.layers.{i}.{k}" for i in range(layers) for k in LAYER_KEYS}


@dataclass(frozen=True)
class EncoderLayout:
    """Where a file keeps the encoder: ``container`` (``file``: its top level; ``state_dict``: a
    Lightning checkpoint's), the key ``prefix`` and the class ``token`` name."""

    container: str
    prefix: str
    token: str

    @property
    def name(self) -> str:
        if self.container == "state_dict":
            where = f"lightning {self.prefix or '(no prefix)'}"
        else:
            where = f"prefixed {self.prefix}" if self.prefix else "bare"
        return f"{where} / {self.token}"


@dataclass
class EncoderMatch:
    """A layout that fits and the encoder's tensors under senclip's names (``time_token``)."""

    layout: EncoderLayout
    state: dict[str, torch.Tensor]


def _looks_like_encoder(keys) -> bool:
    return any(k == "time_pos_encoding" or k.startswith("spectral_embedding.") for k in keys)


def _layers(keys) -> int:
    found = {k.split(".")[2] for k in keys if k.startswith("transformer.layers.") and k.count(".") >= 3}
    numbers = [int(i) for i in found if i.isdigit()]
    return max(numbers) + 1 if numbers else 1


def _short(keys, n: int = 3) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def find_encoder(obj, source: str = "state dict") -> EncoderMatch | None:
    """The published encoder in a loaded checkpoint ``obj`` (see the module docstring).

    Returns:
        The match, or ``None`` when nothing in ``obj`` looks like the encoder.

    Raises:
        SenclipError: something looks like the encoder but no layout fits; the message names the
            closest layout with its missing and unexpected keys (one line).
    """
    if not isinstance(obj, dict):
        return None
    containers = []
    inner = obj.get("state_dict")
    if isinstance(inner, dict):
        containers.append(("state_dict", inner))
    containers.append(("file", obj))
    near: list[tuple[int, int, EncoderLayout, set, set]] = []
    for container, table in containers:
        tensors = {k: v for k, v in table.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        for rank, prefix in enumerate(PREFIXES):
            sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if not _looks_like_encoder(sub):
                continue
            for token in TOKENS:
                expected = encoder_keys(_layers(sub), token)
                missing, unexpected = expected - set(sub), set(sub) - expected
                layout = EncoderLayout(container, prefix, token)
                if not missing and not unexpected:
                    state = {("time_token" if k == token else k): v for k, v in sub.items()}
                    return EncoderMatch(layout, state)
                near.append((len(missing) + len(unexpected), rank, layout,
                             {prefix + k for k in missing}, {prefix + k for k in unexpected}))
    if not near:
        return None
    _, _, layout, missing, unexpected = min(near, key=lambda t: (t[0], t[1]))
    parts = [f"missing {_short(missing)}" if missing else "", f"unexpected {_short(unexpected)}" if unexpected
             else ""]
    raise SenclipError(f"{source}: no published TimeSenCLIP layout fits; closest is {layout.name} with "
                       f"{'; '.join(p for p in parts if p)}")


class UnreadableCheckpoint(SenclipError):
    """The file is not a torch checkpoint that loads without running its code."""


def _load_file(path: str | Path):
    """The pickled checkpoint ``path``, read as :func:`senclip.models.pickles.load_pickle` reads it.

    Raises:
        UnreadableCheckpoint: unreadable or truncated file, or one holding other objects (code).
    """
    try:
        return load_pickle(Path(path))
    except SenclipError as exc:
        hint = ""
        if "objects other than plain tensors" in str(exc):
            hint = ("; where you trust the file, keep its tensors alone (a Lightning checkpoint: "
                    "torch.save(torch.load(path, weights_only=False)['state_dict'], 'encoder.pt'))")
        raise UnreadableCheckpoint(f"{exc}{hint}") from exc


def read_checkpoint(path: str | Path) -> tuple[object, EncoderMatch | None]:
    """A pickled checkpoint ``path`` and the published encoder in it: the one reader of such files
    (``--checkpoint`` through the tower kind, ``senclip convert`` through its layout detection).

    Returns:
        The loaded object and the encoder's match (``None``: nothing in it looks like the encoder).

    Raises:
        UnreadableCheckpoint: the file cannot be read safely (a hint where it holds Python objects).
        SenclipError: it looks like the encoder but no layout fits (one line, the closest named).
    """
    obj = _load_file(path)
    return obj, find_encoder(obj, source=str(path))


def config_from_state(state: dict[str, torch.Tensor], heads: int = 8, source: str = "state dict",
                      **options) -> TimeSenRefConfig:
    """The :class:`TimeSenRefConfig` whose shapes fit a published state dict (heads cannot be read off);
    errors name ``source`` (the file)."""
    try:
        width = int(state["time_pos_encoding"].shape[-1])
        patch = int(state["spectral_embedding.1.weight"].shape[1])
        mlp_dim = int(state["transformer.layers.0.linear1.weight"].shape[0])
    except (KeyError, IndexError) as exc:
        raise SenclipError(f"{source}: TimeSenCLIP state dict lacks {exc.args[0]}") from exc
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.layers.")})
    bands = tuple(options.pop("bands", S2_BANDS))
    size = math.isqrt(patch // len(bands)) if patch % len(bands) == 0 else 0
    if size < 1 or len(bands) * size * size != patch:
        raise SenclipError(f"{source}: TimeSenCLIP band embedding takes {patch} inputs, not {len(bands)} "
                           "bands x H x W")
    if int(state["time_pos_encoding"].shape[1]) != N_MONTHS:
        raise SenclipError(f"{source}: TimeSenCLIP checkpoints with other than 12 time frames are not "
                           f"supported (time_pos_encoding has {int(state['time_pos_encoding'].shape[1])})")
    try:
        return TimeSenRefConfig(bands=bands, image_size=size, width=width, layers=layers, heads=heads,
                                mlp_dim=mlp_dim, **options)
    except SenclipError as exc:
        raise SenclipError(f"{source}: {exc}") from exc


def tower_from_state(state: dict[str, torch.Tensor], source: str = "state dict",
                     **options) -> TimeSenReferenceTower:
    """A tower built to fit ``state`` (bare published key names) with its weights loaded strictly."""
    tower = TimeSenReferenceTower(config_from_state(state, source=source, **options))
    try:
        tower.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise SenclipError(f"{source}: weights do not fit the TimeSenCLIP encoder: "
                           f"{(lines[1] if len(lines) > 1 else lines[0])[:300]}") from exc
    return tower


__all__ = ["PREFIXES", "TOKENS", "EncoderLayout", "EncoderMatch", "UnreadableCheckpoint", "config_from_state",
           "encoder_keys", "find_encoder", "read_checkpoint", "tower_from_state"]
