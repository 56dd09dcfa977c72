"""Many scenes: one process, or spread over a Dask distributed cluster.

A :class:`MapJob` holds everything needed to map a scene, as plain data (it
is pickled to Dask workers): how to build the model and the classifier, and
the :class:`~senclip.mapping.mapper.MapOptions`. Each worker builds the
model once (cached per process) and maps its scenes with
:func:`~senclip.mapping.mapper.map_scene`, so every scene is resumable on its
own: rerunning the same command skips finished scenes and continues
interrupted ones.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from senclip.errors import SenclipError
from senclip.mapping.mapper import MapOptions, map_scene


@dataclass(frozen=True)
class ModelSpec:
    """How to build the model: ``--model/--pretrained/--checkpoint/--preprocess``, bands and device.

    ``bands``: band names the tower must take; :func:`~senclip.models.create_model` inflates it
    by the one rule of :func:`senclip.bands.needs_inflation`.
    """

    model: str
    pretrained: str | None = None
    checkpoint: str | None = None
    bands: tuple[str, ...] | None = None
    device: str = "cpu"
    preprocess: str | None = None
    precision: str = "fp32"

    def build(self):
        from senclip.models import create_model

        model = create_model(self.model, pretrained=self.pretrained, checkpoint=self.checkpoint,
                             device=self.device, bands=self.bands, preprocess=self.preprocess)
        model.set_precision(self.precision)
        return model


@dataclass(frozen=True)
class ClassifierSpec:
    """``--classes``/``--prompts`` (zero-shot) or ``--classifier`` (few-shot file)."""

    classes: str = "eurosat"
    prompts: str = "all"
    classifier: str | None = None

    def build(self, model):
        from senclip.mapping.classify import probe_classifier, zeroshot_classifier

        if self.classifier:
            return probe_classifier(self.classifier, model)
        return zeroshot_classifier(model, self.classes, self.prompts)


@dataclass(frozen=True)
class MapJob:
    """Everything needed to map scenes, as picklable data."""

    model: ModelSpec
    classifier: ClassifierSpec = field(default_factory=ClassifierSpec)
    options: MapOptions = field(default_factory=MapOptions)


_CACHE: dict[str, tuple] = {}
_LOCK = threading.Lock()


def build_job(job: MapJob) -> tuple:
    """(model, classifier) for ``job``, built once per process."""
    key = json.dumps([repr(job.model), repr(job.classifier)])
    with _LOCK:
        if key not in _CACHE:
            model = job.model.build()
            _CACHE[key] = (model, job.classifier.build(model))
        return _CACHE[key]


def map_one(job: MapJob, input_path: str, output: str) -> dict:
    """Map one scene; user errors are returned (``{"error": ...}``), not raised."""
    try:
        model, classifier = build_job(job)
        return map_scene(model, classifier, input_path, output, job.options)
    except SenclipError as exc:
        return {"input": input_path, "output": output, "error": str(exc)}


def read_input_list(path: str | Path) -> list[str]:
    """Scene paths/URLs, one per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise SenclipError(f"--inputs list {path} not found")
    items = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    items = [s for s in items if s and not s.startswith("#")]
    if not items:
        raise SenclipError(f"--inputs list {path} names no scene")
    return items


def output_names(inputs: list[str], out_dir: str | Path) -> list[str]:
    """``OUT_DIR/<input stem>.tif`` for each input; two inputs with one stem is an error."""
    out_dir = Path(out_dir)
    names = [out_dir / (Path(s.split("?")[0].rstrip("/")).stem + ".tif") for s in inputs]
    seen: dict[Path, str] = {}
    for src, name in zip(inputs, names, strict=True):
        if name in seen:
            raise SenclipError(f"{seen[name]} and {src} would both be written to {name}; rename one")
        seen[name] = src
    return [str(n) for n in names]


def map_many(job: MapJob, inputs: list[str], out_dir: str | Path, scheduler: str | None = None,
             progress: bool = True, overwrite: bool = False) -> list[dict]:
    """Map each scene into ``out_dir`` (finished scenes are skipped unless ``overwrite``).

    Args:
        job: the :class:`MapJob`.
        inputs: scene paths or URLs.
        out_dir: output folder (created if missing).
        scheduler: address of a running Dask scheduler (``tcp://host:8786``);
            ``None`` maps scenes one after another in this process.
        progress: show a per-scene bar.

    Returns:
        One summary per scene, in input order; failed scenes carry ``error``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = output_names(inputs, out_dir)
    todo = [(i, o) for i, o in zip(inputs, outputs, strict=True) if overwrite or not Path(o).exists()]
    done = {o: {"input": i, "output": o, "skipped": True} for i, o in zip(inputs, outputs, strict=True)
            if not overwrite and Path(o).exists()}
    if scheduler is None:
        for src, out in todo:
            done[out] = map_one(job, src, out)
    else:
        quiet = replace(job, options=replace(job.options, progress=False))
        for res in _map_dask(quiet, todo, scheduler, progress):
            done[res["output"]] = res
    return [done[o] for o in outputs]


def _map_dask(job: MapJob, todo: list[tuple[str, str]], scheduler: str, progress: bool):
    from senclip.cluster import run_on_cluster

    yield from run_on_cluster(map_one, [(job, src, out) for src, out in todo],
                              [f"senclip-map-{out}" for _, out in todo], scheduler, progress, unit="scene")
