"""senclip checkpoints: safetensors files with a JSON header.

Two kinds, told apart by ``metadata["kind"]``:

``full``
    both towers (``image.*`` and ``text.*`` tensors); loads on its own.
``image``
    the image tower only (``image.*``): the trained satellite trunk, its
    band list and normalisation, and its projection head. It is paired with
    the frozen text tower of ``base_model``/``base_pretrained`` recorded in
    the header (or given by the caller), which is what ``senclip export``
    writes.

The header (safetensors ``__metadata__["senclip"]``) is JSON::

    {"format_version": 1, "kind": "image", "tower": "clip-visual",
     "arch": "ViT-B-32", "base_pretrained": "openai",
     "bands": ["B04", "B03", "B02"],
     "head": {"dim_in": 512, "dim_out": 512, "dropout": 0.1, "kind": "residual"} | null,
     "tower_config": {...},
     "preprocess": {"name": "senclip", "interpolation": "bicubic", ...} | null}

``head`` is the trained head (:mod:`senclip.models.head`); one without
``kind`` (written before the residual head existed) is a projecting head.
``null``: no head (a plain CLIP tower, or one trained with
``model.head_at_inference: drop``).
``preprocess`` holds the settings of the tower's preprocessing profile
(:mod:`senclip.models.preprocess`); its per-band statistics are the
``image.preprocess.mean``/``std`` tensors.

Nothing in a checkpoint is executed: tensors are read with safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from senclip.errors import SenclipError
from senclip.models.head import Head, build_head
from senclip.models.kinds import get_kind, kind_of
from senclip.outputs import atomic_path, io_errors

FORMAT_VERSION = 1
_KEY = "senclip"


def read_metadata(path: str | Path) -> dict | None:
    """The senclip header of a safetensors file, or ``None`` if it has none."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise SenclipError(f"{path}: not a readable safetensors file ({exc})") from exc
    if _KEY not in meta:
        return None
    return json.loads(meta[_KEY])


def tower_metadata(tower, arch: str, base_pretrained: str | None) -> dict:
    """The header of ``tower`` paired with the base CLIP ``arch`` / ``base_pretrained``."""
    kind = kind_of(tower)
    head = tower.head if isinstance(tower.head, Head) else None
    return {
        "format_version": FORMAT_VERSION,
        "tower": kind.name,
        "arch": arch,
        "base_pretrained": base_pretrained,
        "bands": list(tower.bands),
        "head": head.config.to_dict() if head is not None else None,
        "tower_config": kind.config(tower),
        "preprocess": _preprocess_settings(tower),
    }


def _preprocess_settings(tower) -> dict | None:
    """The tower's preprocessing settings (profile, interpolation, …); its statistics are tensors."""
    from senclip.models.towers import Preprocess

    pre = getattr(tower, "preprocess", None)
    return pre.settings() if isinstance(pre, Preprocess) else None


def _restore_preprocess(tower, meta: dict, path: Path) -> None:
    """Apply a header's preprocessing settings; a header without them (older files) gets the defaults."""
    from senclip.models.preprocess import DEFAULT_SETTINGS, check_settings
    from senclip.models.towers import Preprocess

    pre = getattr(tower, "preprocess", None)
    if isinstance(pre, Preprocess):
        pre.configure(**check_settings(meta.get("preprocess") or DEFAULT_SETTINGS, str(path)))


