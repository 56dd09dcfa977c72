"""``clip-visual``: the base CLIP model's open_clip visual trunk, on image chips.

Trained from the base model's trunk (inflated to other bands, early blocks frozen on request);
a checkpoint holds a trunk of the base architecture, so loading copies the base trunk and
reshapes it to the recorded bands before the weights are read.
"""

from __future__ import annotations

from senclip.models.kinds import TowerKind, register_tower


def _set_bands(tower, bands) -> None:
    from senclip.models.multiband import set_input_bands

    set_input_bands(tower, tuple(bands))


def _with_bands(tower, bands):
    if tuple(bands) != tuple(tower.bands):
        _set_bands(tower, bands)
    return tower


def _build(model_cfg, base_model, target_dim: int):
    from senclip.models.head import attach_head
    from senclip.models.towers import freeze_early_blocks

    tower = _with_bands(base_model.image_tower, model_cfg.bands)
    attach_head(tower, model_cfg, target_dim)
    freeze_early_blocks(tower, model_cfg.freeze_blocks)
    return tower


def _load(model, header: dict):
    import copy

    tower = copy.deepcopy(model.image_tower)
    return _with_bands(tower, header.get("bands") or tower.bands)


KIND = register_tower(TowerKind("clip-visual", input="image", build=_build, load=_load, set_bands=_set_bands))
