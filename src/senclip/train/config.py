"""Training configuration: typed dataclasses, YAML loading and dotted overrides.

A config has six sections (``model``, ``data``, ``loss``, ``optim``,
``trainer``, ``eval``); every field can be set in YAML, with ``--set
section.field=value`` or with the dotted flag ``--section.field value`` on
the command line. Values are converted to the field's type (``1e-4`` is a
float even though YAML reads it as a string; ``null``/``none`` give ``None``
where allowed; lists accept ``[a, b]`` or ``a,b``).

This module imports no torch or Lightning, so ``senclip train --help`` stays
fast.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senclip.bands import RGB_BANDS
from senclip.errors import SenclipError
from senclip.outputs import write_text


def _opt(default: Any, help: str, choices: tuple | None = None) -> Any:
    meta = {"help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


class _TowerKinds:
    """The ``model.tower`` choices: the tower registry's kinds, read when asked (without torch)."""

    def __iter__(self):
        from senclip.models.kinds import tower_kinds
        return iter(tower_kinds())


@dataclass
class ModelConfig:
    """The satellite tower, its head and the ground-view pooling."""

    name: str = _opt("senclip-tiny-vit", "open_clip architecture of the base CLIP")
    pretrained: str | None = _opt(None, 
                                  "base weights: open_clip tag, hf-hub: id or local file (null: random)")
    tower: str = _opt("clip-visual", "satellite tower kind", _TowerKinds())
    tower_options: dict = _opt({}, "extra options for the tower builder (e.g. the time-series tower)")  # noqa: RUF009
    bands: list = _opt(list(RGB_BANDS), "input bands of the satellite tower")  # noqa: RUF009
    preprocess: str | None = _opt(None, "preprocessing profile of the image tower: openai, senclip, senclip-train "
                                        "or a per-band statistics file (null: the base weights' own)")
    freeze_blocks: int = _opt(0, 
                               "freeze the stem and the first N blocks/stages of the trunk (-1: whole trunk)")
    head: bool = _opt(True, "put a head (model.head_kind) on the trunk; false: none (trunk width must "
                            "equal the target width)")
    head_kind: str = _opt(
        "residual", "residual: the reference head LayerNorm(x + P x + Dropout(F GELU(P x))), P, F square "
        "and zero-initialised, so step 0 outputs LayerNorm(base embedding); needs trunk width = target "
        "width. projecting: LayerNorm(z + Dropout(W2 GELU(z))), z = W1 x, random init, any widths (the "
        "only head before; checkpoints without head_kind hold it)", ("residual", "projecting"))
    head_dropout: float = _opt(0.1, "dropout inside the head")
    head_at_inference: str = _opt(
        "keep", "keep: export and validate zero-shot with the trained head; drop: train with it, export "
        "the trunk alone, a plain CLIP tower (the reference)", ("keep", "drop"))
    target_dim: int = _opt(0, "dimension of the ground embeddings (0: the base model's embedding size)")
    pooling: str = _opt(
        "avg", "aggregation of the ground views: avg, attn-image, attn-dim (senclip's: views "
        "L2-normalised, scorers start at zero = avg); avgpool, attpool_perimage, attpool_perdim (the "
        "reference's: raw views, Linear(D,1) / Linear(D,D) without bias, default init, then "
        "model.pool_out)", ("avg", "attn-image", "attn-dim", "avgpool", "attpool_perimage", "attpool_perdim"))
    pool_out: str = _opt("sum", "how attpool_perimage / attpool_perdim combine the weighted views (the "
                                "reference's default: sum; sum and mean give the same normalised target)",
                         ("sum", "mean", "max"))
    ground_views: list = _opt(["N", "E", "S", "W", "P"],  # noqa: RUF009
                              "ground views pooled into each target, among N, E, S, W, P (the reference: "
                              "N, E, S, W)")


@dataclass
class DataConfig:
    """Paired training data (manifest + ground-embedding cache)."""

    manifest: str | None = _opt(None, "training manifest (CSV/Parquet): sat_path chips, or series_path "
                                      "time series for model.tower timesen")
    cache: str | None = _opt(None, "ground-embedding cache directory for the manifest")
    val_manifest: str | None = _opt(None, 
                                    "validation manifest (default: hold out val_fraction of the train one)")
    val_cache: str | None = _opt(None, "cache for val_manifest (default: the training cache)")
    val_fraction: float = _opt(0.05, "fraction of the training manifest held out when no val_manifest")
    val_max: int = _opt(2000, "at most this many validation points (0: all)")
    skip_bad: bool = _opt(False, "drop bad manifest rows (reported) instead of stopping")
    batch_size: int = _opt(32, "points per batch and device")
    workers: int = _opt(2, "data-loading processes")
    augment: bool = _opt(False, "random flips and 90-degree rotations of the chips (seeded by step)")


