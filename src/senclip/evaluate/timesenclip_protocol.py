"""The TimeSenCLIP reference zero-shot protocol (``--protocol timesenclip``), reported apart.

As the published ``zeroshot.py`` / ``src/Evaluation/zeroshot_train_eval.py`` score a
time-series model: one text embedding per class from the bare class name, scores
``cos / 2 + 1`` between the normalised series embedding and each class embedding, then
every class column divided by its mean over the evaluation set
(``logits / (logits.mean(0) + 1e-6)``) before top-1, top-5 and mean per-class accuracy.
The column division uses the statistics of the evaluation set itself, so the figures
are transductive: they are reported under their own key and never mixed with the
inductive zero-shot numbers. The undivided ("raw") top-1/top-5 are given too, as the
published script prints both. Class names are senclip's spelling of the dataset's classes.
"""

from __future__ import annotations

import numpy as np

from senclip.evaluate.metrics import single_label_metrics

NOTE = ("TimeSenCLIP reference protocol: bare class-name prompts, cos/2+1, each class column divided by "
        "its evaluation-set mean; transductive (uses evaluation-set statistics), never compare with the "
        "inductive numbers")


def timesenclip_logits(embeddings: np.ndarray, classifier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(raw, divided)`` scores ``(N, C)``: ``cos / 2 + 1`` and its column-mean division."""
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    cls = np.asarray(classifier, dtype=np.float64)
    cls = cls / np.maximum(np.linalg.norm(cls, axis=1, keepdims=True), 1e-12)
    raw = emb @ cls.T / 2 + 1
    return raw, raw / (raw.mean(axis=0, keepdims=True) + 1e-6)


def timesenclip_protocol(model, dataset, embeddings: np.ndarray) -> dict:
    """The protocol's result block for a single-label ``dataset`` with its image ``embeddings``."""
    from senclip.errors import SenclipError
    from senclip.prompts import text_classifier

    if dataset.multilabel:
        raise SenclipError("--protocol timesenclip is defined for single-label datasets only")
    prompts = {c: [c] for c in dataset.classes}
    raw, divided = timesenclip_logits(embeddings, text_classifier(model, prompts).numpy())
    metrics = single_label_metrics(divided, dataset.labels, dataset.classes)
    raw_metrics = single_label_metrics(raw, dataset.labels, dataset.classes)
    return {
        "protocol": "timesenclip",
        "transductive": True,
        "note": NOTE,
        "prompts": {"template": "{}", "classes": list(dataset.classes)},
        "n": metrics["n"],
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "mean_class_accuracy": metrics["balanced_accuracy"],
        "per_class": metrics["per_class"],
        "raw": {"top1": raw_metrics["top1"], "top5": raw_metrics["top5"]},
    }


__all__ = ["NOTE", "timesenclip_logits", "timesenclip_protocol"]
