"""One entry point over open_clip: :func:`create_model`.

Architectures are open_clip names (``ViT-B-32``, ``RN50``, …) plus the tiny
ones this package registers from ``configs/*.json`` (``senclip-tiny-vit``,
``senclip-tiny-rn``). Weights come from ``pretrained``:

* ``None``: random initialisation (tests, demos, training from scratch);
* an open_clip tag such as ``openai`` or ``laion2b_s34b_b79k``;
* an ``hf-hub:org/repo`` id (the architecture is then read from the hub);
* a registry name (``senclip models``; :mod:`senclip.models.registry`),
  downloaded once, with the preprocessing its weights were trained with;
* a local file, whose layout is detected (:mod:`senclip.models.convert`): a
  senclip safetensors checkpoint (:func:`senclip.models.checkpoint.save_model`),
  an OpenAI pickled state dict (``.ckpt``/``.pt``/``.pth``: the
  ``pallavijainpj/SenCLIP`` checkpoints), ``clip.``-prefixed safetensors with a
  ``config.json`` (``MVRL/senclip-*``), or anything open_clip loads. The two
  OpenAI layouts are built with QuickGELU (a GELU name is corrected with a
  :class:`~senclip.errors.SenclipNote`).

``checkpoint`` (optional) is a senclip image-tower checkpoint, such as the
output of ``senclip export``: it replaces the image tower (trunk, bands,
normalisation and trained head) while the text tower stays the frozen one of
``name``/``pretrained``. ``preprocess`` (optional) sets a preprocessing
profile (:mod:`senclip.models.preprocess`) last. No file is ever unpickled with code execution:
safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from pathlib import Path

import open_clip
import torch
from torch import nn

from senclip.bands import RGB_BANDS, needs_inflation, parse_bands
from senclip.errors import SenclipError
from senclip.models import checkpoint as ckpt
from senclip.models.convert import TOWER_LAYOUTS, TowerWeights, open_openai_layout, read_weights
from senclip.models.kinds import kind_of
from senclip.models.model import SenCLIP
from senclip.models.preprocess import PreprocessConfig, apply_profile, from_mapping
from senclip.models.towers import ImageTower, Preprocess, TextTower

CONFIG_DIR = Path(__file__).parent / "configs"
HF_HUB_PREFIX = "hf-hub:"

open_clip.add_model_config(CONFIG_DIR)


def list_architectures() -> list[str]:
    """Names accepted by :func:`create_model` (open_clip's plus senclip's)."""
    return open_clip.list_models()


def _open_clip_model(name: str, pretrained: str | None) -> tuple[nn.Module, str]:
    """Build an open_clip CLIP model; returns it and the tokenizer id."""
    try:
        if pretrained is not None and pretrained.startswith(HF_HUB_PREFIX):
            model = open_clip.create_model(pretrained, weights_only=True)
            return model, pretrained
        if name not in open_clip.list_models():
            raise SenclipError(
                f"unknown architecture {name!r}; see `senclip models --architectures` for the list"
            )
        model = open_clip.create_model(
            name, pretrained=pretrained, weights_only=True, require_pretrained=pretrained is not None
        )
        return model, name
    except SenclipError:
        raise
    except pickle.UnpicklingError as exc:
        raise SenclipError(
            f"refused to load {pretrained}: it holds objects other than plain tensors, and "
            "checkpoints are loaded without executing code (torch.load weights_only=True)"
        ) from exc
    except (OSError, RuntimeError, ValueError, KeyError, EOFError) as exc:
        where = pretrained if pretrained is not None else "random init"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SenclipError(f"could not load {name} weights from {where}: {msg}") from exc


def create_model(
    name: str | None,
    pretrained: str | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    bands: str | list[str] | tuple[str, ...] | None = None,
    preprocess: str | PreprocessConfig | None = None,
    layout: str = "auto",
) -> SenCLIP:
    """Create a :class:`SenCLIP` model (image tower, text tower, tokenizer, preprocessing).

    Args:
        name: open_clip architecture name (ignored for ``hf-hub:`` weights and
            for senclip checkpoints, which record their own). May be None for
            registry names and OpenAI-layout files, whose architecture is known.
        pretrained: tag, registry name, ``hf-hub:`` id or local file; see the
            module docstring. A local file's layout (senclip, OpenAI pickled
            state dict, ``clip.``-prefixed safetensors + ``config.json``,
            open_clip) is detected (:mod:`senclip.models.convert`); OpenAI
            layouts are built with QuickGELU.
        checkpoint: senclip image-tower checkpoint replacing the image tower.
        device: where to put the model.
        bands: input bands of the image tower (e.g. ``"B01,…,B12"`` or
            ``"L1C"``); a tower with another band set is inflated in place by
            :func:`senclip.models.multiband.set_input_bands` (new filters
            start at zero); the same bands in another order keep the tower
            as it is. ``None`` keeps the bands of the weights.
        preprocess: preprocessing profile (``openai``, ``senclip``, a file;
            :mod:`senclip.models.preprocess`) applied last. ``None`` keeps the
            weights' own: a registry entry's profile, a checkpoint's recorded
            one, or the open_clip statistics with bilinear resize.
        layout: the layout of a local ``pretrained`` file (``auto`` detects it).

    Raises:
        SenclipError: unknown architecture, missing file, weights that do not
            fit the architecture, or weights that cannot be fetched.
    """
    from senclip.models.registry import get_entry, resolve_pretrained

    entry = get_entry(pretrained) if pretrained and not Path(pretrained).expanduser().exists() else None
    name, pretrained = resolve_pretrained(pretrained, name)  # registry name -> tag or cached file
    default_profile = _entry_profile(entry)
    if pretrained is not None and not pretrained.startswith(HF_HUB_PREFIX):
        path = Path(pretrained).expanduser()
        if path.exists():
            weights = read_weights(path, entry.layout if entry is not None else layout)
            if weights.layout in TOWER_LAYOUTS:
                raise TowerWeights(weights)
            if weights.layout == "senclip":
                model = load_model(path)
                return _finish(model, checkpoint, bands, preprocess, None, device)
            if weights.layout in ("openai", "clip-prefixed"):
                clip, arch = open_openai_layout(weights, name, trust_requested=entry is not None)
                if default_profile is None and weights.is_senclip_release:
                    default_profile = "senclip"
                model = from_open_clip(arch, clip, open_clip.get_tokenizer(arch), str(path))
                return _finish(model, checkpoint, bands, preprocess, default_profile, device)
            pretrained = str(path)
        elif any(sep in pretrained for sep in ("/", "\\")) or Path(pretrained).suffix:
            raise SenclipError(f"pretrained weights file not found: {pretrained}")
    if name is None:
        raise SenclipError("give an architecture (--model NAME) for these weights")

    clip, tokenizer_id = _open_clip_model(name, pretrained)
    if pretrained is not None and pretrained.startswith(HF_HUB_PREFIX):
        name = pretrained
    model = from_open_clip(name, clip, open_clip.get_tokenizer(tokenizer_id), pretrained)
    return _finish(model, checkpoint, bands, preprocess, default_profile, device)


def _entry_profile(entry) -> PreprocessConfig | None:
    """The preprocessing a registry entry's weights were trained with (None: no entry, or none recorded)."""
    if entry is None or not entry.preprocess:
        return None
    return from_mapping(entry.preprocess, name=entry.preprocess.get("profile") or entry.name,
                        where=f"registry entry {entry.name}", positional_bands=RGB_BANDS)


