"""The evaluation protocol of the SenCLIP reference scripts (``zeroshot --protocol senclip``).

Reproduced from the published evaluation code (``src/zeroshot.py`` for EuroSAT,
``src/zeroshot_bigearthnet.py`` for BigEarthNet-19, SenCLIP repository):

* **EuroSAT (single-label)**: cosine logits of L2-normalised image and class
  embeddings; each class's column is divided by its mean over the evaluation
  set (plus ``1e-6``) before top-1 / top-5 (:func:`column_mean_division`).
  This uses statistics of the evaluation set: it is **transductive**, a
  prediction changes when other images are added or removed.
* **BigEarthNet-19 (multi-label)**: torchgeo's test split (``bigearthnet-test.csv``, in its order:
  ``zeroshot --bigearthnet-split``), a subset of 27,000 of its images drawn by
  ``torch.utils.data.random_split`` after ``torch.manual_seed(42)``, evaluated through a
  ``DataLoader(batch_size=32, shuffle=True, drop_last=True)``, i.e. 26,976 of them
  (:func:`reference_subset`; which 24 the shuffled loader drops depends on random draws made while
  OpenAI's ``clip`` builds its model, so senclip drops the last 24 of the subset's order); score: the
  share of true labels found among each
  image's top-|y| predicted classes, |y| its number of true labels, summed over
  images and divided by the total number of true labels
  (:func:`top_label_share`). The reference script ranks ``cosine / 2 + 1``
  (same order as the cosine) and does not divide by the column mean; the
  column-mean-divided variant is reported beside it.

Everything here is kept apart from senclip's inductive zero-shot numbers.
"""

from __future__ import annotations

import numpy as np

SUBSET_SIZE = 27_000
SUBSET_SEED = 42
LOADER_BATCH = 32
"""``zeroshot_bigearthnet.py``: ``DataLoader(test_dataset, batch_size=32, ..., drop_last=True)``."""
SUBSET_RULES = ("random-split-drop-last", "random-split")
"""``zeroshot --bigearthnet-subset``: the reference as run (26,976 of 27,000), or all 27,000."""
EPS = 1e-6


def column_mean_division(logits: np.ndarray, eps: float = EPS) -> np.ndarray:
    """``logits / (logits.mean(axis=0) + eps)``: each class column divided by its evaluation-set mean."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits / (logits.mean(axis=0, keepdims=True) + eps)


def top_label_share(scores: np.ndarray, targets: np.ndarray) -> float:
    """Share of true labels among each image's top-|y| scored classes.

    ``sum_i |top_{|y_i|}(scores_i) ∩ y_i| / sum_i |y_i|``; images without labels add nothing.
    Ties are broken by class order (a stable sort), like a stable ``topk``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets).astype(bool)
    total = int(targets.sum())
    if total == 0:
        return float("nan")
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = 0
    for row, y in zip(order, targets, strict=True):
        k = int(y.sum())
        hits += int(y[row[:k]].sum())
    return hits / total


def reference_subset(n: int, size: int = SUBSET_SIZE, seed: int = SUBSET_SEED,
                     rule: str = "random-split-drop-last") -> np.ndarray:
    """Indices of the reference's evaluation subset of a dataset of ``n`` images.

    ``random_split(dataset, [size, n - size])`` after ``torch.manual_seed(seed)`` takes the first
    ``size`` entries of ``torch.randperm(n)`` drawn from the seeded default generator; the same
    permutation comes from a fresh generator seeded alike. ``random-split-drop-last`` then keeps
    ``size - size % 32`` of them, as many as the reference's loader evaluates. With ``n <= size``
    (where the reference's split would fail) every image is kept, in order.
    """
    if rule not in SUBSET_RULES:
        from senclip.errors import SenclipError

        raise SenclipError(f"unknown BigEarthNet subset rule {rule!r}; choose from {', '.join(SUBSET_RULES)}")
    if n <= size:
        return np.arange(n)
    import torch

    gen = torch.Generator().manual_seed(seed)
    keep = size - size % LOADER_BATCH if rule == "random-split-drop-last" else size
    return torch.randperm(n, generator=gen)[:keep].numpy()


def senclip_protocol_metrics(cosine: np.ndarray, dataset, rule: str = "random-split-drop-last") -> dict:
    """The reference protocol's numbers for one prompt set, from cosine logits ``(N, C)``."""
    from senclip.evaluate.metrics import single_label_metrics

    if not dataset.multilabel:
        divided = column_mean_division(cosine)
        return single_label_metrics(divided, dataset.labels, dataset.classes) | {
            "column_mean_division": True}
    idx = reference_subset(len(cosine), rule=rule)
    targets = np.asarray(dataset.labels)[idx].astype(bool)
    sub = np.asarray(cosine)[idx]
    return {
        "top_label_share": top_label_share(sub, targets),
        "top_label_share_column_mean": top_label_share(column_mean_division(sub), targets),
        "n_subset": len(idx),
        "n_labels": int(targets.astype(bool).sum()),
        "column_mean_division": "only in top_label_share_column_mean (the reference script does not divide)",
    }


NOTE = ("SenCLIP reference scripts' protocol: uses evaluation-set statistics (column-mean division), not "
        "zero-shot; never compare with the inductive numbers")


def senclip_protocol(dataset, cosines: dict, class_names: dict[str, str],
                     subset_rule: str = "random-split-drop-last") -> dict:
    """The ``"senclip_protocol"`` block of zero-shot results.

    Args:
        dataset: the evaluated dataset (its labels; for multi-label data the subset is drawn).
        cosines: prompt spec -> (prompt info, cosine logits ``(N, C)`` of the display-name prompts).
        class_names: class key -> the name the reference scripts prompt with.
        subset_rule: BigEarthNet subset, one of :data:`SUBSET_RULES` (``zeroshot --bigearthnet-subset``).
    """
    subset = {}
    if dataset.multilabel:
        dropped = (f", less SIZE mod {LOADER_BATCH} (the reference loader's drop_last)"
                   if subset_rule == "random-split-drop-last" else "")
        sampling = (f"first SIZE of torch.randperm(N) after manual_seed(SEED){dropped}; "
                    "all images when N <= SIZE")
        subset = {"subset": {"size": SUBSET_SIZE, "seed": SUBSET_SEED, "of": len(dataset),
                             "rule": subset_rule, "sampling": sampling}}
    return {"protocol": "senclip", "transductive": True, "note": NOTE, "class_names": class_names, **subset,
            "runs": {spec: {"prompts": info} | senclip_protocol_metrics(cos, dataset, subset_rule)
                     for spec, (info, cos) in cosines.items()}}
