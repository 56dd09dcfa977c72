"""The tower registry: each kind of satellite tower, declared once.

A tower kind (``clip-visual``: the open_clip visual trunk on image chips;
``timesen``: TimeSenCLIP's transformer on 12-month series) is one module of
this package that registers a :class:`TowerKind`. The training config's
``model.tower`` choices, training, the checkpoint loader, retrieval and
``map-pixels`` ask the registry; none of them tests a kind's name. Adding a
kind is adding one module here (plus its test); the package finds its modules
by listing them. Keep torch imports inside the module's functions: the
training config lists the kinds, and ``senclip --help`` must not pay for torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from senclip.errors import SenclipError


@dataclass(frozen=True)
class TowerKind:
    """Everything senclip needs to know about one kind of satellite tower.

    Attributes:
        name: ``model.tower`` in training configs, ``tower`` in checkpoint headers.
        input: ``"image"`` (``(B, C, H, W)`` chips) or ``"series"`` (``(B, 12, C)``
            month composites): picks the training and retrieval data and the map command.
        build: ``build(model_cfg, base_model, target_dim) -> tower``, trainable, head attached.
        load: ``load(model, header) -> tower`` shaped as a checkpoint header says
            (the loader then attaches the head and the weights).
        config: ``config(tower) -> dict | None``, the header's ``tower_config``.
        same_arch: a checkpoint fits only the base architecture it was trained from.
        set_bands: ``set_bands(tower, bands)`` changes the input bands in place (``None``: cannot).
        import_file: ``import_file(path) -> tower | None`` reads a checkpoint in a published
            layout other than senclip's (``None`` from it: not this kind's file).
        count: ``count(model_cfg) -> int``, the trunk's parameters (without a projection
            head) for a training config's ``model`` section, where that needs no base model.
    """

    name: str
    input: str
    build: Callable
    load: Callable
    config: Callable = lambda tower: None
    same_arch: bool = True
    set_bands: Callable | None = None
    import_file: Callable | None = None
    count: Callable | None = None

    def __post_init__(self) -> None:
        if self.input not in ("image", "series"):
            raise ValueError(f"tower kind {self.name!r}: input must be image or series, not {self.input!r}")


_KINDS: dict[str, TowerKind] = {}


def register_tower(kind: TowerKind) -> TowerKind:
    """Add (or replace) a tower kind; returns it."""
    _KINDS[kind.name] = kind
    return kind


def tower_kinds() -> list[str]:
    """Names of the registered kinds (importing this package's modules first)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return list(_KINDS)


def get_kind(name: str) -> TowerKind:
    """The kind called ``name``; :class:`SenclipError` if there is none."""
    if name not in tower_kinds():
        raise SenclipError(f"unknown tower kind {name!r}; known: {', '.join(_KINDS)}")
    return _KINDS[name]


def kind_of(tower) -> TowerKind:
    """The kind of a built tower: its class's ``tower_kind``, ``clip-visual`` if it has none."""
    return get_kind(getattr(tower, "tower_kind", "clip-visual"))


def import_tower_file(path):
    """``(kind, tower)`` from a checkpoint in a published third-party layout, or ``None``."""
    for name in tower_kinds():
        kind = _KINDS[name]
        if kind.import_file is not None:
            tower = kind.import_file(path)
            if tower is not None:
                return kind, tower
    return None


def set_time_steps(tower, steps: int) -> None:
    """Make a series tower embed 12-month input as ``steps`` time steps (12, 4 seasonal or 1 annual
    medians); :class:`SenclipError` if the tower cannot (it has no ``time_steps`` attribute)."""
    steps = int(steps)
    if steps not in (12, 4, 1):
        raise SenclipError(f"--time-steps must be 12, 4 or 1, not {steps}")
    if not hasattr(tower, "time_steps"):
        if steps == 12:  # the default: nothing to change, whatever the tower
            return
        raise SenclipError(f"the {kind_of(tower).name} tower cannot take {steps} time steps "
                           "(--time-steps needs a time-series tower)")
    tower.time_steps = steps


def set_series_normalisation(tower, rule: str | None) -> None:
    """Make a series tower normalise its input by ``rule`` (``--series-normalisation``; ``None``: keep
    the tower's own); :class:`SenclipError` if the tower has no such rules."""
    if rule is None:
        return
    if not hasattr(tower, "set_normalisation"):
        raise SenclipError(f"the {kind_of(tower).name} tower has no series normalisation rules "
                           "(--series-normalisation applies to the timesen-reference tower)")
    tower.set_normalisation(rule)


def build_tower(model_cfg, base_model, target_dim: int | None = None):
    """The trainable tower for a training config's ``model`` section, installed in ``base_model``.

    ``target_dim`` (ground-embedding size) defaults to ``model_cfg.target_dim``, else the base model's.
    """
    from senclip.models.model import text_embed_dim

    dim = target_dim or model_cfg.target_dim or text_embed_dim(base_model)
    base_model.image_tower = tower = get_kind(model_cfg.tower).build(model_cfg, base_model, dim)
    return tower
