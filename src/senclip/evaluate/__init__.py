"""Evaluation: zero-shot, few-shot / linear probe, retrieval; metrics and reports."""

from senclip.evaluate.embeddings import encode_dataset
from senclip.evaluate.fewshot import LinearClassifier, load_linear_classifier, run_fewshot, save_linear_classifier
from senclip.evaluate.zeroshot import evaluate_zeroshot, zeroshot_logits

__all__ = [
    "LinearClassifier", "encode_dataset", "evaluate_zeroshot", "load_linear_classifier", "run_fewshot",
    "save_linear_classifier", "zeroshot_logits",
]
