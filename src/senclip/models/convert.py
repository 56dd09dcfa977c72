"""Weights files in other layouts: detection, conversion, and export to open_clip.

Layouts of a local weights file (:func:`detect_layout`):

``senclip``
    a safetensors file with a senclip header (:mod:`senclip.models.checkpoint`).
``openai``
    a pickled, flat CLIP state dict with OpenAI's key names (``visual.*``,
    ``transformer.*``, ``token_embedding.weight``, ``positional_embedding``,
    ``ln_final.*``, ``text_projection``, ``logit_scale``) in a ``.ckpt``,
    ``.pt`` or ``.pth`` file: what ``torch.save(model.state_dict())`` writes
    for a model of OpenAI's ``clip`` package. The SenCLIP checkpoints of
    Hugging Face ``pallavijainpj/SenCLIP`` (``SenCLIP_AvgPool_ViTB32.ckpt``, …)
    are such files.
``clip-prefixed``
    a safetensors file whose keys are the OpenAI ones under ``clip.``, with
    an optional ``config.json`` beside it (``architecture`` such as
    ``ViT-B/32``, ``pooling``, ``pool_out``, ``queue_size``): what
    ``huggingface_hub.PyTorchModelHubMixin`` writes for a module holding an
    OpenAI CLIP as ``self.clip``, i.e. the ``MVRL/senclip-*`` repositories.
    The downloaded repository folder is accepted as it is (:func:`weights_path`).
``open_clip``
    anything else open_clip loads (its training checkpoints, ``.bin``, plain
    safetensors), built as the architecture given.
``timesenclip``
    not a CLIP: the TimeSenCLIP time-series encoder of Hugging Face
    ``pallavijainpj/TimeSenCLIP`` (``TimeSenCLIP_1x1.ckpt`` / ``.pt``) in any
    published layout (bare, Lightning ``learner.ts_encoder.`` / ``learner.TS_ViT.``,
    prefixed ``ts_encoder.`` / ``TS_ViT.``; class token ``time_token`` or
    ``class_token``), recognised by
    :func:`senclip.models.timesen_checkpoints.read_checkpoint` (the reader
    ``--checkpoint`` uses too). Where CLIP
    weights are expected it raises :class:`TowerWeights`; ``senclip convert``
    writes it as a senclip tower checkpoint (``--checkpoint``).

OpenAI's ``clip`` package builds every model with QuickGELU, so ``openai`` and
``clip-prefixed`` weights are always built as the ``-quickgelu`` variant of
their architecture (``ViT-B-32`` → ``ViT-B-32-quickgelu``); asking for the
GELU name is corrected with a one-line note (:class:`~senclip.errors.SenclipNote`).
The key layout cannot tell OpenAI-trained weights from open_clip weights
trained with GELU: a GELU state dict pickled as ``.pt`` is converted with
``senclip convert FILE --layout open_clip --model ARCH`` (or saved as
``.bin``/``.safetensors``).

Pickles are read with ``torch.load(weights_only=True)``: a file holding
objects other than tensors and containers (code) is refused, never run.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from senclip.errors import SenclipError, SenclipNote

LAYOUTS = ("auto", "senclip", "openai", "clip-prefixed", "open_clip", "timesenclip")
TOWER_LAYOUTS = {"timesenclip": "timesen-reference"}  # layouts of a satellite tower alone -> its tower kind
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth")
CLIP_KEYS = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection")
_JIT_EXTRAS = ("input_resolution", "context_length", "vocab_size")
QUICKGELU = "-quickgelu"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _is_clip_state(obj) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in CLIP_KEYS) and any(
        str(k).startswith("visual.") for k in obj)


@dataclass
class Weights:
    """A local weights file as read: its layout and, for the OpenAI layouts, the state dict."""

    path: Path
    layout: str
    state: dict | None = None
    config: dict = field(default_factory=dict)

    @property
    def architecture_hint(self) -> str | None:
        """The ``config.json`` architecture (``ViT-B/32`` → ``ViT-B-32``), if any."""
        arch = self.config.get("architecture")
        return str(arch).replace("/", "-") if arch else None

    @property
    def is_senclip_release(self) -> bool:
        """A ``config.json`` of a SenCLIP training run (it records the ground-view pooling)."""
        return "pooling" in self.config


def not_clip_message(what: str) -> str:
    """The one line for a TimeSenCLIP tower file (or registry name) given where CLIP weights belong."""
    from senclip.models.timesen_reference import PUBLISHED_BASE

    arch, pretrained = PUBLISHED_BASE
    return (f"{what} holds a TimeSenCLIP time-series tower, not CLIP weights: load it with --checkpoint "
            f"{what} next to a base CLIP of its width (the published one pairs with --model {arch} "
            f"--pretrained {pretrained}), or write it as a senclip tower file with "
            f"`senclip convert {what} --out tower.safetensors`")


class TowerWeights(SenclipError):
    """CLIP weights were expected, but the file holds a satellite tower alone (:data:`TOWER_LAYOUTS`);
    ``weights`` is the file as read, so ``senclip convert`` writes the tower without reading it again."""

    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        super().__init__(not_clip_message(str(weights.path)))


def _safetensors_keys(path: Path) -> list[str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise SenclipError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from exc


def _clean(state: dict, path: Path) -> dict:
    import torch

    out = {}
    for k, v in state.items():
        if k in _JIT_EXTRAS:
            continue
        if not isinstance(v, torch.Tensor):
            raise SenclipError(f"{path}: entry {k!r} is not a tensor; not a CLIP state dict")
        out[k] = v.float() if v.is_floating_point() else v
    return out


HUB_FOLDER_WEIGHTS = ("model.safetensors",)
"""Weights files of a downloaded Hugging Face repository folder (``MVRL/senclip-*``:
``model.safetensors`` beside ``config.json``), looked for when a folder is given."""


def weights_path(path: str | Path) -> Path:
    """``path`` itself, or for a folder (a downloaded Hub repository) the weights file inside it.

    Raises:
        SenclipError: a folder holding none of :data:`HUB_FOLDER_WEIGHTS`.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        return path
    for name in HUB_FOLDER_WEIGHTS:
        if (path / name).is_file():
            return path / name
    found = sorted(p.name for p in path.iterdir() if p.is_file())[:6]
    raise SenclipError(f"{path} is a folder without {' or '.join(HUB_FOLDER_WEIGHTS)} (a downloaded "
                       f"MVRL/senclip-* repository holds model.safetensors and config.json); it holds "
                       f"{', '.join(found) or 'no files'}; pass the weights file itself")


