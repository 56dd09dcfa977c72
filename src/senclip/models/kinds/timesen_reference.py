"""``timesen-reference``: the TimeSenCLIP encoder as published, on 12, 4 or 1 time steps.

Built from scratch (``model.tower_options`` are :class:`~senclip.models.timesen_reference.TimeSenRefConfig`
fields) or imported from a published checkpoint (``TimeSenCLIP_1x1.ckpt`` / ``.pt`` in any published
layout, :mod:`senclip.models.timesen_checkpoints`; by name, the registry entries ``timesenclip-1x1``
and ``timesenclip-1x1-pt``; ``senclip convert`` writes it as a senclip tower file); the header
records the config, so a senclip checkpoint fits any base model with a text embedding of its width.
"""

from __future__ import annotations

from senclip.models.kinds import TowerKind, register_tower


def _build(model_cfg, base_model, target_dim: int):
    from senclip.models.head import attach_head
    from senclip.models.timesen_reference import TimeSenRefConfig, TimeSenReferenceTower

    opts = {**model_cfg.tower_options, "bands": tuple(model_cfg.bands)}
    tower = TimeSenReferenceTower(TimeSenRefConfig.from_dict(opts))
    attach_head(tower, model_cfg, target_dim)
    return tower


def _count(model_cfg) -> int:
    from senclip.models.timesen_reference import TimeSenRefConfig, TimeSenReferenceTower, count_parameters

    opts = {**model_cfg.tower_options, "bands": tuple(model_cfg.bands)}
    return count_parameters(TimeSenReferenceTower(TimeSenRefConfig.from_dict(opts)))


def _load(model, header: dict):
    from senclip.models.timesen_reference import TimeSenRefConfig, TimeSenReferenceTower

    return TimeSenReferenceTower(TimeSenRefConfig.from_dict(header["tower_config"]))


def _import_file(path):
    """A tower from a published TimeSenCLIP ``.ckpt`` (``None``: not that layout)."""
    from pathlib import Path

    from senclip.models.timesen_checkpoints import UnreadableCheckpoint, read_checkpoint, tower_from_state

    try:
        _, match = read_checkpoint(path)  # near misses stop here, in one line
    except UnreadableCheckpoint:
        if Path(path).suffix.lower() in (".ckpt", ".pt", ".pth"):
            raise  # a torch file that cannot be read safely: say so, not "not a safetensors file"
        return None
    if match is None:
        return None
    return tower_from_state(match.state, source=str(path))


KIND = register_tower(TowerKind("timesen-reference", input="series", build=_build, load=_load,
                                config=lambda tower: tower.config.to_dict(), same_arch=False,
                                import_file=_import_file, count=_count))
