"""Zero-shot classification: image embeddings against prompt-ensemble text embeddings.

The default protocol is *inductive*: each image's scores depend on that
image and the prompts only. No statistic of the evaluation set (mean logits,
class priors, prompt selection) enters them, so permuting or subsetting the
evaluation set leaves every prediction unchanged. ``calibrate=True`` adds a
*transductive* variant (class-wise logits centred on their evaluation-set
mean, as some published code did); its numbers are stored under a separate
``"transductive"`` key and never replace the zero-shot ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from senclip.evaluate.embeddings import encode_dataset
from senclip.evaluate.metrics import multi_label_metrics, single_label_metrics


def zeroshot_logits(embeddings, classifier, logit_scale: float = 100.0) -> np.ndarray:
    """``logit_scale * embeddings @ classifier.T`` as float32 numpy ``(N, C)``."""
    emb = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    cls = torch.as_tensor(np.asarray(classifier), dtype=torch.float32)
    return (logit_scale * emb @ cls.T).numpy()


def _metrics(dataset, logits: np.ndarray, threshold: float | None) -> dict:
    if dataset.multilabel:
        return multi_label_metrics(logits, dataset.labels, dataset.classes, threshold)
    return single_label_metrics(logits, dataset.labels, dataset.classes)


def _prompt_sets(model, dataset, specs: Sequence[str],
                 names: dict[str, str] | None = None) -> dict[str, dict]:
    from senclip.prompts import load_prompts, prompts_fingerprint, text_classifier

    sets = {}
    for spec in specs:
        prompts = load_prompts(spec, dataset.classes, dataset.name, names=names)
        sets[spec] = {
            "classifier": text_classifier(model, prompts).numpy(),
            "info": {
                "spec": spec,
                "prompts_per_class": {c: len(p) for c, p in prompts.items()},
                "fingerprint": prompts_fingerprint(prompts),
            },
        }
    return sets


def evaluate_zeroshot(
    model,
    dataset,
    prompts: str | Sequence[str] = "generic",
    batch_size: int = 64,
    device=None,
    workers: int = 2,
    cache_dir=None,
    progress: bool = True,
    calibrate: bool = False,
    threshold: float | None = None,
    return_logits: bool = False,
    protocol: str = "inductive",
    protocol_options: dict | None = None,
) -> dict:
    """Zero-shot evaluation of ``model`` on ``dataset`` with one or more prompt sets.

    Args:
        prompts: a prompt spec (``generic``, ``aerial``, ``ground``, ``all``,
            a file path) or several; the first one's metrics are the top-level
            keys, all of them are under ``"runs"``.
        calibrate: also report the transductive, evaluation-set-centred
            variant under ``"transductive"``.
        threshold: multi-label decision threshold on softmax probabilities
            (default ``1 / C``).
        protocol: ``"senclip"`` also reports the SenCLIP reference scripts'
            protocol (:mod:`senclip.evaluate.senclip_protocol`: display class
            names, column-mean division, BigEarthNet top-|y| share on the seeded
            subset) under the separate, transductive ``"senclip_protocol"`` key;
            the inductive numbers are unchanged. ``"timesenclip"`` likewise adds the
            TimeSenCLIP reference protocol (:mod:`senclip.evaluate.timesenclip_protocol`)
            under ``"timesenclip_protocol"``.
        protocol_options: keyword options of the chosen protocol's report (``senclip``:
            ``subset_rule``, :data:`~senclip.evaluate.senclip_protocol.SUBSET_RULES`).

    Returns:
        A JSON-able dict: ``protocol`` (``"inductive"``), ``model``,
        ``dataset``, ``n``, ``prompts`` (spec and prompt counts of the first
        set), the metrics of the first set (``top1``, ``top5``,
        ``per_class``, ``confusion``, … or ``map_macro``, ``map_micro``,
        ``f1_*`` for multi-label data) and ``runs``.
    """
    from senclip.errors import SenclipError

    if protocol not in ("inductive", "senclip", "timesenclip"):
        raise SenclipError(f"unknown protocol {protocol!r}; choose inductive, senclip or timesenclip")
    if protocol == "timesenclip" and dataset.multilabel:
        raise SenclipError("--protocol timesenclip is defined for single-label datasets only")
    specs = [prompts] if isinstance(prompts, str) else list(prompts)
    sets = _prompt_sets(model, dataset, specs)  # fail on bad prompts before encoding
    ref_sets = None
    if protocol == "senclip":
        from senclip.prompts.reference import display_names

        names = display_names(dataset.name, dataset.classes)
        ref_sets = _prompt_sets(model, dataset, specs, names=names)
    start = time.perf_counter()
    emb = encode_dataset(model, dataset, batch_size=batch_size, workers=workers, device=device,
                         cache_dir=cache_dir, progress=progress)
    encode_s = time.perf_counter() - start
    scale = float(model.logit_scale.exp())
    runs, trans, all_logits = {}, {}, {}
    for spec, s in sets.items():
        logits = zeroshot_logits(emb, s["classifier"], scale)
        all_logits[spec] = logits
        runs[spec] = {"prompts": s["info"]} | _metrics(dataset, logits, threshold)
        if calibrate:
            centred = logits - logits.mean(0, keepdims=True)
            trans[spec] = {"prompts": s["info"]} | _metrics(dataset, centred, threshold)
    first = runs[specs[0]]
    result = {
        "protocol": "inductive",
        "model": model.describe(),
        "dataset": dataset.name,
        "multilabel": bool(dataset.multilabel),
        "classes": list(dataset.classes),
        "logit_scale": scale,
    } | first | {"runs": runs}
    result["runtime"] = {  # how the images were encoded (timing varies from run to run)
        "device": str(device if device is not None else model.device),
        "threads": torch.get_num_threads(),
        "workers": workers, "batch_size": batch_size, "encode_s": round(encode_s, 3),
        "images_per_s": round(len(dataset) / encode_s, 2) if encode_s > 0 else None,
    }
    if calibrate:
        result["transductive"] = {
            "protocol": "transductive",
            "note": "logits centred per class on the evaluation-set mean; uses test statistics, not zero-shot",
            "runs": trans,
        }
    if ref_sets is not None:
        from senclip.evaluate.senclip_protocol import senclip_protocol

        cosines = {spec: (s["info"], zeroshot_logits(emb, s["classifier"], 1.0))
                   for spec, s in ref_sets.items()}
        result["senclip_protocol"] = senclip_protocol(dataset, cosines, names, **(protocol_options or {}))
    if protocol == "timesenclip":
        from senclip.evaluate.timesenclip_protocol import timesenclip_protocol

        result["timesenclip_protocol"] = timesenclip_protocol(model, dataset, emb, **(protocol_options or {}))
    if return_logits:
        result["_logits"] = all_logits
    return result
