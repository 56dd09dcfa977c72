"""TimeSenCLIP throughput: ``map-pixels`` end to end vs the bare model forward.

Writes a synthetic 10-band Sentinel-2 stack (``--dates`` acquisitions,
``--size`` x ``--size`` pixels, random clouds) once, then measures in one run:

* ``end_to_end``: :class:`senclip.mapping.pixels.PixelMapper` on the stack
  (read row blocks, composite 12 months, embed, classify, write the GTiff,
  convert to COG), pixels per second;
* ``bare``: the tower's forward on the very same composited pixels, same
  batch size, no I/O (``model.encode_image`` + the class matmul);
* ``ratio`` = end_to_end / bare (goal >= 0.9);
* the bare pixels/s of the model at the paper's size (the published
  TimeSenCLIP reports 19.5k samples/s on a GPU; on a GPU the goal is >= 1M px/s);
* ``conditioning``: how far the class map can be trusted to survive rounding at all. On up to
  4,096 of the pixels, the logits in fp64 (the reference), fp32 and each reduced precision: the
  fraction of pixels each gives the fp64 class, the median and 10th percentile of fp32's top-2
  margin, and the median and largest logit error of each precision. With random weights the
  classes' text embeddings and the pixels' embeddings are all nearly parallel, so the margins are
  tiny and a class map agreement below 100 % says more about the weights than about the precision
  (docs/performance.md measures trained towers with ``timesen_proxy_validation.py``).

Usage::

    python benchmarks/timesen_throughput.py [--size 64] [--dates 36] [--device cpu] [--batch-size 4096]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_stack(path: Path, size: int, n_dates: int, seed: int = 0) -> Path:
    from senclip.data.series.rasters import write_stack
    from senclip.models.timesen import S2_BANDS

    rng = np.random.default_rng(seed)
    start = dt.date(2021, 1, 3)
    dates = [start + dt.timedelta(days=int(d)) for d in np.sort(rng.choice(365, n_dates, replace=False))]
    data = rng.integers(200, 4000, (n_dates, len(S2_BANDS), size, size)).astype(np.float32)
    valid = rng.random((n_dates, size, size)) > 0.4
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    return write_stack(path, data, dates, S2_BANDS, valid, CRS.from_epsg(32633),
                       from_origin(500_000, 5_000_000, 10, 10))


def build_model(device: torch.device, text_arch: str):
    from senclip.models import create_model
    from senclip.models.timesen import build_timesen_model, paper_config, text_embed_dim

    base = create_model(text_arch)
    return build_timesen_model(base, paper_config(embed_dim=text_embed_dim(base))).to(device).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def bare_rate(model, series: np.ndarray, weights: torch.Tensor, batch: int, device: torch.device,
              repeats: int = 1) -> float:
    x = torch.from_numpy(series)
    w = weights.to(device)
    (model.encode_image(x[:batch].to(device)) @ w.T).argmax(1).cpu()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        for i in range(0, len(x), batch):
            (model.encode_image(x[i:i + batch].to(device)) @ w.T).argmax(1).cpu()
    sync(device)
    return repeats * len(x) / (time.perf_counter() - t0)


@torch.no_grad()
def conditioning(model, series: np.ndarray, classifier: torch.Tensor, precisions: list[str],
                 n: int = 4096) -> dict:
    """Class agreement with fp64 and logit errors per precision, and fp32's top-2 margins."""
    x = torch.from_numpy(series[:n])
    weights = classifier.double()
    tower = model.image_tower.double()
    reference = torch.nn.functional.normalize(tower(x.double(), normalize=False), dim=-1) @ weights.T
    tower.float()
    out = {}
    for precision in precisions:
        model.set_precision(precision)
        logits = model.encode_image(x).double() @ weights.T
        err = (logits - reference).abs().amax(1)
        same = (logits.argmax(1) == reference.argmax(1)).double().mean()
        out[precision] = {"same_class_as_fp64": float(same), "logit_error_median": float(err.median()),
                          "logit_error_max": float(err.max())}
        if precision == "fp32":
            top2 = logits.topk(2, dim=1).values
            margin = (top2[:, 0] - top2[:, 1]).numpy()
            out["fp32_top2_margin_median"] = float(np.median(margin))
            out["fp32_top2_margin_p10"] = float(np.quantile(margin, 0.1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="stack is SIZE x SIZE pixels (default 64)")
    ap.add_argument("--dates", type=int, default=36, help="acquisitions in the stack (default 36)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--block-rows", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--text-arch", default="ViT-B-32", help="base CLIP giving the 512-d text space")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="precisions to run, the first is the reference of the class-map agreement "
                         "(a checkout without --precision runs fp32 only)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import Machine, flops_per_sample

    from senclip.data.series.composite import monthly_composite
    from senclip.data.series.dataset import LULC_CLASSES
    from senclip.data.sources import open_series
    from senclip.mapping.pixels import PixelMapOptions, PixelMapper, lulc_prompts
    from senclip.models.timesen import count_parameters

    device = torch.device(args.device)
    machine = Machine.measure(args.device)
    print(machine.header(), flush=True)
    torch.manual_seed(0)
    model = build_model(device, args.text_arch)
    prompts = lulc_prompts("generic", LULC_CLASSES)
    n_pixels = args.size * args.size
    precisions = args.precisions.split(",") if hasattr(model, "set_precision") else ["fp32"]
    runs, maps = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = make_stack(Path(tmp) / "stack.tif", args.size, args.dates)
        source = open_series(stack)
        t0 = time.perf_counter()
        data, valid = source.read(slice(0, source.height))
        comp, ok = monthly_composite(data, source.dates, valid)
        composite_rate = n_pixels / (time.perf_counter() - t0)
        series = np.ascontiguousarray(comp.transpose(2, 3, 0, 1)[ok.any(0)])
        flops = flops_per_sample(model.image_tower, torch.from_numpy(series[:256]).to(device))
        for precision in precisions:
            if hasattr(model, "set_precision"):
                model.set_precision(precision)
            mapper = PixelMapper(model, prompts, PixelMapOptions(args.block_rows, args.batch_size), device)
            # bare forward before and after the end-to-end run: the machine's load may drift
            bare_before = bare_rate(model, series, mapper.classifier, args.batch_size, device)
            sync(device)
            out = Path(tmp) / f"map_{precision}.tif"
            t0 = time.perf_counter()
            summary = mapper.run(source, out, progress=False)
            sync(device)
            e2e = n_pixels / (time.perf_counter() - t0)
            bare_after = bare_rate(model, series, mapper.classifier, args.batch_size, device)
            bare = (bare_before + bare_after) / 2
            import rasterio

            with rasterio.open(out) as src:
                maps[precision] = src.read(1)
            runs[precision] = {
                "end_to_end_px_per_s": round(e2e, 1), "bare_forward_px_per_s": round(bare, 1),
                "bare_before_after": [round(bare_before, 1), round(bare_after, 1)],
                "ratio": round(e2e / bare, 3), "mapped": sum(summary["counts_this_run"].values()),
                "same_class_as_" + precisions[0]: float((maps[precision] == maps[precisions[0]]).mean()),
            }
            print(machine.line(f"bare tower + classify, {precision}", bare, flops, precision, unit="px"))
            print(machine.line(f"map-pixels end to end, {precision}", e2e, flops, precision, unit="px"),
                  flush=True)
    if device.type == "cpu":  # fp64 on a GPU would take longer than the whole benchmark
        cond = conditioning(model, series, mapper.classifier, precisions)
        print("conditioning:", json.dumps(cond), flush=True)
    else:
        cond = None
    result = {
        "device": str(device), "conditioning": cond, "torch_threads": torch.get_num_threads(),
        "tower_parameters": count_parameters(model.image_tower), "flops_per_pixel": flops,
        "pixels": n_pixels, "dates": args.dates, "bands": 10, "batch_size": args.batch_size,
        "read_and_composite_px_per_s": round(composite_rate, 1), "runs": runs,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
