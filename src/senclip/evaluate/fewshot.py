"""Few-shot and linear-probe evaluation on frozen image embeddings.

Protocol: embeddings of the training folder and of the evaluation folder are
computed once with the frozen image tower. For each ``k`` and each seed,
``k`` images per class are drawn from the training set (seeded, without
replacement) and a multinomial logistic regression (scikit-learn, L-BFGS) is
fitted on them; accuracy is measured on the whole evaluation set. Results are
mean ± std over seeds.

* k-shot: inverse regularisation ``C = 10`` (embeddings are L2-normalised,
  so their scale is fixed; there are too few shots to tune it).
* ``k = "all"`` (linear probe): ``C`` is chosen from a log grid on a
  stratified 80/20 split *of the training set*, then the probe is refitted
  on the whole training set. The evaluation set is never used for a choice.

Fitted classifiers can be saved (:func:`save_linear_classifier`) and used by
``senclip map`` as an alternative to zero-shot prompts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from senclip.errors import SenclipError

KSHOT_C = 10.0
C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class LinearClassifier:
    """A fitted linear classifier on L2-normalised embeddings (scikit-learn style)."""

    classes: list[str]
    coef_: np.ndarray  # (C, D)
    intercept_: np.ndarray  # (C,)
    model: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def decision_function(self, emb: np.ndarray) -> np.ndarray:
        return np.asarray(emb, dtype=np.float32) @ self.coef_.T + self.intercept_

    def predict_proba(self, emb: np.ndarray) -> np.ndarray:
        z = self.decision_function(emb)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def predict(self, emb: np.ndarray) -> np.ndarray:
        return self.decision_function(emb).argmax(1)


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> LogisticRegression:
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(x, y)
    return clf


def _as_linear(clf: LogisticRegression, classes, model_info: dict, info: dict) -> LinearClassifier:
    """Expand sklearn's coefficients to all classes (absent classes never win)."""
    n, d = len(classes), clf.coef_.shape[1]
    coef = np.zeros((n, d), np.float32)
    intercept = np.full(n, -1e4, np.float32)
    if len(clf.classes_) == 2:  # binary: sklearn stores one row for the positive class
        coef[clf.classes_[1]], intercept[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
        intercept[clf.classes_[0]] = 0.0
    else:
        coef[clf.classes_] = clf.coef_
        intercept[clf.classes_] = clf.intercept_
    return LinearClassifier(list(classes), coef, intercept, model_info, info)


def sample_k_shot(labels: np.ndarray, k: int, seed: int, n_classes: int) -> np.ndarray:
    """Indices of ``k`` examples per class, drawn without replacement with ``seed``."""
    rng = np.random.default_rng(seed)
    idx = []
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        if len(members) < k:
            raise SenclipError(f"class {c} has {len(members)} training images, fewer than k={k}")
        idx.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(idx))


def choose_c(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """Best ``C`` of :data:`C_GRID` on a stratified 80/20 split of the training data."""
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    scores = [(_fit(xtr, ytr, c, seed).score(xva, yva), -c) for c in C_GRID]
    return -max(scores)[1]


def run_fewshot(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    eval_emb: np.ndarray,
    eval_labels: np.ndarray,
    classes: list[str],
    shots: list,
    seeds: int = 5,
    model_info: dict | None = None,
    progress: bool = True,
) -> tuple[list[dict], LinearClassifier | None]:
    """Accuracy for each ``k`` in ``shots`` (ints, or ``"all"``), mean ± std over seeds.

    Returns the per-k results and the classifier fitted for the last ``k``
    (first seed), for saving.
    """
    from tqdm.auto import tqdm

    n = len(classes)
    results, last = [], None
    bar = tqdm(total=sum(1 if k == "all" else seeds for k in shots), desc="fitting", disable=not progress)
    for k in shots:
        if k == "all":
            c = choose_c(train_emb, train_labels)
            clf = _fit(train_emb, train_labels, c, 0)
            accs = [float(clf.score(eval_emb, eval_labels))]
            last = _as_linear(clf, classes, model_info or {}, {"k": "all", "C": c})
            results.append({"k": "all", "C": c, "mean": accs[0], "std": 0.0, "per_seed": accs,
                            "n_train": int(len(train_labels))})
            bar.update(1)
            continue
        accs = []
        for seed in range(seeds):
            idx = sample_k_shot(train_labels, k, seed, n)
            clf = _fit(train_emb[idx], train_labels[idx], KSHOT_C, seed)
            accs.append(float(clf.score(eval_emb, eval_labels)))
            if seed == 0:
                last = _as_linear(clf, classes, model_info or {}, {"k": k, "C": KSHOT_C, "seed": 0})
            bar.update(1)
        results.append({"k": k, "C": KSHOT_C, "mean": float(np.mean(accs)), "std": float(np.std(accs)),
                        "per_seed": accs, "n_train": int(k * n)})
    bar.close()
    return results, last


def save_linear_classifier(clf: LinearClassifier, path: str | Path) -> Path:
    """Write ``clf`` as safetensors (arrays) with a JSON header (classes, model, info)."""
    path = Path(path)
    meta = {"senclip_classifier": json.dumps({"classes": clf.classes, "model": clf.model, "info": clf.info})}
    tmp = path.with_name(path.name + ".partial")
    save_file({"coef": clf.coef_.astype(np.float32), "intercept": clf.intercept_.astype(np.float32)},
              str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_linear_classifier(path: str | Path) -> LinearClassifier:
    """Read a classifier written by :func:`save_linear_classifier` (no code is executed)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise SenclipError(f"classifier file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["senclip_classifier"])
        arrays = load_file(str(path))
    except (KeyError, OSError, ValueError, SafetensorError) as exc:
        raise SenclipError(f"{path}: not a senclip classifier file ({exc})") from exc
    return LinearClassifier(meta["classes"], arrays["coef"], arrays["intercept"], meta["model"], meta["info"])
