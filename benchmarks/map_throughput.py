"""Throughput and memory of ``senclip map`` on synthetic multi-band GeoTIFFs.

Builds (once, cached in ``--work``) deflate-compressed, tiled uint16 GeoTIFFs
of ``size x size`` pixels with Sentinel-2 band descriptions, then reports:

(a) end-to-end ``map`` tiles/s (reading, tiling, inference, cell averaging,
    COG/legend/PNG writing) divided by the bare encoder's tiles/s on random
    tensors of the same batch size, measured in the same process just before
    (goal >= 0.90);
(b) peak RSS of the largest scene's run divided by that of the smallest
    (goal <= 1.2); each scene is mapped in a fresh subprocess so peaks are
    independent.

(c) with ``--commands``: the ``senclip map`` command itself on the first size's scene, each run a
    fresh process with the same seeded random weights: ``--precision auto`` and ``--precision
    fp32``, and (``--baseline-src DIR``) another checkout's ``src`` without --precision; tiles/s,
    FLOPs per tile, GFLOP/s and fraction of the measured matmul peak, and the share of tiles whose
    class equals the fp32 map's.

Example::

    python benchmarks/map_throughput.py --sizes 2048 4096 8192 --batch-size 256
    python benchmarks/map_throughput.py --commands --model ViT-B-32 --sizes 2048 --batch-size 64 \
        --baseline-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BANDS = ("B04", "B03", "B02", "B08")


def make_scene(path: Path, size: int, seed: int = 0) -> Path:
    """A smooth-ish random uint16 reflectance scene, written strip by strip."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": len(BANDS), "dtype": "uint16",
               "crs": "EPSG:32632", "transform": from_origin(500_000, 5_600_000, 10, 10), "nodata": 0,
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    base = rng.integers(200, 4000, size=(len(BANDS), 64, 64)).astype(np.uint16)
    tmp = path.with_name(path.name + ".partial")
    with rasterio.open(tmp, "w", **profile) as dst:
        for i, band in enumerate(BANDS):
            dst.set_band_description(i + 1, band)
        for y0 in range(0, size, 512):
            h = min(512, size - y0)
            block = np.tile(base, (1, h // 64 + 1, size // 64 + 1))[:, :h, :size]
            noise = rng.integers(0, 300, size=block.shape, dtype=np.uint16)
            dst.write(block + noise + 1, window=Window(0, y0, size, h))
    tmp.replace(path)
    return path


def build(model_name: str):
    import torch

    from senclip.mapping.classify import ZeroShotClassifier
    from senclip.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, bands=",".join(BANDS))
    weights = torch.nn.functional.normalize(torch.randn(10, model.encode_text(["x"]).shape[-1]), dim=-1)
    return model, ZeroShotClassifier(weights, float(model.logit_scale), [f"c{i}" for i in range(10)])


def bare_encoder_tiles_per_s(model, tile: int, batch: int, seconds: float = 10.0) -> float:
    import torch

    x = torch.rand(batch, len(BANDS), tile, tile)
    with torch.inference_mode():
        model.encode_image(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            model.encode_image(x)
            n += batch
    return n / (time.perf_counter() - t0)


def child(args) -> None:
    """Map one scene in this process; print tiles/s and peak RSS as JSON."""
    import torch

    from senclip.mapping.mapper import MapOptions, map_scene

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import Machine, flops_per_sample

    model, clf = build(args.model)
    flops = flops_per_sample(model.image_tower, torch.rand(1, len(BANDS), args.tile, args.tile))
    model.set_precision(args.precision)
    machine = Machine.measure(seconds=1.0)
    bare = bare_encoder_tiles_per_s(model, args.tile, args.batch_size)  # same process, same conditions
    out = Path(args.work) / f"map_{args.child}.tif"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    res = map_scene(model, clf, str(Path(args.work) / f"scene_{args.child}.tif"), out,
                    MapOptions(tile=args.tile, batch_size=args.batch_size, workers=args.workers,
                               progress=False, quicklook=True))
    wall = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gflops, frac = machine.efficiency(res["tiles"] / wall, flops, model.precision)
    print(json.dumps({"size": args.child, "tiles": res["tiles"], "wall_s": wall,
                      "tiles_per_s": res["tiles"] / wall, "bare_tiles_per_s": bare,
                      "ratio": res["tiles"] / wall / bare, "peak_rss_mb": rss_mb,
                      "precision": model.precision, "gflop_per_tile": flops / 1e9,
                      "gflops": gflops, "fraction_of_peak": frac}))


def compare_commands(args) -> None:
    """(c): ``senclip map`` in fresh processes, by precision and against a baseline checkout."""
    import ast
    import os

    import rasterio
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import Machine, flops_per_sample

    from senclip.models import create_model, save_model

    machine = Machine.measure()
    print(machine.header(), flush=True)
    work = Path(args.work)
    scene = work / f"scene_{args.sizes[0]}.tif"
    weights = work / f"{args.model}-seed0.safetensors"
    torch.manual_seed(0)
    model = create_model(args.model)
    if not weights.exists():
        save_model(model, weights, kind="full")
    x = torch.rand(1, 3, args.tile, args.tile)
    flops = flops_per_sample(model.image_tower, x)
    del model
    variants = [("auto", ["--precision", "auto"], None), ("fp32", ["--precision", "fp32"], None)]
    if args.baseline_src:
        variants.append(("baseline", [], args.baseline_src))
    maps, runs = {}, {}
    for name, extra, src in variants:
        out = work / f"cmd_{name}.tif"
        for stale in work.glob(f"cmd_{name}*"):
            stale.unlink() if stale.is_file() else None
        env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"PYTHONPATH": src} if src else {})}
        cmd = [sys.executable, "-m", "senclip.cli", "map", str(scene), str(out), "--model", args.model,
               "--pretrained", str(weights), "--tile", str(args.tile), "--batch-size", str(args.batch_size),
               "--classes", "eurosat", "--prompts", "generic", "--no-progress", "--overwrite", *extra]
        t0 = time.perf_counter()
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                         .stdout.strip().splitlines()[-1])
        wall = time.perf_counter() - t0
        with rasterio.open(out) as f:
            maps[name] = f.read(1)
            model_tag = ast.literal_eval(f.tags().get("SENCLIP_MODEL", "{}"))
        precision = model_tag.get("precision", "fp32")  # a checkout before --precision: fp32
        runs[name] = {"wall_s": round(wall, 1), "tiles": res["tiles"], "tiles_per_s": res["tiles"] / wall,
                      "precision": precision}
        print(machine.line(f"senclip map {name} (whole command)", res["tiles"] / wall, flops, precision,
                           unit="tile"), flush=True)
    for name, r in runs.items():
        r["same_class_as_fp32"] = float((maps[name] == maps["fp32"]).mean())
    print(json.dumps(runs, indent=2))
    print(f"auto / fp32 tiles/s: {runs['auto']['tiles_per_s'] / runs['fp32']['tiles_per_s']:.2f}x")
    if "baseline" in runs:
        gain = runs["auto"]["tiles_per_s"] / runs["baseline"]["tiles_per_s"]
        print(f"auto / baseline tiles/s: {gain:.2f}x (goal >= 1.5)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    p.add_argument("--model", default="senclip-tiny-vit")
    p.add_argument("--tile", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default="/tmp/senclip_map_bench")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="auto", help="(a), (b): the model's precision (default auto)")
    p.add_argument("--commands", action="store_true", help="(c): time the senclip map command itself")
    p.add_argument("--baseline-src", default=None, metavar="DIR",
                   help="with --commands: another checkout's src/")
    args = p.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.commands:
        make_scene(Path(args.work) / f"scene_{args.sizes[0]}.tif", args.sizes[0])
        compare_commands(args)
        return
    if args.child is not None:
        child(args)
        return
    for size in args.sizes:
        make_scene(Path(args.work) / f"scene_{size}.tif", size)
    runs = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(size), "--model", args.model,
               "--tile", str(args.tile), "--batch-size", str(args.batch_size),
               "--workers", str(args.workers), "--work", args.work, "--precision", args.precision]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    largest, smallest = runs[-1], runs[0]
    report = {
        "bare_encoder_tiles_per_s": {r["size"]: r["bare_tiles_per_s"] for r in runs},
        "map_tiles_per_s": {r["size"]: r["tiles_per_s"] for r in runs},
        "throughput_ratio": {r["size"]: r["ratio"] for r in runs},
        "peak_rss_mb": {r["size"]: r["peak_rss_mb"] for r in runs},
        "fraction_of_peak": {r["size"]: r["fraction_of_peak"] for r in runs},
        "rss_ratio_largest_over_smallest": largest["peak_rss_mb"] / smallest["peak_rss_mb"],
        "goals": {"throughput_ratio": ">= 0.90", "rss_ratio": "<= 1.2"},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
