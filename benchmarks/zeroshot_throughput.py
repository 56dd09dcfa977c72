"""Throughput of zero-shot evaluation end to end vs the bare image-encoder forward.

End to end = ``senclip.evaluate.evaluate_zeroshot`` with the cache disabled:
JPEG reading and decoding in DataLoader workers, batching, on-device resizing
and normalisation, the image trunk, the text classifier and the metrics.
Bare = the image tower's forward alone on the same images, already decoded in
memory, with the same batch size. Both are measured in this run, alternately,
and the ratio of images/s is printed (goal >= 0.95).

Also prints how long the tiny models take to encode one batch of 64 EuroSAT
images on this machine.

    python benchmarks/zeroshot_throughput.py --model ViT-B-32 --images 1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from senclip.data import get_dataset
from senclip.evaluate.zeroshot import evaluate_zeroshot
from senclip.models import create_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eurosat_rgb" / "valid"


def link_subset(src: Path, dst: Path, per_class: int) -> Path:
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / folder.name).mkdir(parents=True)
        for f in sorted(folder.glob("*.jpg"))[:per_class]:
            os.symlink(f, dst / folder.name / f.name)
    return dst


@torch.no_grad()
def bare_forward(model, batches) -> float:
    t = time.perf_counter()
    for x in batches:
        model.image_tower(x)
    return time.perf_counter() - t


def end_to_end(model, dataset, batch_size, workers) -> float:
    t = time.perf_counter()
    evaluate_zeroshot(model, dataset, "generic", batch_size=batch_size, workers=workers, progress=False)
    return time.perf_counter() - t


def tiny_batch_times(dataset) -> dict:
    x = torch.stack([dataset[i]["image"] for i in range(64)])
    out = {}
    for name in ("senclip-tiny-vit", "senclip-tiny-rn"):
        m = create_model(name)
        with torch.no_grad():
            m.encode_image(x)
            times = []
            for _ in range(5):
                t = time.perf_counter()
                m.encode_image(x)
                times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default=None, help="weights (random init if omitted: speed is the same)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--images", type=int, default=1000, help="images in the run (spread over the classes)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()

    model = create_model(args.model, pretrained=args.pretrained, device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        data = link_subset(args.data, Path(tmp) / "subset", max(1, args.images // 10))
        dataset = get_dataset("eurosat", data, bands=model.image_tower.bands)
        n = len(dataset)
        images = [dataset[i]["image"] for i in range(n)]
        batches = [torch.stack(images[i:i + args.batch_size]).to(args.device)
                   for i in range(0, n, args.batch_size)]
        bare_forward(model, batches[:1])  # warm-up
        end_to_end(model, dataset, args.batch_size, args.workers)  # warm-up (also caches the text classifier)
        bare, e2e = [], []
        for _ in range(args.repeats):
            bare.append(bare_forward(model, batches))
            e2e.append(end_to_end(model, dataset, args.batch_size, args.workers))
        tiny = tiny_batch_times(dataset)
    bare_ips, e2e_ips = n / min(bare), n / min(e2e)
    print(f"model {args.model} on {args.device}, {n} EuroSAT images, batch {args.batch_size}, "
          f"{args.workers} workers, torch threads {torch.get_num_threads()}")
    print(f"bare image-tower forward : {bare_ips:8.1f} images/s")
    print(f"zeroshot end to end      : {e2e_ips:8.1f} images/s")
    print(f"ratio end-to-end / bare  : {e2e_ips / bare_ips:.3f}  (goal >= 0.95)")
    for name, sec in tiny.items():
        print(f"{name}: one batch of 64 EuroSAT images encoded in {1000 * sec:.0f} ms")


if __name__ == "__main__":
    main()
