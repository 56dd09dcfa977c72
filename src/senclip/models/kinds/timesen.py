"""``timesen``: TimeSenCLIP's transformer over one pixel's 12 calendar-month composites.

Built from scratch (``model.tower_options`` are :class:`~senclip.models.timesen.TimeSenConfig`
fields); the header records that config, so a checkpoint fits any base model with the same
text embedding size.
"""

from __future__ import annotations

from senclip.models.kinds import TowerKind, register_tower


def _build(model_cfg, base_model, target_dim: int):
    from senclip.models.head import attach_head
    from senclip.models.timesen import TimeSenConfig, TimeSenTower

    opts = {"embed_dim": target_dim, **model_cfg.tower_options, "bands": tuple(model_cfg.bands)}
    tower = TimeSenTower(TimeSenConfig.from_dict(opts))
    attach_head(tower, model_cfg, target_dim)
    return tower


def _count(model_cfg) -> int:
    from senclip.models.timesen import TimeSenConfig, TimeSenTower, count_parameters

    opts = {"embed_dim": model_cfg.target_dim or 512, **model_cfg.tower_options,
            "bands": tuple(model_cfg.bands)}
    return count_parameters(TimeSenTower(TimeSenConfig.from_dict(opts)))


def _load(model, header: dict):
    from senclip.models.timesen import TimeSenConfig, TimeSenTower

    return TimeSenTower(TimeSenConfig.from_dict(header["tower_config"]))


KIND = register_tower(TowerKind("timesen", input="series", build=_build, load=_load,
                                config=lambda tower: tower.config.to_dict(), same_arch=False, count=_count))
