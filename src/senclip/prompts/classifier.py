"""Zero-shot text classifier: one ensembled, normalised text embedding per class.

For class ``c`` with prompts ``p_1..p_n``: ``w_c = normalize(mean_i normalize(T(p_i)))``
where ``T`` is the model's text tower. The result is cached in memory per
(model identity, prompt fingerprint), so evaluating many image batches, or
several commands in one process, encodes each prompt set once.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from senclip.errors import SenclipError

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