@dataclass
class LossConfig:
    """Loss, temperature and queue."""

    name: str = _opt(
        "infonce", "loss: infonce (symmetric, in-batch negatives + queue), cosine, or queue-ce (the "
        "reference: one-directional cross-entropy over [positive | queue], label 0, no in-batch "
        "negatives; needs queue_size > 0)", ("infonce", "cosine", "queue-ce"))
    temperature: float = _opt(0.07, "initial temperature (the reference code: 0.07)")
    learn_temperature: bool = _opt(True, "train the temperature (queue-ce: its log-scale value is clamped "
                                         "to [0, ln 100], as the reference does)")
    queue_size: int = _opt(0, "FIFO queue of past targets used as extra negatives (0: off; the reference: "
                              "512)")
    queue_init: str = _opt("empty", "empty: the queue fills with past targets; random: it starts full of "
                                    "random unit vectors (the reference)", ("empty", "random"))
    cosine_weight: float = _opt(0.0, "add this weight times the cosine loss to InfoNCE")


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay, or the references' StepLR / CosineAnnealingLR."""

    lr: float = _opt(5e-6, "peak learning rate (senclip's default; the reference code: 1e-5)")
    weight_decay: float = _opt(0.1, "AdamW weight decay (the reference: 1e-2)")
    decay_all: bool = _opt(False, "apply weight_decay to every trained parameter (the reference); false: "
                                  "not to biases, norms, embeddings and the temperature")
    betas: list = _opt([0.9, 0.98], "AdamW betas (the reference: torch's default 0.9, 0.999)")  # noqa: RUF009
    eps: float = _opt(1e-6, "AdamW epsilon (the reference: torch's default 1e-8)")
    scheduler: str = _opt("cosine", "cosine: linear warm-up, then cosine decay to min_lr_ratio x lr; "
                                    "step: StepLR, lr x step_gamma every step_size step_units (the SenCLIP "
                                    "reference); annealing: CosineAnnealingLR(T_max=t_max) in step_units, "
                                    "lr down to 0 and back up every 2 t_max (the TimeSenCLIP reference)",
                          ("cosine", "step", "annealing"))
    warmup_steps: int = _opt(100, "linear warm-up steps (cosine scheduler only)")
    min_lr_ratio: float = _opt(0.0, "final learning rate as a fraction of lr (cosine scheduler)")
    step_size: int = _opt(10, "step scheduler: decay every this many step_units (the reference: 10)")
    step_gamma: float = _opt(0.95, "step scheduler: multiply lr by this (the reference: 0.95)")
    step_unit: str = _opt("epoch", "step / annealing schedulers count epochs (the references: Lightning's "
                                   "default for a scheduler returned without interval) or optimizer steps",
                          ("epoch", "step"))
    t_max: int = _opt(10, "annealing scheduler: T_max of CosineAnnealingLR in step_units (TimeSenCLIP: 10)")
    grad_clip: float = _opt(1.0, "clip the gradient norm to this value (0: off; the reference: off)")


@dataclass
class TrainerConfig:
    """Lightning trainer, checkpoints and logging."""

    out: str = _opt("runs/senclip", "run directory (checkpoints/, config.yaml, metrics.csv)")
    max_steps: int = _opt(-1, "stop after this many optimizer steps (-1: use max_epochs)")
    max_epochs: int = _opt(10, "stop after this many epochs")
    seed: int = _opt(0, "seed of everything (weights, data order, dropout, augmentation)")
    precision: str = _opt("auto", "auto, fp32, bf16, fp16 (auto: bf16 AMP on GPUs and CPUs with native bf16, "
                                   "fp16 AMP on older GPUs, fp32 elsewhere) or a Lightning precision")
    accelerator: str = _opt("auto", "auto, cpu, gpu, …")
    devices: str = _opt("auto", "devices per node: auto, a count, or a list like 0,1")
    num_nodes: int = _opt(1, "number of nodes (multi-node DDP)")
    strategy: str = _opt("auto", "auto, ddp, ddp_spawn, … (DDP is used when devices > 1)")
    val_every_n_steps: int = _opt(0, "validate every N steps (0: once per epoch)")
    ckpt_every_n_steps: int = _opt(200, "write a checkpoint every N steps (plus last.ckpt)")
    log_every_n_steps: int = _opt(10, "log training metrics every N steps")
    accumulate: int = _opt(1, "accumulate gradients over this many batches")
    deterministic: bool = _opt(False, "use deterministic algorithms (slower; for exact resumes)")


@dataclass
class EvalConfig:
    """Validation metrics."""

    retrieval_ks: list = _opt([1, 5, 10], "k values of retrieval Recall@k")  # noqa: RUF009
    zeroshot_dataset: str | None = _opt(None, "labelled dataset for zero-shot validation (e.g. eurosat)")
    zeroshot_root: str | None = _opt(None, "root folder of the zero-shot dataset")
    zeroshot_prompts: str = _opt("ground", "prompt spec for zero-shot validation")
    zeroshot_max: int = _opt(1000, "at most this many zero-shot images (0: all; a fixed seeded subset)")


