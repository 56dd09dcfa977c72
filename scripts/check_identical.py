#!/usr/bin/env python
"""Check that two revisions of senclip give byte-identical outputs on a small real case.

Usage:
    python scripts/check_identical.py BEFORE [AFTER] [--data ../shared/data] [--keep DIR]

Each revision is checked out into its own git worktree and run as a separate Python process (its
``src`` first on ``PYTHONPATH``) on the same inputs, built once from the shared data: a 256 px
EuroSAT mosaic GeoTIFF, 3 images per EuroSAT class, and a fixed random tiny base model. The steps
are the README's pipeline in small: ``export --base`` → ``proxy-pairs`` → ``train`` (6 steps) →
``export`` → ``zeroshot`` with the trained tower → ``map`` with the base model. Every file the
steps write is compared byte for byte, except the run's own logs (metrics.csv, hparams) and the
Lightning checkpoint, whose pickles embed library objects; what is in them is compared through
the exported safetensors file. Exit status 1 if anything differs.

For a refactoring that must not change behaviour (e.g. issue 13's layering): run it on the commit
before and the commit after.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = ("metrics.csv", "hparams.yaml", ".ckpt", ".senclip.json", "config.yaml")


def build_inputs(data: Path, root: Path) -> dict:
    import numpy as np
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    valid = data / "eurosat_rgb" / "valid"
    classes = sorted(p.name for p in valid.iterdir() if p.is_dir())
    root.mkdir(parents=True)
    mosaic = np.zeros((3, 256, 256), np.uint8)
    for i in range(16):
        img = sorted((valid / classes[(3 * i) % 10]).glob("*.jpg"))[i // 10]
        r, c = divmod(i, 4)
        rgb = np.asarray(Image.open(img).convert("RGB"))
        mosaic[:, r * 64:(r + 1) * 64, c * 64:(c + 1) * 64] = rgb.transpose(2, 0, 1)
    scene = root / "scene.tif"
    profile = {"driver": "GTiff", "width": 256, "height": 256, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(500_000.0, 5_600_000.0, 10.0, 10.0)}
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(mosaic)
        for i, name in enumerate(("B04", "B03", "B02")):
            dst.set_band_description(i + 1, name)
    for split, start in (("train", 0), ("test", 100)):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            src = data / "eurosat_rgb" / ("train" if split == "train" else "valid") / cls
            for img in sorted(src.glob("*.jpg"))[start:start + 3]:
                (root / split / cls / img.name).symlink_to(img)
    return {"scene": scene, "train": root / "train", "test": root / "test"}


def run_case(rev_src: Path, inputs: dict, out: Path) -> None:
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(rev_src), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "SENCLIP_CACHE": str(out / ".cache")}
    config = out / "train.yaml"
    config.write_text(
        f"model: {{name: senclip-tiny-vit, pretrained: {out / 'base.safetensors'}}}\n"
        f"data: {{manifest: {out / 'proxy' / 'manifest.csv'}, cache: {out / 'proxy' / 'ground_cache'}, "
        "batch_size: 8, workers: 0, val_fraction: 0.2}\n"
        f"trainer: {{out: {out / 'run'}, max_steps: 6, ckpt_every_n_steps: 3, log_every_n_steps: 1, "
        "seed: 0, deterministic: true}\n")
    model = ["--model", "senclip-tiny-vit", "--pretrained", str(out / "base.safetensors")]
    steps = [
        ["export", "--base", "senclip-tiny-vit", "--seed", "0", "--out", out / "base.safetensors"],
        ["proxy-pairs", "--eurosat", inputs["train"], *model, "--out", out / "proxy", "--no-progress"],
        ["train", "--config", config, "--no-progress"],
        ["export", "--checkpoint", out / "run" / "checkpoints" / "last.ckpt",
         "--out", out / "model.safetensors"],
        ["zeroshot", *model, "--checkpoint", out / "model.safetensors", "--dataset", "eurosat",
         "--data", inputs["test"], "--prompts", "generic,ground", "--no-cache", "--out", out / "zs.json",
         "--no-progress", "--workers", "0"],
        ["map", inputs["scene"], out / "map.tif", *model, "--stride", "32", "--probabilities", out / "p.tif",
         "--no-progress", "--workers", "1"],
    ]
    for step in steps:
        done = subprocess.run([sys.executable, "-m", "senclip.cli", *map(str, step)], env=env,
                              capture_output=True, text=True, cwd=out)
        if done.returncode != 0:
            raise SystemExit(f"{rev_src}: senclip {step[0]} failed:\n{done.stderr[-2000:]}")


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".cache" not in p.parts
            and not any(p.name.endswith(s) for s in SKIP)}


def worktree(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), rev], check=True)
    return where / "src"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before")
    p.add_argument("after", nargs="?", default="HEAD")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--keep", default=None, help="keep the outputs in this folder")
    args = p.parse_args(argv)
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="senclip-identical-"))
    tmp.mkdir(parents=True, exist_ok=True)
    trees = []
    try:
        inputs = build_inputs(Path(args.data), tmp / "inputs")
        results = {}
        for label, rev in (("before", args.before), ("after", args.after)):
            src = worktree(rev, tmp / f"tree-{label}")
            trees.append(src.parent)
            run_case(src, inputs, tmp / "case")  # one path for both: outputs record their paths
            results[label] = digests(tmp / "case")
            (tmp / "case").rename(tmp / label)
        before, after = results["before"], results["after"]
        names = sorted(set(before) | set(after))
        diff = [n for n in names if before.get(n) != after.get(n)]
        for n in names:
            print(f"{'same' if n not in diff else 'DIFF'}  {n}")
        print(f"{len(names) - len(diff)} of {len(names)} files byte-identical "
              f"({args.before} vs {args.after})")
        return 1 if diff else 0
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
