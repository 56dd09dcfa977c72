"""Per-tile classifiers for mapping: zero-shot prompts or a fitted few-shot probe.

Both map L2-normalised image embeddings ``(N, D)`` to class probabilities
``(N, C)``:

* :class:`ZeroShotClassifier`: ``softmax(exp(logit_scale) * emb @ W.T)`` with
  ``W`` the text classifier of a prompt set
  (:func:`senclip.prompts.text_classifier`);
* :class:`ProbeClassifier`: a linear classifier file written by ``senclip
  fewshot`` (:func:`senclip.evaluate.fewshot.load_linear_classifier`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from senclip.errors import SenclipError

BUILTIN_CLASS_SETS = ("eurosat", "bigearthnet", "lucas")


class ZeroShotClassifier:
    """Zero-shot scores from text-classifier weights.

    Args:
        weights: ``(C, D)`` normalised class embeddings.
        logit_scale: CLIP's log temperature (``exp`` is applied here).
        classes: class names, one per row of ``weights``.
    """

    kind = "zeroshot"

    def __init__(self, weights: torch.Tensor, logit_scale: float, classes: list[str]) -> None:
        if weights.shape[0] != len(classes):
            raise ValueError("one weight row per class is needed")
        self.weights = weights.detach().float().cpu()
        self.scale = float(np.exp(float(logit_scale)))
        self.classes = list(classes)

    def __call__(self, emb: torch.Tensor) -> np.ndarray:
        logits = self.scale * emb.float().cpu() @ self.weights.T
        return torch.softmax(logits, dim=-1).numpy()

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.weights.numpy().tobytes())
        h.update(repr((self.scale, self.classes)).encode())
        return h.hexdigest()


class ProbeClassifier:
    """A fitted few-shot linear classifier (``predict_proba`` on embeddings)."""

    kind = "fewshot"

    def __init__(self, clf) -> None:
        self.clf = clf
        self.classes = [str(c) for c in clf.classes]

    def __call__(self, emb: torch.Tensor) -> np.ndarray:
        return np.asarray(self.clf.predict_proba(emb.float().cpu().numpy()), dtype=np.float32)

    def fingerprint(self) -> str:
        h = hashlib.sha256(np.asarray(self.clf.coef_, np.float32).tobytes())
        h.update(np.asarray(self.clf.intercept_, np.float32).tobytes())
        h.update(repr(self.classes).encode())
        return h.hexdigest()


def _class_list(classes: str) -> tuple[list[str], str | None]:
    """``--classes`` → (class names, prompt file or dataset for prompts)."""
    from senclip.prompts import class_info

    if classes.lower() in BUILTIN_CLASS_SETS:
        return list(class_info(classes.lower())), None
    path = Path(classes).expanduser()
    if not path.is_file():
        raise SenclipError(f"--classes {classes}: not a built-in class set ({', '.join(BUILTIN_CLASS_SETS)}) "
                           "and no such file")
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        from senclip.prompts import read_prompt_file

        return list(read_prompt_file(path).classes), str(path)
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not names:
        raise SenclipError(f"class list {path} is empty; write one class name per line")
    return names, None


def zeroshot_classifier(model, classes: str = "eurosat", prompts: str = "all") -> ZeroShotClassifier:
    """Build the zero-shot classifier of ``--classes``/``--prompts``.

    Args:
        model: a :class:`~senclip.models.SenCLIP`.
        classes: ``eurosat``, ``bigearthnet``, ``lucas`` (built-in class sets
            with built-in prompts), a YAML/JSON prompt file (its classes and
            prompts), or a text file with one class name per line.
        prompts: prompt spec as in ``senclip zeroshot``: a style of the
            built-in set (``generic``, ``aerial``, ``ground``, ``all``) or a
            prompt file (``PATH`` or ``PATH:style``). For a plain class list
            and a style name, the EuroSAT generic templates are filled with
            the class names.
    """
    from senclip.prompts import load_prompts, text_classifier
    from senclip.prompts.loading import builtin_prompt_file

    names, prompt_file = _class_list(classes)
    if classes.lower() in BUILTIN_CLASS_SETS:
        texts = load_prompts(prompts, names, classes.lower())
    elif prompt_file is not None:
        style = prompts if prompts in ("generic", "aerial", "ground") else None
        spec = f"{prompt_file}:{style}" if style else prompt_file
        texts = load_prompts(spec, names, "custom")
    elif Path(prompts.split(":")[0]).suffix.lower() in (".yaml", ".yml", ".json"):
        texts = load_prompts(prompts, names, "custom")
    else:
        templates = builtin_prompt_file("eurosat").generic
        texts = {c: [t.replace("{}", c) for t in templates] for c in names}
    weights = text_classifier(model, texts)
    return ZeroShotClassifier(weights, float(model.logit_scale), names)


def probe_classifier(path: str | Path, model=None) -> ProbeClassifier:
    """Load a few-shot classifier file and check it fits ``model``'s embeddings."""
    from senclip.evaluate.fewshot import load_linear_classifier

    clf = load_linear_classifier(path)
    if model is not None:
        arch = (clf.model or {}).get("model")
        if arch and arch != model.name:
            raise SenclipError(f"classifier {path} was fitted on {arch} embeddings but the model is "
                               f"{model.name}; pass the same --model/--checkpoint as for fewshot")
    return ProbeClassifier(clf)
