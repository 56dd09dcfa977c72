"""The TimeSenCLIP reference zero-shot protocol (``--protocol timesenclip``), reported apart.

As the published ``zeroshot.py`` scores a time-series model (``pallavijain-pj/TimeSenCLIP``, commits
8dfc8e6 / ca79a49 and a48994f; ``test_zeroshot`` / ``test_run_tsms`` in
``src/Evaluation/zeroshot_train_eval.py``): one text embedding per class from the bare class name
(the first template set, ``class_names: ['{}']``, of ``src/utils/text_template.py``), scores
``cos / 2 + 1`` between the normalised series embedding and each class embedding ("raw"), and the
same scores with every class column divided by its mean over the evaluation set
(``logits / (logits.mean(0) + 1e-6)``, "normalised"). On both: top-1 and top-5
(``src/Evaluation/metrics.py`` ``accuracy``) and the reference's average class accuracy
(``class_wise_accuracy``: each class's recall averaged over *all* classes of the label set, a class
without points counting 0), beside senclip's mean class accuracy (over the classes present). The
newest ``zeroshot.py`` (a48994f) prints the average class accuracy of the raw scores; the one of
8dfc8e6 / ca79a49 of the normalised scores. The column division uses the statistics of the evaluation
set itself, so the normalised figures are transductive; everything here is reported under its own key
and never mixed with the inductive zero-shot numbers. Class names are the dataset's class keys (for
Sen4Map the reference's own strings, :mod:`senclip.data.sen4map_labels`).
"""

from __future__ import annotations

import numpy as np

from senclip.evaluate.metrics import single_label_metrics

NOTE = ("TimeSenCLIP reference protocol: bare class-name prompts, cos/2+1 ('raw'), each class column divided "
        "by its evaluation-set mean ('normalised', transductive: uses evaluation-set statistics); never "
        "compare with the inductive numbers")
EPS = 1e-6


def timesenclip_logits(embeddings: np.ndarray, classifier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(raw, normalised)`` scores ``(N, C)``: ``cos / 2 + 1`` and its column-mean division."""
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    cls = np.asarray(classifier, dtype=np.float64)
    cls = cls / np.maximum(np.linalg.norm(cls, axis=1, keepdims=True), 1e-12)
    raw = emb @ cls.T / 2 + 1
    return raw, raw / (raw.mean(axis=0, keepdims=True) + EPS)


def average_class_accuracy(scores: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """The reference's ``class_wise_accuracy`` average: per-class recall of the argmax, summed over all
    ``n_classes`` classes (a class without points adds 0) and divided by ``n_classes``."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(scores).argmax(1)
    total = 0.0
    for c in range(n_classes):
        mask = labels == c
        if mask.any():
            total += float((pred[mask] == c).mean())
    return total / n_classes


def _block(scores: np.ndarray, dataset) -> dict:
    m = single_label_metrics(scores, dataset.labels, dataset.classes)
    return {"top1": m["top1"], "top5": m["top5"],
            "average_class_accuracy": average_class_accuracy(scores, dataset.labels, len(dataset.classes)),
            "mean_class_accuracy": m["balanced_accuracy"], "per_class": m["per_class"]}


def timesenclip_protocol(model, dataset, embeddings: np.ndarray) -> dict:
    """The protocol's result block for a single-label ``dataset`` with its image ``embeddings``."""
    from senclip.errors import SenclipError
    from senclip.prompts import text_classifier

    if dataset.multilabel:
        raise SenclipError("--protocol timesenclip is defined for single-label datasets only")
    prompts = {c: [c] for c in dataset.classes}
    raw, normalised = timesenclip_logits(embeddings, text_classifier(model, prompts).numpy())
    norm, plain = _block(normalised, dataset), _block(raw, dataset)
    return {
        "protocol": "timesenclip",
        "transductive": True,
        "note": NOTE,
        "prompts": {"template": "{}", "classes": list(dataset.classes)},
        "n": len(dataset.labels),
        "classes_present": len(set(np.asarray(dataset.labels).tolist())),
        "metrics": {
            "top1, top5": "share of points whose class is the first / among the first five "
                          "(metrics.py accuracy)",
            "average_class_accuracy": "the reference's class_wise_accuracy: mean recall over all classes of "
                                      "the label set, absent classes 0 (a48994f prints it for raw, 8dfc8e6 "
                                      "for normalised)",
            "mean_class_accuracy": "senclip's: mean recall over the classes present",
        },
        # the normalised scores first, as the reference prints them first
        "top1": norm["top1"], "top5": norm["top5"],
        "average_class_accuracy": norm["average_class_accuracy"],
        "mean_class_accuracy": norm["mean_class_accuracy"],
        "per_class": norm["per_class"],
        "raw": {k: plain[k] for k in ("top1", "top5", "average_class_accuracy", "mean_class_accuracy")}
        | {"per_class": plain["per_class"]},
    }


__all__ = ["NOTE", "average_class_accuracy", "timesenclip_logits", "timesenclip_protocol"]
