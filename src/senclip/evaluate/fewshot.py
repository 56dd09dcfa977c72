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

Fitted classifiers can be saved (:meth:`LinearClassifier.save`) and used by
``senclip map`` as an alternative to zero-shot prompts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from senclip.errors import SenclipError
from senclip.prompts.classifier import Classifier, read_classifier_file

KSHOT_C = 10.0
C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class LinearClassifier(Classifier):
    """A linear :class:`~senclip.prompts.classifier.Classifier`: given fitted arrays (e.g. by
    :meth:`load`, which reads any classifier file), or empty and then :meth:`fit`."""

    classes: list[str]
    coef_: np.ndarray | None = None  # (C, D)
    intercept_: np.ndarray | None = None  # (C,)
    model: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def fit(self, x: np.ndarray, y: np.ndarray, c: float = KSHOT_C, seed: int = 0) -> LinearClassifier:
        """Logistic regression with inverse regularisation ``c``; classes absent from ``y`` never
        win. ``estimator_`` keeps the scikit-learn model, whose ``score`` the evaluation reports."""
        lr = self.estimator_ = _fit(x, y, c, seed)
        self.coef_ = np.zeros((len(self.classes), lr.coef_.shape[1]), np.float32)
        self.intercept_ = np.full(len(self.classes), -1e4, np.float32)
        if len(lr.classes_) == 2:  # binary: sklearn stores one row for the positive class
            self.coef_[lr.classes_[1]], self.intercept_[lr.classes_[1]] = lr.coef_[0], lr.intercept_[0]
            self.intercept_[lr.classes_[0]] = 0.0
        else:
            self.coef_[lr.classes_] = lr.coef_
            self.intercept_[lr.classes_] = lr.intercept_
        return self

    def decision_function(self, emb) -> np.ndarray:
        emb = emb.float().cpu().numpy() if isinstance(emb, torch.Tensor) else emb
        return np.asarray(emb, dtype=np.float32) @ self.coef_.T + self.intercept_

    def predict_proba(self, emb) -> np.ndarray:
        z = self.decision_function(emb)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def fingerprint(self) -> str:
        h = hashlib.sha256(np.asarray(self.coef_, np.float32).tobytes())
        h.update(np.asarray(self.intercept_, np.float32).tobytes())
        h.update(repr([str(c) for c in self.classes]).encode())
        return h.hexdigest()

    @classmethod
    def load(cls, path: str | Path) -> LinearClassifier:
        """Read a classifier file (:meth:`Classifier.save`); no code is executed."""
        return cls(*read_classifier_file(path))


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)


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
        if k == "all":  # linear probe: C chosen on the training data, one fit on all of it
            c, runs = choose_c(train_emb, train_labels), [(slice(None), 0)]
        else:
            c, runs = KSHOT_C, [(sample_k_shot(train_labels, k, seed, n), seed) for seed in range(seeds)]
        accs = []
        for idx, seed in runs:
            info = {"k": k, "C": c} if k == "all" else {"k": k, "C": c, "seed": seed}
            clf = LinearClassifier(classes, model=model_info or {}, info=info)
            clf.fit(train_emb[idx], train_labels[idx], c, seed)
            accs.append(float(clf.estimator_.score(eval_emb, eval_labels)))
            last = clf if seed == 0 else last
            bar.update(1)
        results.append({"k": k, "C": c, "mean": float(np.mean(accs)), "std": float(np.std(accs)),
                        "per_seed": accs, "n_train": int(len(train_labels) if k == "all" else k * n)})
    bar.close()
    return results, last
