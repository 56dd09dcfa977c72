"""Classification metrics computed from per-image scores.

Single-label: top-1, top-5, per-class accuracy (recall), balanced accuracy
(their mean over classes present), confusion matrix (rows = true class,
columns = predicted). Multi-label: average precision per class, macro and
micro mAP, and F1 at a stated threshold on softmax probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def single_label_metrics(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict:
    """Metrics of ``scores`` ``(N, C)`` against integer ``labels`` ``(N,)``."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(classes)
    pred = scores.argmax(1)
    k = min(5, n_classes)
    topk = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    # a count per (true, predicted) pair; scikit-learn (1.3 s to import) is left to multi-label metrics
    conf = np.bincount(labels * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    support = conf.sum(1)
    per_class = {
        c: (float(conf[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)
    }
    present = [v for v in per_class.values() if v is not None]
    return {
        "n": int(len(labels)),
        "top1": float((pred == labels).mean()) if len(labels) else float("nan"),
        "top5": float((topk == labels[:, None]).any(1).mean()) if len(labels) else float("nan"),
        "balanced_accuracy": float(np.mean(present)) if present else float("nan"),
        "per_class": per_class,
        "support": {c: int(s) for c, s in zip(classes, support)},
        "confusion": conf.astype(int).tolist(),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def multi_label_metrics(
    logits: np.ndarray, targets: np.ndarray, classes: Sequence[str], threshold: float | None = None
) -> dict:
    """Metrics of ``logits`` ``(N, C)`` against multi-hot ``targets`` ``(N, C)``.

    A class is predicted when its softmax probability is at least
    ``threshold`` (default ``1 / C``: more likely than under a uniform guess).
    Classes without any positive are left out of macro mAP.
    """
    from sklearn.metrics import average_precision_score, f1_score

    targets = np.asarray(targets).astype(np.int64)
    probs = softmax(logits)
    threshold = 1.0 / len(classes) if threshold is None else threshold
    ap = {}
    for i, c in enumerate(classes):
        ap[c] = float(average_precision_score(targets[:, i], probs[:, i])) if targets[:, i].any() else None
    present = [v for v in ap.values() if v is not None]
    pred = (probs >= threshold).astype(np.int64)
    return {
        "n": int(len(targets)),
        "map_macro": float(np.mean(present)) if present else float("nan"),
        "map_micro": float(average_precision_score(targets.ravel(), probs.ravel())) if targets.any() else float("nan"),
        "f1_threshold": float(threshold),
        "f1_threshold_rule": "softmax probability >= threshold",
        "f1_micro": float(f1_score(targets, pred, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(targets, pred, average="macro", zero_division=0)),
        "per_class_ap": ap,
        "support": {c: int(s) for c, s in zip(classes, targets.sum(0))},
    }
