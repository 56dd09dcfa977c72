"""``senclip train`` steps against a bare forward + backward of the tower, and against the machine.

In one run:

1. the machine's fp32 and bf16 matmul peaks (:mod:`machine`);
2. ``senclip.train.fit`` on proxy pairs of ``--images`` EuroSAT chips (manifest + ground cache in
   the real layouts, written by :func:`senclip.prompts.proxy.build_proxy_pairs`): the real data
   module (JPEG decoding, augmentation, cached ground views), pooling, loss, AdamW, Lightning,
   in ``--precision`` (default auto); samples/s over the steps after the first two;
3. the bare step: the same tower and head on batches already in memory, forward + backward +
   AdamW with the same loss, under the same autocast, no Lightning, no data path; run before and
   after the fit (the machine's speed drifts within minutes) and averaged.

The process's threads and allocator are set up as ``senclip train`` sets them up.

The ratio tells whether the data path or Lightning is the bottleneck; FLOPs per sample (forward
and backward, torch's counter), GFLOP/s and the fraction of the measured peak tell how far both
are from the hardware.

    python benchmarks/train_step_throughput.py --model ViT-B-32 --batch 32 --steps 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lightning.pytorch.callbacks import Callback
from machine import Machine, flops_of
from zeroshot_throughput import link_subset

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eurosat_rgb" / "train"


class StepTimer(Callback):
    """Wall time of each training batch end (steps after ``skip`` are timed)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())


def bare_steps(tower, batch: int, steps: int, precision: str, dim: int) -> tuple[float, float]:
    """(samples/s, FLOPs per sample) of forward + backward + AdamW on in-memory batches."""
    from senclip.losses import InfoNCELoss

    loss_fn = InfoNCELoss(0.07)
    opt = torch.optim.AdamW([*tower.parameters(), *loss_fn.parameters()], lr=1e-5)
    x = torch.rand(batch, 3, 64, 64)
    target = F.normalize(torch.randn(batch, dim), dim=-1)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(tower(x, normalize=True), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    flops = flops_of(step, batch)
    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t), flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed steps (two more are run first)")
    p.add_argument("--precision", default="auto", help="trainer.precision (auto, fp32, bf16, ...)")
    p.add_argument("--workers", type=int, default=0, help="data.workers of the training run")
    p.add_argument("--images", type=int, default=640, help="EuroSAT chips paired (spread over the classes)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args()

    from senclip.commands.common import configure_runtime
    from senclip.models import create_model
    from senclip.prompts.proxy import build_proxy_pairs
    from senclip.train.config import from_dict
    from senclip.train.run import fit, resolve_precision

    configure_runtime()
    machine = Machine.measure()
    print(machine.header(), flush=True)
    flag, why = resolve_precision(args.precision, "cpu")
    peak = {"bf16-mixed": "bf16", "16-mixed": "bf16"}.get(flag, "fp32")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = link_subset(args.data, tmp / "chips", max(1, args.images // 10))
        torch.manual_seed(0)
        base = create_model(args.model)
        manifest, cache = build_proxy_pairs(data, base, "ground", out=tmp / "proxy", progress=False)
        raw = {
            "model": {"name": args.model, "pooling": "avg", "head": True},
            "data": {"manifest": str(manifest), "cache": str(cache), "batch_size": args.batch,
                     "workers": args.workers, "val_fraction": 0.0, "augment": True},
            "trainer": {"out": str(tmp / "run"), "max_steps": args.steps + 2, "precision": args.precision,
                        "val_every_n_steps": 0, "ckpt_every_n_steps": 10_000, "log_every_n_steps": 1},
        }
        from senclip.models.head import HeadConfig, ResidualHead

        tower = base.image_tower.train()  # the fit builds its own model from the config
        dim = tower.visual.output_dim
        tower.head = ResidualHead(HeadConfig(dim, dim, 0.1))
        bare_before, flops = bare_steps(tower, args.batch, args.steps, flag, dim)
        timer = StepTimer()
        fit(from_dict(raw), resume="none", progress=False, callbacks=[timer])
        times = timer.times[1:]  # from the end of step 2 to the end of the last step
        train_rate = (len(times) - 1) * args.batch / (times[-1] - times[0])
        bare_after, _ = bare_steps(tower, args.batch, args.steps, flag, dim)
        bare = (bare_before + bare_after) / 2
    print(f"precision {flag} ({why}); batch {args.batch}; data workers {args.workers}")
    print(machine.line("senclip train (fit, steps 3..)", train_rate, flops, peak, unit="sample"))
    print(machine.line("bare forward+backward+AdamW", bare, flops, peak, unit="sample"))
    print(f"bare before / after the fit: {bare_before:.1f} / {bare_after:.1f} samples/s")
    print(f"train / bare: {train_rate / bare:.2f}")


if __name__ == "__main__":
    main()