def _finish(model: SenCLIP, checkpoint, bands, preprocess, default_profile, device) -> SenCLIP:
    """The steps after the base weights, in order: default profile, checkpoint, bands, explicit profile."""
    if default_profile is not None:
        apply_profile(model.image_tower, default_profile)
    if checkpoint is not None:
        from senclip.models.registry import resolve_checkpoint

        ckpt.load_image_tower(model, resolve_checkpoint(str(checkpoint)))
    model = _with_bands(model, bands)
    if preprocess is not None:
        apply_profile(model.image_tower, preprocess)
    return model.to(device).eval()


def load_model(path: str | Path, base_pretrained: str | None = None) -> SenCLIP:
    """Load a senclip checkpoint on its own.

    A ``full`` checkpoint carries both towers. An ``image`` checkpoint is
    paired with the text tower of ``base_pretrained`` (default: the one
    recorded in the header).
    """
    path = Path(path)
    meta = ckpt.read_metadata(path)
    if meta is None:
        raise SenclipError(f"{path}: not a senclip checkpoint")
    if meta["kind"] == "full":
        with _skip_weight_init():  # both towers are loaded strictly below: a random init is wasted
            model = create_model(meta["arch"], pretrained=None)
        ckpt.load_text_tower(model, path)
    else:
        model = create_model(meta["arch"], pretrained=base_pretrained or meta.get("base_pretrained"))
    ckpt.load_image_tower(model, path)
    return model


_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _skip_weight_init():
    """Build modules without initialising their weights (``torch.nn.init``'s fills do nothing).

    Only for a model whose every parameter and buffer is then loaded strictly from a file: the
    ViT-B/32 random init costs about 1 s of a command's start-up. Module-level state, so one
    builder at a time.
    """
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    with _INIT_LOCK:
        saved = {n: getattr(nn.init, n) for n in names}
        try:
            for n in names:
                setattr(nn.init, n, lambda tensor, *args, **kwargs: tensor)
            yield
        finally:
            for n, fn in saved.items():
                setattr(nn.init, n, fn)


