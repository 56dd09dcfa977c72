"""``senclip zeroshot`` end to end against the bare image tower and against the machine.

In one run, on ``--images`` EuroSAT images (spread over the classes):

1. the machine's fp32 and bf16 matmul peaks (:mod:`machine`);
2. start-up pieces: ``senclip zeroshot --help`` and building the model;
3. the bare image-tower forward (decoded images already in memory, batch ``--batch-size``)
   in fp32 and bf16, with FLOPs per image, GFLOP/s and the fraction of the peak;
4. the command itself, each in a fresh process with the embedding cache off: with the
   default ``--precision auto``, with ``--precision fp32``, and (``--baseline-src DIR``) the same
   command from another checkout's ``src`` (e.g. the previous release), without --precision.
   The command's result JSON gives the encoding time, so images/s after start-up and the
   start-up (imports, model, text classifier, dataset scan) are reported apart.

    python benchmarks/zeroshot_throughput.py --model ViT-B-32 --images 640 --baseline-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import Machine, flops_per_sample

from senclip.data import get_dataset
from senclip.models import create_model, save_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eurosat_rgb" / "valid"


def link_subset(src: Path, dst: Path, per_class: int) -> Path:
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / folder.name).mkdir(parents=True)
        for f in sorted(folder.glob("*.jpg"))[:per_class]:
            os.symlink(f, dst / folder.name / f.name)
    return dst


@torch.no_grad()
def bare_rate(model, batches, repeats: int = 2) -> float:
    """Images/s of ``model.encode_image`` on batches already in memory (best of ``repeats``)."""
    model.encode_image(batches[0])  # warm-up
    n = sum(len(b) for b in batches)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for x in batches:
            model.encode_image(x)
        best = min(best, time.perf_counter() - t)
    return n / best


def run_command(args, data: Path, out: Path, extra: list[str], src: str | None) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, "-m", "senclip.cli", "zeroshot", "--model", args.model, "--dataset", "eurosat",
           "--data", str(data), "--out", str(out), "--no-cache", "--no-progress", *extra]
    if args.pretrained:
        cmd += ["--pretrained", args.pretrained]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    result = json.loads(out.read_text())
    encode = result.get("runtime", {}).get("encode_s")
    return {"wall_s": wall, "encode_s": encode, "top1": result["top1"],
            "precision": result["model"].get("precision", "fp32 (before --precision)"), "n": result["n"]}


def bare_in_fresh_process(args, data: Path) -> float:
    """The bare bf16 forward (one pass, first batch included) in a fresh process, as a command runs."""
    out = subprocess.run([sys.executable, __file__, "--bare-child", str(data), "--model", args.model,
                          "--pretrained", args.pretrained, "--batch-size", str(args.batch_size)],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return float(out.stdout.strip().splitlines()[-1])


def bare_child(args) -> None:
    from senclip.commands.common import configure_runtime

    configure_runtime()  # as the commands do
    model = create_model(args.model, pretrained=args.pretrained)
    model.set_precision("bf16")
    dataset = get_dataset("eurosat", args.bare_child, bands=model.image_tower.bands)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    with torch.no_grad():
        t = time.perf_counter()
        for x in images.split(args.batch_size):
            model.encode_image(x)
    print(len(dataset) / (time.perf_counter() - t))


def help_time() -> float:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "senclip.cli", "zeroshot", "--help"], check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default=None,
                   help="weights (default: seeded random weights written once and loaded by every run)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--images", type=int, default=640, help="images in the run (spread over the classes)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--baseline-src", default=None, metavar="DIR",
                   help="another checkout's src/ to time the same command with (e.g. the last release)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each command variant (best kept)")
    p.add_argument("--workers-sweep", type=int, nargs="*", default=[], metavar="N",
                   help="also run the default command with --workers N for each N (e.g. 0 1 2)")
    p.add_argument("--bare-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.bare_child is not None:
        bare_child(args)
        return

    from senclip.commands.common import configure_runtime

    configure_runtime()  # threads and allocator as the commands set them
    machine = Machine.measure()
    print(machine.header(), flush=True)
    t = time.perf_counter()
    torch.manual_seed(0)
    model = create_model(args.model, pretrained=args.pretrained)
    build_s = time.perf_counter() - t
    print(f"start-up: `senclip zeroshot --help` {help_time():.2f} s; building {args.model} in-process "
          f"{build_s:.2f} s (imports done)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.pretrained:  # one seeded random model shared by every run (comparable predictions)
            args.pretrained = str(Path(tmp) / f"{args.model}-seed0.safetensors")
            save_model(model, args.pretrained, kind="full")
        data = link_subset(args.data, Path(tmp) / "subset", max(1, args.images // 10))
        dataset = get_dataset("eurosat", data, bands=model.image_tower.bands)
        n = len(dataset)
        images = torch.stack([dataset[i]["image"] for i in range(n)])
        batches = list(images.split(args.batch_size))
        flops = flops_per_sample(model.image_tower, images[:1])
        bare = {}
        for precision in ("fp32", "bf16"):
            model.set_precision(precision)
            bare[precision] = bare_rate(model, batches)
            print(machine.line(f"bare image tower, {precision}", bare[precision], flops, precision),
                  flush=True)
        variants = {"auto": ([], None), "fp32": (["--precision", "fp32"], None)}
        if args.baseline_src:
            variants["baseline"] = ([], args.baseline_src)
        variants |= {f"workers {w}": (["--workers", str(w)], None) for w in args.workers_sweep}
        runs: dict = {}
        fresh = []  # bare bf16 forward in fresh processes, interleaved with the commands
        for rep in range(args.repeats):  # interleaved; the fastest run of each variant is kept
            fresh.append(bare_in_fresh_process(args, data))
            for name, (extra, src) in variants.items():
                r = run_command(args, data, Path(tmp) / f"{name}-{rep}.json".replace(" ", ""), extra, src)
                if name not in runs or r["wall_s"] < runs[name]["wall_s"]:
                    runs[name] = r
        fresh.append(bare_in_fresh_process(args, data))
        # the machine's speed drifts: the bare bf16 forward again after the commands, and their mean
        after = bare_rate(model, batches)
        print(machine.line("bare image tower, bf16, after", after, flops, "bf16"), flush=True)
        bare["bf16"] = (bare["bf16"] + after) / 2
    print(f"\n`senclip zeroshot --model {args.model}` on {n} EuroSAT images, batch {args.batch_size}, "
          f"fresh process, embedding cache off, best of {args.repeats}:")
    for name, r in runs.items():
        line = f"  {name:9s} {r['precision']:26s} total {r['wall_s']:6.1f} s = {n / r['wall_s']:5.1f} img/s"
        if r["encode_s"]:
            line += (f" | after start-up {n / r['encode_s']:5.1f} img/s, "
                     f"start-up {r['wall_s'] - r['encode_s']:4.1f} s")
        print(line + f" | top-1 {100 * r['top1']:.2f}%")
        if r["encode_s"]:
            prec = r["precision"] if r["precision"] in machine.peaks else "fp32"
            print("    " + machine.line(f"{name} encoding", n / r["encode_s"], flops, prec))
    auto, fp32 = runs["auto"], runs["fp32"]
    print(f"\nafter start-up / bare bf16 forward in this process, warmed up, best of 2 (mean of before "
          f"and after): {n / auto['encode_s'] / bare['bf16']:.2f} (goal >= 0.9)")
    print(f"after start-up / bare bf16 forward in fresh processes between the commands "
          f"({', '.join(f'{r:.1f}' for r in fresh)} img/s, best {max(fresh):.1f}): "
          f"{n / auto['encode_s'] / max(fresh):.2f} (goal >= 0.9)")
    print(f"whole command, fp32 / auto: {fp32['wall_s'] / auto['wall_s']:.2f}x (goal >= 1.5)")
    if "baseline" in runs:
        print(f"whole command, baseline / auto: {runs['baseline']['wall_s'] / auto['wall_s']:.2f}x "
              "(goal >= 2.5)")
    print(f"top-1 auto - fp32: {100 * (auto['top1'] - fp32['top1']):+.2f} points (goal within 0.5)")


if __name__ == "__main__":
    main()
