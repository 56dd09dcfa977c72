"""Evaluation: zero-shot, few-shot / linear probe, retrieval; metrics and reports."""

from senclip.evaluate.embeddings import encode_dataset
from senclip.evaluate.fewshot import LinearClassifier, run_fewshot
from senclip.evaluate.zeroshot import evaluate_zeroshot, zeroshot_logits

__all__ = [
    "LinearClassifier", "encode_dataset", "evaluate_zeroshot", "run_fewshot", "zeroshot_logits",
]
