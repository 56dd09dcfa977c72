"""Does ``torch.compile`` pay for itself? Eager vs compiled forwards of the towers the commands run.

The commands offer no ``--compile`` flag; this benchmark is the measurement behind that choice
(``docs/performance.md``). For each model and precision, in one run:

* ``compile_s``: seconds of the first compiled forward (tracing + Inductor's C++ code generation),
  which every command run would pay again, as it starts a fresh process;
* eager and compiled samples/s, interleaved (eager, compiled, eager, compiled, ...) because this
  machine's speed drifts within minutes, best of ``--repeats`` each, with the fraction of the
  measured matmul peak;
* ``break_even_samples``: how many samples a run must process before the compile time is repaid
  (none if compiling is not faster);
* the largest difference of the compiled embeddings from the eager ones.

Models: the ViT-B-32 image tower (bf16 weights, as ``--precision bf16`` runs it) on 224 px
images, and the paper-size ``timesen`` tower (fp32 weights under bf16 autocast, as ``map-pixels``
runs it) on 12-month series.

Usage::

    python benchmarks/compile_gain.py [--models vit,timesen] [--precisions bf16,fp32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def _model(name: str):
    """(label, SenCLIP model with seeded random weights, example batch, unit) for ``name``; built
    anew for each precision, as weights cast to bf16 cannot run as fp32 again."""
    from senclip.models import create_model
    from senclip.models.timesen import build_timesen_model, paper_config, text_embed_dim

    torch.manual_seed(0)
    if name == "vit":
        return "ViT-B-32 image tower", create_model("ViT-B-32").eval(), torch.rand(32, 3, 224, 224), "img"
    if name == "timesen":
        base = create_model("ViT-B-32")
        model = build_timesen_model(base, paper_config(embed_dim=text_embed_dim(base))).eval()
        return "paper-size timesen tower", model, torch.rand(4096, 12, 10) * 3000 + 200, "px"
    raise SystemExit(f"unknown model {name!r} (vit, timesen)")


def _compiled_encoder(model, mode: str):
    """``model.encode_image`` with the image tower compiled (the model itself is left eager)."""
    compiled_tower, eager_tower = torch.compile(model.image_tower, mode=mode), model.image_tower

    def encode(batch: torch.Tensor) -> torch.Tensor:
        model.image_tower = compiled_tower
        try:
            return model.encode_image(batch)
        finally:
            model.image_tower = eager_tower

    return encode


@torch.no_grad()
def _rate(fn, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    fn(x)
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vit,timesen", help="vit and/or timesen (default both)")
    ap.add_argument("--precisions", default="bf16,fp32")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timings of each (best is kept)")
    ap.add_argument("--mode", default="default",
                    help="torch.compile mode (default, max-autotune-no-cudagraphs)")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import Machine, flops_per_sample

    from senclip.commands.common import configure_runtime

    configure_runtime()
    machine = Machine.measure()
    print(machine.header(), flush=True)
    results = []
    for name in args.models.split(","):
        for precision in args.precisions.split(","):
            label, model, x, unit = _model(name)
            flops = flops_per_sample(model.image_tower, x[:8])
            model.set_precision(precision)
            torch._dynamo.reset()
            eager = model.encode_image
            compiled = _compiled_encoder(model, args.mode)

            with torch.no_grad():
                ref = eager(x)
                t0 = time.perf_counter()
                out = compiled(x)
                compile_s = time.perf_counter() - t0
            rates = {"eager": [], "compiled": []}
            for _ in range(args.repeats):
                rates["eager"].append(_rate(eager, x))
                rates["compiled"].append(_rate(compiled, x))
            best = {k: max(v) for k, v in rates.items()}
            gain = best["compiled"] / best["eager"] - 1
            per_sample_saved = 1 / best["eager"] - 1 / best["compiled"]
            row = {
                "model": label, "precision": precision, "batch": len(x), "compile_s": round(compile_s, 1),
                "eager_per_s": [round(r, 1) for r in rates["eager"]],
                "compiled_per_s": [round(r, 1) for r in rates["compiled"]],
                "gain": round(gain, 3),
                "break_even_samples": round(compile_s / per_sample_saved) if per_sample_saved > 0 else None,
                "max_abs_diff": float((out - ref).abs().max()),
            }
            results.append(row)
            for kind in ("eager", "compiled"):
                print(machine.line(f"{label}, {precision}, {kind}", best[kind], flops, precision, unit=unit))
            print(f"  compile {compile_s:.1f} s, gain {gain:+.1%}, break-even after "
                  f"{row['break_even_samples']} {unit}", flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