def _with_bands(model: SenCLIP, bands) -> SenCLIP:
    """Inflate ``model``'s image tower to ``bands`` by the rule of :func:`senclip.bands.needs_inflation`."""
    if bands is None:
        return model
    wanted = parse_bands(bands)
    if needs_inflation(model.image_tower.bands, wanted):
        kind = kind_of(model.image_tower)
        if kind.set_bands is None:
            raise SenclipError("--model-bands applies to clip-visual image towers only")
        kind.set_bands(model.image_tower, wanted)
    return model


def from_open_clip(name: str, clip: nn.Module, tokenizer, pretrained: str | None = None) -> SenCLIP:
    """Split an open_clip model into senclip's image and text towers."""
    cfg = open_clip.get_model_preprocess_cfg(clip)
    size = cfg.get("size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    preprocess = Preprocess(size, cfg.get("mean", open_clip.OPENAI_DATASET_MEAN),
                            cfg.get("std", open_clip.OPENAI_DATASET_STD))
    visual = clip.visual
    clip.visual = nn.Identity()
    image_tower = ImageTower(visual, preprocess, RGB_BANDS)
    logit_scale = getattr(clip, "logit_scale", torch.tensor(100.0).log())
    return SenCLIP(name, image_tower, TextTower(clip, tokenizer), logit_scale.detach(), pretrained)


def convert_file(src: str | Path, out: str | Path, name: str | None = None, layout: str = "auto",
                 preprocess=None) -> dict:
    """Write the weights ``src`` (any layout, or a registry name) as a senclip file ``out``.

    CLIP weights become a ``full`` file (both towers). A satellite tower alone (a TimeSenCLIP
    checkpoint, or the registry name of one) becomes an ``image`` file, the tower checkpoint
    ``senclip export`` writes and ``--checkpoint`` loads.

    Returns a summary: ``out``, ``arch``, ``preprocess`` (profile name), ``tower`` (the tower kind
    of a tower file, else ``None``).
    """
    from senclip.models.checkpoint import save_model
    from senclip.models.convert import _read_config, weights_path
    from senclip.models.registry import get_entry, resolve_checkpoint

    source = weights_path(str(src))  # a file as it is, a downloaded Hub folder's weights file
    entry = get_entry(str(src)) if not source.exists() else None
    if entry is not None and entry.tower:
        src = resolve_checkpoint(str(src))
    try:
        model = create_model(name, pretrained=str(source) if source.exists() else str(src),
                             preprocess=preprocess, layout=layout)
    except TowerWeights as tower_file:
        return _convert_tower(tower_file.weights, out, name, preprocess)
    config = _read_config(source.with_name("config.json")) if source.suffix == ".safetensors" else {}
    extra = {"converted": {"source": str(source.resolve()) if source.exists() else str(src),
                           "layout": layout, "weights": model.pretrained,
                           **({"config.json": config} if config else {})}}
    path = save_model(model, out, kind="full", extra=extra)
    pre = getattr(model.image_tower, "preprocess", None)
    return {"out": str(path), "arch": model.name, "preprocess": getattr(pre, "profile", None), "tower": None}


def _convert_tower(weights, out: str | Path, name: str | None, preprocess) -> dict:
    """``senclip convert`` of a TimeSenCLIP checkpoint: the tower as a senclip ``image`` file, paired in
    its header with the base CLIP the published checkpoints use (another base is chosen when loading)."""
    from senclip.models.checkpoint import save_tower
    from senclip.models.timesen_checkpoints import tower_from_state
    from senclip.models.timesen_reference import PUBLISHED_BASE

    if name is not None or preprocess is not None:
        flag = "--model" if name is not None else "--preprocess"
        raise SenclipError(f"{flag} does not apply to {weights.path}, a TimeSenCLIP tower: it takes series, "
                           "and its base CLIP is chosen when it is loaded (--model ARCH --pretrained P "
                           "--checkpoint TOWER.safetensors)")
    tower = tower_from_state(weights.state, source=str(weights.path)).eval()
    arch, base = PUBLISHED_BASE
    extra = {"converted": {"source": str(weights.path.resolve()), "layout": weights.layout,
                           "encoder_layout": weights.config.get("encoder_layout")}}
    path = save_tower(tower, out, arch, base, extra)
    return {"out": str(path), "arch": arch, "base_pretrained": base, "preprocess": None,
            "tower": tower.tower_kind}