def read_weights(path: str | Path, layout: str = "auto") -> Weights:
    """Detect (``layout="auto"``) or check the layout of ``path``; read the state dict of OpenAI layouts.

    Raises:
        SenclipError: unreadable, truncated or code-carrying file, or a file
            that does not have the layout asked for.
    """
    from senclip.models.checkpoint import read_metadata

    path = weights_path(path)
    if layout not in LAYOUTS:
        raise SenclipError(f"unknown layout {layout!r}; choose {', '.join(LAYOUTS)}")
    if not path.is_file():
        raise SenclipError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    found = "open_clip"
    state = None
    tower_layout = None
    if suffix == ".safetensors":
        if read_metadata(path) is not None:
            found = "senclip"
        else:
            keys = _safetensors_keys(path)
            if keys and all(k.startswith("clip.") for k in keys):
                found = "clip-prefixed"
    elif suffix in PICKLE_SUFFIXES and layout in ("auto", "openai", "timesenclip"):
        from senclip.models.timesen_checkpoints import read_checkpoint

        obj, match = read_checkpoint(path)
        if _is_clip_state(obj):
            found, state = "openai", obj
        elif match is not None:
            found, state = "timesenclip", match.state
            tower_layout = match.layout.name
        elif isinstance(obj, dict) and "hyper_parameters" in obj and any(
                str(k).startswith("image_tower.") for k in obj.get("state_dict", {})):
            raise SenclipError(f"{path} is a senclip training checkpoint; export it first: "
                               f"senclip export --checkpoint {path} --out model.safetensors")
    if layout not in ("auto", found) and not (layout == "open_clip" and found != "senclip"):
        raise SenclipError(f"{path} is not in the {layout} layout (it looks like {found})")
    if layout == "open_clip" and found != "senclip":
        return Weights(path, "open_clip")
    weights = Weights(path, found)
    if found == "openai":
        weights.state = _clean(state, path)
    elif found in TOWER_LAYOUTS:
        weights.state = state
        weights.config = {"encoder_layout": tower_layout}
    elif found == "clip-prefixed":
        from safetensors.torch import load_file

        weights.state = _clean({k[len("clip."):]: v for k, v in load_file(str(path)).items()}, path)
        if not _is_clip_state(weights.state):
            raise SenclipError(f"{path}: the clip.* tensors are not a CLIP state dict")
        weights.config = _read_config(path.with_name("config.json"))
    return weights


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SenclipError(f"{path}: not readable JSON ({_first_line(exc)})") from exc
    return data if isinstance(data, dict) else {}


# ---- architectures from shapes -------------------------------------------------------------------

def _count(state: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state for m in [rx.match(k)] if m})


def _size(x) -> int | None:
    if isinstance(x, (list, tuple)):
        return int(x[0]) if len(set(x)) == 1 else None
    return int(x) if x is not None else None