def save_model(model, path: str | Path, kind: str = "image", extra: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (atomically) as a senclip safetensors file.

    Args:
        model: a :class:`~senclip.models.factory.SenCLIP`.
        path: output file, conventionally ``*.safetensors``.
        kind: ``"image"`` (image tower only) or ``"full"`` (both towers).
        extra: additional JSON-able facts to store in the header (e.g. the
            training config).
    """
    if kind not in ("image", "full"):
        raise ValueError(f"kind must be 'image' or 'full', not {kind!r}")
    text = model.text_tower.clip.state_dict() if kind == "full" else {}
    return save_tower(model.image_tower, path, model.name, model.pretrained, extra, text=text)


def save_tower(tower, path: str | Path, arch: str, base_pretrained: str | None = None,
               extra: dict | None = None, text: dict | None = None) -> Path:
    """Write a satellite ``tower`` to ``path`` (atomically): an ``image`` checkpoint paired with the
    base CLIP ``arch`` / ``base_pretrained``, or ``full`` when ``text`` (a text tower's state) is given."""
    meta = tower_metadata(tower, arch, base_pretrained) | {"kind": "full" if text else "image"}
    if extra:
        meta["extra"] = extra
    tensors = {f"image.{k}": v for k, v in tower.state_dict().items()}
    tensors |= {f"text.{k}": v for k, v in (text or {}).items()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _dedupe_shared(tensors)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, io_errors():
        save_file(tensors, str(tmp), metadata={_KEY: json.dumps(meta)})
    return path


def _dedupe_shared(tensors: dict[str, torch.Tensor]) -> None:
    """safetensors refuses tensors that share memory; give each its own copy."""
    seen: set[int] = set()
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            tensors[k] = v.clone()
        seen.add(ptr)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise SenclipError(f"{path}: corrupt or unreadable checkpoint ({exc})") from exc


def load_image_tower(model, path: str | Path) -> None:
    """Replace ``model.image_tower`` with the one stored in ``path`` (in place)."""
    path = Path(path)
    if not path.is_file():
        raise SenclipError(f"checkpoint not found: {path}")
    if path.suffix.lower() != ".safetensors" and _load_published_tower(model, path):
        return
    try:
        meta = read_metadata(path)
    except SenclipError as exc:
        if path.suffix.lower() == ".safetensors":
            raise
        raise SenclipError(f"{path}: not a tower checkpoint (a senclip .safetensors from `senclip export` "
                           "or `senclip convert`, or a TimeSenCLIP .ckpt); CLIP weights go to --pretrained"
                           ) from exc
    if meta is None:
        raise SenclipError(f"{path}: not a senclip checkpoint (no '{_KEY}' header); "
                           "pass open_clip/OpenAI weights with --pretrained instead")
    kind = get_kind(meta.get("tower", "clip-visual"))
    if kind.same_arch and meta["arch"] != model.name:
        raise SenclipError(
            f"{path}: checkpoint was trained from architecture {meta['arch']}, "
            f"but the model is {model.name}; pass --model {meta['arch']}"
        )
    tower = kind.load(model, meta)
    head_cfg = meta.get("head")
    tower.head = build_head(head_cfg) if head_cfg else nn.Identity()  # no "kind": projecting
    state = {k[len("image."):]: v for k, v in _load_tensors(path).items() if k.startswith("image.")}
    try:
        tower.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SenclipError(f"{path}: weights do not fit the architecture: "
                           f"{str(exc).splitlines()[0]}") from exc
    _restore_preprocess(tower, meta, path)
    model.image_tower = tower.to(model.device)
    model.checkpoint = str(path)


def _load_published_tower(model, path: Path) -> bool:
    """Install a tower from a third-party published layout a tower kind recognises (see
    :func:`~senclip.models.kinds.import_tower_file`); ``False`` if none does."""
    from senclip.models.kinds import import_tower_file
    from senclip.models.model import text_embed_dim

    found = import_tower_file(path)
    if found is None:
        return False
    _, tower = found
    dim, text_dim = int(getattr(tower, "embed_dim", 0)), text_embed_dim(model)
    if dim != text_dim:
        raise SenclipError(f"{path}: the tower outputs {dim}-d embeddings but the text tower of "
                           f"{model.name} gives {text_dim}-d; pick a base model of that width")
    model.image_tower = tower.to(model.device).train(model.training)
    model.checkpoint = str(path)
    return True


def load_text_tower(model, path: str | Path) -> None:
    """Load the text tower (and logit scale) of a ``full`` checkpoint into ``model`` (in place)."""
    state = _load_tensors(Path(path))
    text = {k[len("text."):]: v for k, v in state.items() if k.startswith("text.")}
    model.text_tower.clip.load_state_dict(text, strict=True)
    if "logit_scale" in text:
        model.logit_scale.copy_(text["logit_scale"].reshape(()))
    model.pretrained = str(path)
