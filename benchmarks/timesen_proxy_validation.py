"""Pipeline validation of TimeSenCLIP on real pixels (eo-learn NDVI series), with proxy ground targets.

Not the science: there are no ground photos for the eo-learn patch, so each
training pixel's "ground views" are frozen text embeddings of ground-style
prompts of its LULC class (as ``senclip proxy-pairs`` does for EuroSAT). A
timesen tower is trained with ``senclip.train`` (Lightning, InfoNCE) on the
left half of the patch, exported to safetensors, reloaded with
``create_model(checkpoint=...)`` and evaluated zero-shot (ground prompts) on
every labelled pixel of the right half, against the majority-class baseline.
Training uses no label directly, only the proxy targets.

Usage::

    python benchmarks/timesen_proxy_validation.py [--data PATCH] [--steps 300] [--out runs/timesen-proxy]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eolearn_test_eopatch"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="eo-learn EOPatch folder")
    ap.add_argument("--model", default="senclip-tiny-vit", help="base CLIP (text tower) architecture")
    ap.add_argument("--pretrained", default=None, help="base CLIP weights (default: random, offline)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", default="runs/timesen-proxy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()

    from senclip.models import create_model, save_model
    from senclip.models.factory import SenCLIP
    from senclip.timeseries.dataset import (
        PixelPairedDataset,
        TimeSeriesDataset,
        class_prompt_embeddings,
        lulc_prompts,
    )
    from senclip.train.config import load_config, set_option
    from senclip.train.data import PairedDataModule
    from senclip.train.run import fit

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "timesen-ndvi-tiny.yaml")
    for key, value in {"model.name": args.model, "model.pretrained": args.pretrained,
                       "trainer.max_steps": args.steps, "data.batch_size": args.batch_size,
                       "trainer.out": str(out / "train"), "trainer.seed": args.seed}.items():
        set_option(cfg, key, value)
    torch.manual_seed(args.seed)
    base = create_model(args.model, pretrained=args.pretrained)
    train_px = TimeSeriesDataset(args.data, split="train")
    valid_px = TimeSeriesDataset(args.data, split="valid")
    ground = class_prompt_embeddings(base, lulc_prompts("ground"))
    paired = PixelPairedDataset(train_px, ground, views=5, seed=args.seed)
    t0 = time.perf_counter()
    summary = fit(cfg, resume="none", progress=False,
                  datamodule=PairedDataModule(cfg, train_dataset=paired, val_dataset=None))
    train_s = time.perf_counter() - t0
    tower = summary["module"].image_tower.cpu().eval()
    model = SenCLIP(base.name, tower, base.text_tower, base.logit_scale, base.pretrained)
    if args.pretrained is None:
        # random base weights cannot be re-created from their name: keep the text tower in the file
        ckpt = save_model(model, out / "timesen-ndvi.safetensors", kind="full")
        model = create_model(args.model, pretrained=str(ckpt)).eval()
    else:
        ckpt = save_model(model, out / "timesen-ndvi.safetensors")
        model = create_model(args.model, pretrained=args.pretrained, checkpoint=ckpt).eval()

    with torch.no_grad():
        emb = torch.cat([model.encode_image(torch.from_numpy(valid_px.series[i:i + 4096]))
                         for i in range(0, len(valid_px), 4096)])
    y = valid_px.labels
    majority = np.bincount(y).argmax()
    patch_classes = sorted(set(train_px.labels) | set(y))  # the classes the patch's LULC layer uses
    result = {
        "train_pixels": len(train_px), "valid_pixels": len(valid_px), "steps": summary["global_step"],
        "train_seconds": round(train_s, 1),
        "train_counts": train_px.class_counts(), "valid_counts": valid_px.class_counts(),
        "majority_baseline": float((y == majority).mean()), "majority_class": valid_px.classes[majority],
        "zeroshot_all_10_classes": _zeroshot(model, emb, y, valid_px.classes, range(len(valid_px.classes))),
        "zeroshot_patch_classes": _zeroshot(model, emb, y, valid_px.classes, patch_classes),
        "checkpoint": str(ckpt),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def _zeroshot(model, emb: torch.Tensor, y: np.ndarray, classes: list[str], candidates) -> dict:
    """Top-1 and balanced accuracy of ground-prompt zero-shot among ``candidates`` (class indices)."""
    from senclip.prompts import text_classifier
    from senclip.timeseries.dataset import lulc_prompts

    candidates = list(candidates)
    weights = text_classifier(model, lulc_prompts("ground", [classes[k] for k in candidates]))
    pred = np.asarray(candidates)[(emb @ weights.T).argmax(1).numpy()]
    recall = {classes[k]: float((pred[y == k] == k).mean()) for k in np.unique(y)}
    return {"candidates": [classes[k] for k in candidates], "top1": float((pred == y).mean()),
            "balanced_accuracy": float(np.mean(list(recall.values()))),
            "majority_balanced_accuracy": 1.0 / len(recall), "per_class_recall": recall}


if __name__ == "__main__":
    main()