def state_signature(state: dict) -> tuple | None:
    """What the tensor shapes say about a CLIP: (vision, text, embed_dim), as :func:`config_signature`."""
    try:
        text = (state["ln_final.weight"].shape[0], _count(state, r"transformer\.resblocks\.(\d+)\."),
                state["positional_embedding"].shape[0], state["token_embedding.weight"].shape[0])
        embed = state["text_projection"].shape[1]
        if "visual.proj" in state:
            conv = state["visual.conv1.weight"]
            width, patch = conv.shape[0], conv.shape[-1]
            grid = math.isqrt(state["visual.positional_embedding"].shape[0] - 1)
            mlp = state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
            vision = ("vit", _count(state, r"visual\.transformer\.resblocks\.(\d+)\."), width, patch,
                      grid * patch, mlp)
        else:
            layers = tuple(_count(state, rf"visual\.layer{i}\.(\d+)\.") for i in range(1, 5))
            grid = math.isqrt(state["visual.attnpool.positional_embedding"].shape[0] - 1)
            vision = ("rn", layers, state["visual.layer1.0.conv1.weight"].shape[0], grid * 32)
    except (KeyError, IndexError, AttributeError):
        return None
    return vision, text, embed


def config_signature(cfg: dict) -> tuple | None:
    """The same signature from an open_clip model config (None for timm / HF / CoCa models)."""
    v, t = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    if "timm_model_name" in v or "hf_model_name" in t or cfg.get("custom_text") or "multimodal_cfg" in cfg:
        return None
    layers, width = v.get("layers", 12), v.get("width", 768)
    size = _size(v.get("image_size", 224))
    if isinstance(layers, (list, tuple)):
        vision = ("rn", tuple(layers), width, size)
    else:
        patch = _size(v.get("patch_size", 16))
        vision = ("vit", layers, width, patch, size, int(width * v.get("mlp_ratio", 4.0)))
    text = (t.get("width", 512), t.get("layers", 12), t.get("context_length", 77), t.get("vocab_size", 49408))
    return vision, text, cfg.get("embed_dim")


def base_name(arch: str) -> str:
    return arch.replace("/", "-").removesuffix(QUICKGELU)


def matching_architectures(state: dict) -> list[str]:
    """open_clip architecture names whose tensor shapes fit ``state`` (GELU and QuickGELU variants)."""
    import open_clip

    sig = state_signature(state)
    if sig is None:
        return []
    return [name for name in open_clip.list_models()
            if config_signature(open_clip.get_model_config(name) or {}) == sig]


def _describe(sig: tuple | None) -> str:
    if sig is None:
        return "an unrecognised CLIP"
    vision, _, embed = sig
    if vision[0] == "vit":
        return (f"a ViT (width {vision[2]}, {vision[1]} layers, patch {vision[3]}, {vision[4]} px, "
                f"embed {embed})")
    return f"a ResNet (layers {list(vision[1])}, width {vision[2]}, {vision[3]} px, embed {embed})"


def quickgelu_name(arch: str) -> str | None:
    """The QuickGELU variant of ``arch`` among open_clip's configs (``arch`` itself if it is one)."""
    import open_clip

    if open_clip.get_model_config(arch) and open_clip.get_model_config(arch).get("quick_gelu"):
        return arch
    twin = base_name(arch) + QUICKGELU
    return twin if twin in open_clip.list_models() else None


def choose_architecture(weights: Weights, requested: str | None) -> tuple[str, str | None]:
    """The architecture OpenAI-layout ``weights`` are built as, and a note if ``requested`` was corrected.

    Raises:
        SenclipError: the shapes fit another architecture than ``requested``,
            or (without ``requested``) several or none.
    """
    path = weights.path
    fits = matching_architectures(weights.state)
    bases = list(dict.fromkeys(base_name(a) for a in fits))
    what = _describe(state_signature(weights.state))
    if requested:
        if base_name(requested) not in bases:
            use = f"; use --model {bases[0]}" if len(bases) == 1 else (
                f"; it fits {', '.join(bases)}" if bases else "")
            raise SenclipError(f"{path} holds {what}, not {requested} weights{use}")
        base = base_name(requested)
    else:
        hint = weights.architecture_hint
        if hint and base_name(hint) in bases:
            base = base_name(hint)
        elif len(bases) == 1:
            base = bases[0]
        elif not bases:
            raise SenclipError(f"{path} holds {what}, which no open_clip architecture fits")
        else:
            raise SenclipError(f"{path} fits several architectures ({', '.join(bases)}); pass --model NAME")
    arch = quickgelu_name(base) or base
    note = None
    if requested and requested.replace("/", "-") != arch:
        note = (f"{path.name} holds OpenAI-layout CLIP weights, which use QuickGELU: built as {arch}, "
                f"not {requested} (a GELU model saved this way: senclip convert --layout open_clip)")
    return arch, note


