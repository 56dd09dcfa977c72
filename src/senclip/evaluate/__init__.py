"""Evaluation: zero-shot, few-shot / linear probe, retrieval; metrics and reports.

The names are imported on first use (PEP 562), so ``senclip zeroshot`` does not pay for
scikit-learn's linear models, which only few-shot needs.
"""

import importlib

_WHERE = {
    "encode_dataset": "senclip.evaluate.embeddings",
    "LinearClassifier": "senclip.evaluate.fewshot",
    "run_fewshot": "senclip.evaluate.fewshot",
    "evaluate_zeroshot": "senclip.evaluate.zeroshot",
    "zeroshot_logits": "senclip.evaluate.zeroshot",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'senclip.evaluate' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