@dataclass
class TrainConfig:
    """Everything ``senclip train`` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _section_fields(section: str) -> dict[str, dataclasses.Field]:
    cls = {f.name: f for f in dataclasses.fields(TrainConfig)}[section].default_factory
    return {f.name: f for f in dataclasses.fields(cls)}


def option_fields() -> list[tuple[str, dataclasses.Field]]:
    """``("section.field", Field)`` for every option, in declaration order."""
    return [(f"{s}.{n}", f) for s in SECTIONS for n, f in _section_fields(s).items()]


def _field_type(section: str, name: str) -> Any:
    cls = type(getattr(TrainConfig(), section))
    return typing.get_type_hints(cls)[name]


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a command line string) to ``typ``."""
    args = typing.get_args(typ)
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "")):
            return None
        typ = next(a for a in args if a is not type(None))
    try:
        if typ is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if typ is float:
            return float(value)
        if typ is str:
            return str(value)
        if typ is list:
            return _as_list(value)
        if typ is dict:
            return _as_dict(value)
    except (TypeError, ValueError) as exc:
        raise SenclipError(f"option {key}: cannot read {value!r} as {getattr(typ, '__name__', typ)}") from exc
    return value


def _as_list(value: Any) -> list:
    import yaml

    if isinstance(value, str):
        text = value.strip()
        value = yaml.safe_load(text) if text.startswith("[") else [
            yaml.safe_load(v.strip()) for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(value)
    return list(value)


def _as_dict(value: Any) -> dict:
    import yaml

    if isinstance(value, str):
        value = yaml.safe_load(value) or {}
    if not isinstance(value, dict):
        raise ValueError(value)
    return dict(value)


def set_option(cfg: TrainConfig, key: str, value: Any) -> None:
    """Set ``section.field`` of ``cfg`` to ``value`` (converted; choices checked)."""
    section, _, name = key.partition(".")
    if section not in SECTIONS or name not in _section_fields(section):
        known = ", ".join(k for k, _ in option_fields())
        raise SenclipError(f"unknown option {key!r}; valid options: {known}")
    value = _coerce(value, _field_type(section, name), key)
    choices = _section_fields(section)[name].metadata.get("choices")
    if choices and value not in choices:
        raise SenclipError(f"option {key}: {value!r} is not one of {', '.join(choices)}")
    setattr(getattr(cfg, section), name, value)


def from_dict(raw: dict, source: str = "config") -> TrainConfig:
    """Build a config from nested dicts (unknown keys are errors)."""
    cfg = TrainConfig()
    if not isinstance(raw, dict):
        raise SenclipError(f"{source}: expected a mapping of sections ({', '.join(SECTIONS)})")
    for section, body in raw.items():
        if section not in SECTIONS:
            raise SenclipError(f"{source}: unknown section {section!r}; sections are {', '.join(SECTIONS)}")
        if not isinstance(body, dict):
            raise SenclipError(f"{source}: section {section!r} must be a mapping")
        for name, value in body.items():
            set_option(cfg, f"{section}.{name}", value)
    return cfg


LEGACY_OPTIONS = {"model": {"head_kind": "projecting"}}
"""Options whose default changed, with the value a stored config that lacks them meant.

A checkpoint's config is a full dump of the options its senclip version had;
one written before ``model.head_kind`` existed trained the projecting head.
Every other option added since defaults to the earlier behaviour.
"""


def upgrade_stored_config(raw: dict) -> dict:
    """A config stored in a checkpoint, with :data:`LEGACY_OPTIONS` filled in where it lacks them."""
    if not isinstance(raw, dict):
        return raw
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, values in LEGACY_OPTIONS.items():
        body = out.get(section)
        if isinstance(body, dict):
            for key, value in values.items():
                body.setdefault(key, value)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> TrainConfig:
    """Read a YAML config (or start from defaults) and apply ``overrides``.

    Args:
        path: YAML file with the sections above; ``None`` for the defaults.
        overrides: ``["optim.lr=1e-4", ...]`` or ``{"optim.lr": 1e-4}``.

    Raises:
        SenclipError: missing or unparsable file, unknown section/option,
            value of the wrong type or not among the choices.
    """
    import yaml

    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SenclipError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SenclipError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    cfg = from_dict(raw, str(path) if path else "config")
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides or []]
    for key, value in items:
        set_option(cfg, key, value)
    return cfg


def _split(override: str) -> tuple[str, str]:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise SenclipError(f"override {override!r} must look like section.field=value (e.g. optim.lr=1e-4)")
    return key.strip(), value.strip()


def dump_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write ``cfg`` as YAML (atomically)."""

    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
