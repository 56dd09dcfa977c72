"""Build the trainable satellite tower from a base CLIP model and the config.

``build_tower(model_cfg, base_model, target_dim)`` returns an image tower
(any module with ``forward(x, normalize=True)``, ``.head`` and ``.bands``)
whose head maps the trunk output to ``target_dim``. The tower kind comes
from ``model.tower``; each kind has a builder in :data:`TOWER_BUILDERS`
(``clip-visual`` here). Other kinds (the time-series tower) plug in with
:func:`register_tower` or by adding a branch to ``TOWER_BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from senclip.errors import SenclipError
from senclip.models.head import HeadConfig, ProjectionHead

TowerBuilder = Callable[..., nn.Module]


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


def _groups(visual: nn.Module) -> list[list[nn.Module | nn.Parameter]]:
    """The trunk split into [stem, block 1, block 2, …, rest] for freezing."""
    names = dict(visual.named_children())
    if "transformer" in names and hasattr(visual.transformer, "resblocks"):  # open_clip ViT
        stem = [m for n, m in names.items() if n in ("conv1", "ln_pre", "patch_dropout")]
        stem += [p for n, p in visual.named_parameters(recurse=False)
                 if n in ("class_embedding", "positional_embedding")]
        return [stem, *[[b] for b in visual.transformer.resblocks]]
    if "layer1" in names:  # open_clip ModifiedResNet
        stem = [m for n, m in names.items() if not n.startswith("layer") and n != "attnpool"]
        return [stem, *[[names[f"layer{i}"]] for i in range(1, 5) if f"layer{i}" in names]]
    raise SenclipError(f"freeze_blocks is not supported for a {type(visual).__name__} trunk; use 0 or -1")


def freeze_early_blocks(tower: nn.Module, n_blocks: int) -> int:
    """Freeze the stem and the first ``n_blocks`` blocks (-1: the whole trunk); returns #frozen tensors."""
    if n_blocks == 0:
        return 0
    visual = tower.visual
    if n_blocks < 0:
        params = list(visual.parameters())
    else:
        groups = _groups(visual)
        if n_blocks > len(groups) - 1:
            raise SenclipError(f"freeze_blocks={n_blocks} but the trunk has {len(groups) - 1} blocks")
        params = []
        for g in groups[: n_blocks + 1]:
            for item in g:
                params += [item] if isinstance(item, nn.Parameter) else list(item.parameters())
    for p in params:
        p.requires_grad_(False)
    return len(params)


def _attach_head(tower: nn.Module, model_cfg, target_dim: int) -> None:
    dim_in = trunk_output_dim(tower)
    if model_cfg.head:
        tower.head = ProjectionHead(HeadConfig(dim_in, target_dim, model_cfg.head_dropout))
    elif dim_in != target_dim:
        raise SenclipError(f"the trunk outputs {dim_in}-d features but the targets are {target_dim}-d; "
                           "set model.head: true")
    else:
        tower.head = nn.Identity()


def _build_clip_visual(model_cfg, base_model, target_dim: int) -> nn.Module:
    tower = base_model.image_tower
    bands = tuple(model_cfg.bands)
    if bands != tuple(tower.bands):
        from senclip.models.multiband import set_input_bands

        set_input_bands(tower, bands)
    _attach_head(tower, model_cfg, target_dim)
    freeze_early_blocks(tower, model_cfg.freeze_blocks)
    return tower


def _build_timesen(model_cfg, base_model, target_dim: int) -> nn.Module:
    """TimeSenCLIP tower; ``model.tower_options`` are ``TimeSenConfig`` fields."""
    from senclip.models.timesen import TimeSenConfig, TimeSenTower

    opts = {"embed_dim": target_dim, **model_cfg.tower_options, "bands": tuple(model_cfg.bands)}
    tower = TimeSenTower(TimeSenConfig.from_dict(opts))
    _attach_head(tower, model_cfg, target_dim)
    return tower


TOWER_BUILDERS: dict[str, TowerBuilder] = {"clip-visual": _build_clip_visual, "timesen": _build_timesen}
"""``model.tower`` kind -> ``builder(model_cfg, base_model, target_dim) -> tower``."""


def register_tower(kind: str, builder: TowerBuilder) -> None:
    """Add (or replace) the builder of tower kind ``kind``."""
    TOWER_BUILDERS[kind] = builder


def default_target_dim(base_model) -> int:
    """The embedding size of the base CLIP model (its text tower's output)."""
    clip = base_model.text_tower.clip
    proj = getattr(clip, "text_projection", None)
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[-1])
    if isinstance(proj, nn.Linear):
        return int(proj.out_features)
    return int(base_model.encode_text(["a"]).shape[-1])


def build_tower(model_cfg, base_model, target_dim: int | None = None) -> nn.Module:
    """The trainable satellite tower for ``model_cfg`` (installed as ``base_model.image_tower``).

    Args:
        model_cfg: :class:`senclip.train.config.ModelConfig`.
        base_model: the :class:`~senclip.models.SenCLIP` from ``create_model``.
        target_dim: ground-embedding size (default: ``model_cfg.target_dim`` or
            the base model's embedding size).
    """
    kind = model_cfg.tower
    if kind not in TOWER_BUILDERS:
        raise SenclipError(f"no builder for tower kind {kind!r}; known: {', '.join(TOWER_BUILDERS)} "
                           "(add one with senclip.train.towers.register_tower)")
    dim = target_dim or model_cfg.target_dim or default_target_dim(base_model)
    tower = TOWER_BUILDERS[kind](model_cfg, base_model, dim)
    base_model.image_tower = tower
    return tower