def build_open_clip(weights: Weights, arch: str):
    """An open_clip CLIP of ``arch`` holding ``weights`` (QuickGELU forced if ``arch`` lacks it)."""
    import open_clip

    force = not (open_clip.get_model_config(arch) or {}).get("quick_gelu", False)
    clip = open_clip.create_model(arch, force_quick_gelu=force)
    state = dict(weights.state)
    if "logit_scale" in state:
        state["logit_scale"] = state["logit_scale"].reshape(clip.logit_scale.shape)
    try:
        clip.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else _first_line(exc)
        raise SenclipError(f"{weights.path} does not fit {arch}: {detail[:300]}") from exc
    return clip.eval()


def open_openai_layout(weights: Weights, requested: str | None, trust_requested: bool = False):
    """Build the open_clip model of OpenAI-layout ``weights``; returns ``(clip, arch)``.

    ``trust_requested`` (registry entries, whose ``arch`` is the authors'
    choice): ``requested`` is used as it is, without the QuickGELU correction.
    """
    if trust_requested and requested:
        return build_open_clip(weights, requested), requested
    arch, note = choose_architecture(weights, requested)
    clip = build_open_clip(weights, arch)
    if note:
        warnings.warn(note, SenclipNote, stacklevel=3)
    return clip, arch


# ---- export to open_clip ------------------------------------------------------------------------

OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"


def open_clip_folder_state(model) -> tuple[dict, dict]:
    """The open_clip ``(config, state dict)`` of a SenCLIP model whose image tower open_clip can represent.

    Raises:
        SenclipError: a head on the image tower, bands other than RGB, a
            time-series tower, or preprocessing open_clip has no setting for.
    """
    import open_clip
    from torch import nn

    from senclip.bands import RGB_BANDS
    from senclip.models.towers import ImageTower

    tower = model.image_tower
    if not isinstance(tower, ImageTower):
        raise SenclipError(f"open_clip export needs a CLIP image tower; this model has a "
                           f"{type(tower).__name__}")
    if not isinstance(tower.head, nn.Identity):
        raise SenclipError("the image tower has a projection head that an open_clip model cannot hold; "
                           "train with model.head_at_inference: drop, or export the senclip format")
    if tuple(tower.bands) != RGB_BANDS:
        raise SenclipError(f"open_clip models take RGB images; this tower takes {','.join(tower.bands)}")
    pre = tower.preprocess
    if pre.minmax or pre.center_crop or pre.interpolation == "nearest":
        raise SenclipError(f"open_clip's preprocessing has no equivalent of profile {pre.profile} "
                           "(min-max stretch, centre crop or nearest resize); evaluate with another profile")
    model_cfg = open_clip.get_model_config(model.name)
    if not model_cfg:
        raise SenclipError(f"no open_clip config for architecture {model.name}")
    state = {f"visual.{k}": v for k, v in tower.visual.state_dict().items()}
    text = model.text_tower.clip.state_dict()
    state |= {k: v for k, v in text.items() if not k.startswith("visual.")}
    if "logit_scale" in text:
        state["logit_scale"] = model.logit_scale.detach().reshape(text["logit_scale"].shape)
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {"size": pre.image_size, "mean": _short(pre.mean), "std": _short(pre.std),
                           "interpolation": pre.interpolation, "resize_mode": "squash"},
    }
    return config, state


def _short(t) -> list[float]:
    """float32 values as the shortest decimals that round-trip (0.347, not 0.34700000286102295)."""
    import numpy as np

    return [float(np.format_float_positional(np.float32(v), unique=True)) for v in t.flatten().tolist()]


def export_open_clip(model, out_dir: str | Path) -> dict:
    """Write ``model`` as an open_clip folder (``open_clip_config.json`` + ``open_clip_model.safetensors``).

    ``open_clip.create_model_and_transforms("local-dir:OUT")`` opens it; the
    same two files in a Hugging Face repository open as ``hf-hub:ORG/REPO``.
    Files are written atomically; on failure none of them is left behind.
    """
    from safetensors.torch import save_file

    from senclip.models.checkpoint import _dedupe_shared
    from senclip.outputs import atomic_path

    config, state = open_clip_folder_state(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().float().contiguous() if v.is_floating_point() else v.detach().cpu()
               for k, v in state.items()}
    _dedupe_shared(tensors)
    written = []
    try:
        with atomic_path(out / OPEN_CLIP_WEIGHTS) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        written.append(out / OPEN_CLIP_WEIGHTS)
        with atomic_path(out / OPEN_CLIP_CONFIG) as tmp:
            tmp.write_text(json.dumps(config, indent=2) + "\n")
        written.append(out / OPEN_CLIP_CONFIG)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return {"out": str(out), "arch": model.name, "files": [p.name for p in written],
            "tensors": len(tensors)}
