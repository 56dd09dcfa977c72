"""Classifiers on image embeddings, and the zero-shot text classifier.

:class:`Classifier` is the interface every senclip classifier shares, in
scikit-learn's shape, so ``senclip map`` and the evaluations take any of them:
:class:`ZeroShotClassifier` (here: prompts are the lowest layer with a
classifier) and :class:`senclip.evaluate.fewshot.LinearClassifier` (fitted).

Zero-shot weights: for class ``c`` with prompts ``p_1..p_n``,
``w_c = normalize(mean_i normalize(T(p_i)))`` where ``T`` is the model's text
tower, cached in memory per (model identity, prompt fingerprint), so each
prompt set is encoded once per process.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from senclip.errors import SenclipError


class Classifier:
    """L2-normalised embeddings ``(N, D)`` (numpy or torch) → classes. Subclasses set ``classes``,
    ``model``/``info`` (kept in files), ``coef_`` ``(C, D)``/``intercept_`` ``(C,)`` of their scores, and
    implement ``decision_function``, ``predict_proba`` (``(N, C)``, also what calling it gives) and
    ``fingerprint`` (a map run resumes only with the same weights)."""

    @property
    def classes_(self) -> list[str]:
        return self.classes

    def predict(self, emb) -> np.ndarray:
        return np.asarray(self.decision_function(emb)).argmax(1)

    def __call__(self, emb) -> np.ndarray:
        return self.predict_proba(emb)

    def save(self, path: str | Path) -> Path:
        """The one classifier file: safetensors ``coef``/``intercept``, JSON header (classes, model, info)."""
        from safetensors.numpy import save_file

        path, meta = Path(path), {"classes": self.classes, "model": self.model, "info": self.info}
        from senclip.outputs import atomic_path, io_errors

        with atomic_path(path) as tmp, io_errors():
            # C order: safetensors 0.8 writes a Fortran-ordered array's memory as if it were C-ordered
            # (safetensors#825), and scikit-learn's coef_ can be Fortran-ordered
            save_file({"coef": np.ascontiguousarray(self.coef_, np.float32),
                       "intercept": np.ascontiguousarray(self.intercept_, np.float32)},
                      str(tmp), metadata={"senclip_classifier": json.dumps(meta)})
        return path


def read_classifier_file(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray, dict, dict]:
    """``(classes, coef, intercept, model, info)`` of a :meth:`Classifier.save` file (no code runs)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise SenclipError(f"classifier file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["senclip_classifier"])
        arrays = load_file(str(path))
    except (KeyError, OSError, ValueError, SafetensorError) as exc:
        raise SenclipError(f"{path}: not a senclip classifier file ({exc})") from exc
    return meta["classes"], arrays["coef"], arrays["intercept"], meta["model"], meta["info"]


class ZeroShotClassifier(Classifier):
    """``softmax(exp(logit_scale) * emb @ W.T)`` for text-classifier weights ``W`` ``(C, D)``."""

    def __init__(self, weights: torch.Tensor, logit_scale: float, classes: list[str]) -> None:
        if weights.shape[0] != len(classes):
            raise ValueError("one weight row per class is needed")
        self.weights = weights.detach().float().cpu()
        self.scale = float(np.exp(float(logit_scale)))
        self.classes, self.model, self.info = list(classes), {}, {"kind": "zeroshot"}
        self.coef_, self.intercept_ = self.scale * self.weights.numpy(), np.zeros(len(classes), np.float32)

    def decision_function(self, emb) -> torch.Tensor:
        return self.scale * torch.as_tensor(emb).float().cpu() @ self.weights.T

    def predict_proba(self, emb) -> np.ndarray:
        return torch.softmax(self.decision_function(emb), dim=-1).numpy()

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.weights.numpy().tobytes())
        h.update(repr((self.scale, self.classes)).encode())
        return h.hexdigest()


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""text tower -> {(model description json, prompt fingerprint): (C, D) tensor}.

Keyed weakly by the tower object itself (the ``id`` of a live object), so a
garbage-collected model never hands its entry to a new one with a reused id.
"""


def prompts_fingerprint(prompts: Mapping[str, Sequence[str]]) -> str:
    """SHA-256 hex digest of the prompts, class order and prompt order included.

    Two prompt dicts have the same fingerprint exactly when they would give
    the same classifier rows in the same order; use it in cache keys and
    result files.
    """
    canon = json.dumps([[str(c), [str(p) for p in ps]] for c, ps in prompts.items()], ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def text_classifier(model, prompts: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """Class weights for zero-shot classification.

    Args:
        model: a :class:`~senclip.models.SenCLIP` (anything with
            ``encode_text(list_of_str)`` returning L2-normalised embeddings,
            and optionally ``describe()`` and ``text_tower``).
        prompts: ``{class: [prompt, ...]}`` as returned by
            :func:`~senclip.prompts.load_prompts`; row order follows it.

    Returns:
        ``(C, D)`` float32 CPU tensor; row ``c`` is the renormalised mean of
        the normalised embeddings of class ``c``'s prompts. The tensor is
        shared by every caller with the same model and prompts: do not modify
        it in place (``.clone()`` first).

    Raises:
        SenclipError: no classes, or a class with no prompts.
    """
    _check_prompts(prompts)
    tower = getattr(model, "text_tower", model)
    key = (_model_identity(model), prompts_fingerprint(prompts))
    per_tower = _CACHE.get(tower)
    if per_tower is None:
        per_tower = {}
        _CACHE[tower] = per_tower
    if key not in per_tower:
        per_tower[key] = _encode_classes(model, prompts)
    return per_tower[key]


def clear_text_classifier_cache() -> None:
    """Forget every cached classifier (e.g. after changing text-tower weights in place)."""
    _CACHE.clear()


def _encode_classes(model, prompts: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """Encode all prompts in one call and average per class."""
    flat = [p for ps in prompts.values() for p in ps]
    with torch.no_grad():
        emb = model.encode_text(flat)
    emb = F.normalize(emb.detach().float().cpu(), dim=-1)
    rows, start = [], 0
    for ps in prompts.values():
        rows.append(emb[start:start + len(ps)].mean(dim=0))
        start += len(ps)
    return F.normalize(torch.stack(rows), dim=-1).contiguous()


def _model_identity(model) -> str:
    """JSON of ``model.describe()`` (empty when the model has none)."""
    describe = getattr(model, "describe", None)
    info = describe() if callable(describe) else {}
    return json.dumps(info, sort_keys=True, default=str)


def _check_prompts(prompts: Mapping[str, Sequence[str]]) -> None:
    if not prompts:
        raise SenclipError("no classes to build a text classifier for; the prompt set is empty")
    for cls, ps in prompts.items():
        if isinstance(ps, str):
            raise SenclipError(f"class {cls!r}: prompts must be a list of strings, not one string")
        if not ps:
            raise SenclipError(f"class {cls!r} has an empty prompt list; give it at least one prompt")
