"""Pipeline validation of TimeSenCLIP on real pixels (eo-learn NDVI series), with proxy ground targets.

Not the science: there are no ground photos for the eo-learn patch, so each
training pixel's "ground views" are frozen text embeddings of ground-style
prompts of its LULC class (``senclip proxy-pairs --series``). The run uses the
commands and the shipped config only, as a user would::

    senclip export --base senclip-tiny-vit --seed 0 --out OUT/base.safetensors
    senclip proxy-pairs --series PATCH:train --model senclip-tiny-vit --pretrained OUT/base.safetensors ...
    senclip train --config configs/timesen-ndvi-tiny.yaml ...
    senclip export --checkpoint OUT/run/checkpoints/last.ckpt --out OUT/model.safetensors
    senclip zeroshot --dataset timeseries --data PATCH:valid --prompts ground ...

Training is on the left half of the patch; zero-shot (ground prompts, all 10
LULC classes as candidates) on every labelled pixel of the right half, against
the majority-class baseline. Training uses no label directly, only the proxy
targets.

Usage::

    python benchmarks/timesen_proxy_validation.py [--data PATCH] [--steps 300] [--out runs/timesen-proxy]
        [--tower timesen|timesen-reference]

``--tower timesen-reference`` trains the published encoder's architecture instead
(post-norm ReLU, zero-initialised positions, median-filled months, TSMixAug) at the
same small size (width 128 = the tiny text space, no projection head), on NDVI as
stored (``norm: none``).

``--size paper`` trains the ``timesen`` tower at the shape of
:func:`senclip.models.timesen.paper_config` (width 256, 6 layers, 8 heads, MLP 2048: the
compute of the published encoder, 0.2 GFLOP per pixel) instead of the config's small one; only
its output projection is smaller (256 -> 128, the tiny text space). This is the trained
paper-size tower whose bf16 class map ``result.json`` compares with fp32.

Besides zero-shot, the run maps the whole patch with ``senclip map-pixels`` in fp32 and in bf16
and reports the fraction of pixels given the same class (``map_pixels_bf16_vs_fp32``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "timesen-ndvi-tiny.yaml"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "eolearn_test_eopatch"


def _run(argv: list[str]) -> float:
    """Run one senclip command; seconds taken."""
    from senclip.cli import main

    t0 = time.perf_counter()
    if main(argv) != 0:
        raise SystemExit(f"failed: senclip {' '.join(argv)}")
    return time.perf_counter() - t0


def precision_agreement(model_file: Path, data: str) -> dict:
    """Zero-shot classes of the trained tower in bf16 vs fp32 on the validation pixels."""
    import torch

    from senclip.data import get_dataset
    from senclip.evaluate.embeddings import encode_dataset
    from senclip.models import create_model
    from senclip.prompts import load_prompts, text_classifier

    model = create_model("senclip-tiny-vit", pretrained=str(model_file))
    dataset = get_dataset("timeseries", data, bands=model.image_tower.bands)
    weights = text_classifier(model, load_prompts("ground", dataset.classes, dataset.name))
    emb, pred = {}, {}
    for precision in ("fp32", "bf16"):
        model.set_precision(precision)
        emb[precision] = torch.from_numpy(encode_dataset(model, dataset, workers=0, progress=False))
        pred[precision] = (emb[precision] @ weights.T).argmax(1)
    cos = torch.nn.functional.cosine_similarity(emb["fp32"], emb["bf16"])
    return {"same_class": float((pred["fp32"] == pred["bf16"]).float().mean()),
            "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean())}


# the shape of senclip.models.timesen.paper_config, over the tiny text space
PAPER_SIZE = {"width": 256, "layers": 6, "heads": 8, "mlp_dim": 2048, "dropout": 0.2}


def map_agreement(model_file: Path, data: str, out: Path) -> dict:
    """``senclip map-pixels`` of the whole patch in fp32 and in bf16: pixels given the same class."""
    import rasterio

    maps = {}
    for precision in ("fp32", "bf16"):
        path = out / f"map_{precision}.tif"
        _run(["map-pixels", data, str(path), "--model", "senclip-tiny-vit", "--pretrained", str(model_file),
              "--prompts", "ground", "--precision", precision, "--overwrite", "--no-progress"])
        with rasterio.open(path) as src:
            maps[precision] = src.read(1)
    mapped = maps["fp32"] != 255
    return {"pixels": int(mapped.sum()),
            "same_class": float((maps["fp32"] == maps["bf16"])[mapped].mean())}


def _tower_flags(tower: str, size: str) -> list[str]:
    """Config overrides for ``--tower`` and ``--size`` (none for the config's own timesen)."""
    if tower == "timesen":
        if size == "config":
            return []
        import yaml

        options = yaml.safe_load(CONFIG.read_text())["model"]["tower_options"] | PAPER_SIZE
        return ["--set", f"model.tower_options={json.dumps(options)}"]
    # as published: no projection head, the output block is as wide as the text space (128 here)
    options = {"width": 128, "layers": 2, "heads": 4, "mlp_dim": 128, "dropout": 0.1, "norm": "none",
               "fill": "median", "augment": ["tsmixaug"]}
    return ["--model.tower", tower, "--set", f"model.tower_options={json.dumps(options)}",
            "--model.head", "false"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="eo-learn EOPatch folder")
    ap.add_argument("--steps", type=int, default=300, help="training steps (the config's default: 300)")
    ap.add_argument("--out", default="runs/timesen-proxy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--tower", choices=("timesen", "timesen-reference"), default="timesen",
                    help="tower kind to train (default: the config's timesen)")
    ap.add_argument("--size", choices=("config", "paper"), default="config",
                    help="tower shape: the config's (small) or the paper's compute (timesen only)")
    args = ap.parse_args()
    if args.size == "paper" and args.tower != "timesen":
        ap.error("--size paper is for --tower timesen: the reference tower is as wide as the text "
                 "space, 128 for the offline tiny CLIP")

    import pandas as pd
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    base, proxy, run, model = out / "base.safetensors", out / "proxy", out / "run", out / "model.safetensors"
    quiet = ["--no-progress"]
    seconds = {
        "export_base": _run(["export", "--base", "senclip-tiny-vit", "--seed", str(args.seed),
                             "--out", str(base)]),
        "proxy_pairs": _run(["proxy-pairs", "--series", f"{args.data}:train", "--model", "senclip-tiny-vit",
                             "--pretrained", str(base), "--prompts", "ground", "--seed", str(args.seed),
                             "--out", str(proxy), *quiet]),
        "train": _run(["train", "--config", str(CONFIG),
                       "--model.pretrained", str(base), "--data.manifest", str(proxy / "manifest.csv"),
                       "--data.cache", str(proxy / "ground_cache"), "--trainer.out", str(run),
                       "--trainer.max_steps", str(args.steps), "--trainer.seed", str(args.seed),
                       "--resume", "none", *_tower_flags(args.tower, args.size), *quiet]),
        "export": _run(["export", "--checkpoint", str(run / "checkpoints" / "last.ckpt"),
                        "--out", str(model)]),
        "zeroshot": _run(["zeroshot", "--model", "senclip-tiny-vit", "--pretrained", str(model),
                          "--dataset", "timeseries", "--data", f"{args.data}:valid", "--prompts", "ground",
                          "--out", str(out / "zeroshot.json"), "--no-cache", *quiet]),
    }
    zs = json.loads((out / "zeroshot.json").read_text())
    # class counts from the outputs themselves: the proxy manifest (train) and the zero-shot support (valid)
    train_counts = pd.read_csv(proxy / "manifest.csv")["label_name"].value_counts().to_dict()
    valid_counts = {c: n for c, n in zs["support"].items() if n}
    majority = max(valid_counts, key=valid_counts.get)
    result = {
        "tower": args.tower, "size": args.size,
        "train_pixels": sum(train_counts.values()), "valid_pixels": zs["n"], "steps": args.steps,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "train_counts": train_counts, "valid_counts": valid_counts,
        "majority_class": majority, "majority_baseline": valid_counts[majority] / zs["n"],
        "zeroshot_top1": zs["top1"], "zeroshot_balanced_accuracy": zs["balanced_accuracy"],
        "majority_balanced_accuracy": 1.0 / len(valid_counts),
        "per_class_recall": {c: zs["per_class"][c] for c in valid_counts},
    }
    result["bf16_vs_fp32"] = precision_agreement(model, f"{args.data}:valid")
    result["map_pixels_bf16_vs_fp32"] = map_agreement(model, args.data, out)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
