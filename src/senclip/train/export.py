"""Export a training checkpoint as a senclip safetensors model (tower + trained head).

The exported file holds the trained satellite tower: trunk, band list,
normalisation and the head that was trained, unless the run was trained
with ``model.head_at_inference: drop`` (the reference): the head is then left
out and the tower is the trained trunk alone, a plain CLIP image tower. It
is paired with the frozen text tower of the base model: ``kind="image"``
records the base weights (``model.pretrained``) in the header, so
``create_model(name, pretrained=base, checkpoint=file)`` or
``create_model(name, pretrained=file)`` rebuild the pair; ``kind="full"``
also stores the text tower, which is needed when the base was randomly
initialised (nothing could rebuild it). ``kind="auto"`` picks ``full`` for
a random base and ``image`` otherwise.
"""

from __future__ import annotations

from pathlib import Path

from senclip.errors import SenclipError
from senclip.models.kinds import build_tower
from senclip.train.module import load_module_state, tower_state

KINDS = ("auto", "image", "full")


def model_from_checkpoint(ckpt_path: str | Path):
    """Rebuild the :class:`~senclip.models.SenCLIP` of a training checkpoint (eval mode), as used at
    inference: with the trained head, or without it when ``model.head_at_inference`` is ``drop``.

    Returns:
        ``(model, config, checkpoint)``.
    """
    from senclip.models import create_model

    cfg, state, ckpt = load_module_state(ckpt_path)
    base = create_model(cfg.model.name, pretrained=cfg.model.pretrained, preprocess=cfg.model.preprocess)
    tower = build_tower(cfg.model, base)
    try:
        tower.load_state_dict(tower_state(state), strict=True)
    except RuntimeError as exc:
        raise SenclipError(f"{ckpt_path}: tower weights do not fit the config's architecture "
                           f"({str(exc).splitlines()[0]})") from exc
    if cfg.model.head_at_inference == "drop":
        from senclip.models.head import drop_head

        drop_head(tower)
    return base.eval(), cfg, ckpt


def export_checkpoint(ckpt_path: str | Path, out: str | Path, kind: str = "auto") -> dict:
    """Write the trained tower of ``ckpt_path`` to ``out`` (atomically); returns a summary."""
    from senclip.models.checkpoint import save_model

    if kind not in KINDS:
        raise SenclipError(f"unknown export kind {kind!r}; choose {', '.join(KINDS)}")
    model, cfg, ckpt = model_from_checkpoint(ckpt_path)
    if kind == "auto":
        kind = "full" if cfg.model.pretrained is None else "image"
    extra = {"training": {"config": cfg.to_dict(), "global_step": int(ckpt.get("global_step", -1)),
                          "source": str(Path(ckpt_path).resolve())}}
    path = save_model(model, out, kind=kind, extra=extra)
    return {"out": str(path), "kind": kind, "arch": cfg.model.name, "base_pretrained": cfg.model.pretrained,
            "global_step": extra["training"]["global_step"]}


def export_base(name: str, out: str | Path, pretrained: str | None = None, seed: int = 0) -> dict:
    """Write a base CLIP (both towers) as a ``full`` senclip file, seeded when random.

    A randomly initialised tiny model has no tag to rebuild it from; saving it
    once gives proxy-pairs, training and zero-shot the same frozen text tower.
    """
    import torch

    from senclip.models import create_model
    from senclip.models.checkpoint import save_model

    torch.manual_seed(seed)
    model = create_model(name, pretrained=pretrained)
    path = save_model(model, out, kind="full", extra={"base": {"seed": seed, "pretrained": pretrained}})
    return {"out": str(path), "kind": "full", "arch": name, "base_pretrained": pretrained, "seed": seed}
