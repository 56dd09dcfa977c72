"""How long reading takes next to encoding: EuroSAT RGB JPEGs and BigEarthNet patches.

Loads batches of samples through the dataset (decode + default transforms +
collate) and encodes them with a CLIP image tower, timing both in the same run,
and prints the ratio. Reading should be a small fraction of encoding.

    python benchmarks/bench_datasets.py --eurosat /path/eurosat_rgb/valid \
        --bigearthnet /path/bigearthnet_s2_example --model ViT-B-32 --threads 2

``--model`` is any open_clip architecture; it is built with random weights
(no download): the encoding cost does not depend on the weight values.
"""

from __future__ import annotations

import argparse
import time

import torch


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(name: str, root: str, model, n: int, repeats: int) -> None:
    from senclip.data import get_dataset

    ds = get_dataset(name, root)
    idx = torch.linspace(0, len(ds) - 1, n).long().tolist()
    idx = [idx[i % len(idx)] for i in range(n)]

    def load():
        return torch.utils.data.default_collate([ds[i] for i in idx])["image"]

    images = load()

    @torch.no_grad()
    def encode():
        return model.encode_image(images)

    t_load, t_enc = _time(load, repeats), _time(encode, repeats)
    print(f"{name:12s} {n} samples {tuple(images.shape[1:])}: load {t_load * 1e3:8.1f} ms, "
          f"encode ({model.name}) {t_enc * 1e3:8.1f} ms, load/encode = {t_load / t_enc:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eurosat", help="EuroSAT RGB root (class folders)")
    p.add_argument("--bigearthnet", help="BigEarthNet-S2 v1 root (patch folders)")
    p.add_argument("--model", default="ViT-B-32", help="open_clip architecture (random weights)")
    p.add_argument("--n", type=int, default=64, help="samples per batch")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (best is reported)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from senclip.models import create_model

    model = create_model(args.model).eval()
    if args.eurosat:
        bench("eurosat", args.eurosat, model, args.n, args.repeats)
    if args.bigearthnet:
        bench("bigearthnet", args.bigearthnet, model, args.n, args.repeats)


if __name__ == "__main__":
    main()
