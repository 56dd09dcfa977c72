"""What the machine can do, measured in the benchmark's own run: the yardstick for every figure.

A ratio to a "bare forward" hides how far both are from the hardware, so each benchmark also
prints the model's FLOPs per sample, the GFLOP/s it reached and that as a fraction of the
matrix-multiply peak measured here, for the precision it ran in.

    from machine import Machine
    m = Machine.measure()                       # peaks of fp32 and bf16 matmul on this machine
    flops = flops_per_sample(tower, example)    # torch's FLOP counter, one sample
    print(m.line("zeroshot", 41.0, flops, "bf16"))
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0, device: str = "cpu") -> float:
    """Best GFLOP/s of ``n x n`` matrix products in ``dtype`` (a few warm-up runs first)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def flops_of(fn, samples: int) -> float:
    """FLOPs of calling ``fn()`` (a forward, or a whole training step), per sample of its batch of
    ``samples`` (torch's counter: matrix products and convolutions, 2 FLOPs per multiply-add).

    Counted with autograd on: without it, ``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention``
    take fused inference kernels the counter does not know, and count as nothing.
    """
    counter = FlopCounterMode(display=False)
    with counter, torch.enable_grad():
        fn()
    return counter.get_total_flops() / samples


def flops_per_sample(module: torch.nn.Module, example: torch.Tensor) -> float:
    """FLOPs of one forward of ``module`` on ``example`` (a batch), per sample (:func:`flops_of`)."""
    return flops_of(lambda: module(example), example.shape[0])


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@dataclass
class Machine:
    """Measured matmul peaks (GFLOP/s) per precision, and what the machine is."""

    peaks: dict
    cores: int
    threads: int
    device: str

    @classmethod
    def measure(cls, device: str = "cpu", seconds: float = 2.0, rounds: int = 4) -> Machine:
        """Peaks over ``seconds`` per precision, taken in ``rounds`` interleaved windows: a shared
        machine slows down for seconds at a time, and one window per precision then understates
        a peak (fractions of it above 100 %)."""
        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
        if device != "cpu":
            dtypes["fp16"] = torch.float16
        peaks = dict.fromkeys(dtypes, 0.0)
        for _ in range(rounds):
            for name, dt in dtypes.items():
                peaks[name] = max(peaks[name], matmul_gflops(dt, seconds=seconds / rounds, device=device))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return cls(peaks, cores, torch.get_num_threads(), device)

    def header(self) -> str:
        name = torch.cuda.get_device_name(0) if self.device != "cpu" else cpu_name()
        peaks = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in self.peaks.items())
        return (f"machine: {name}, {self.cores} cores, {self.threads} torch threads, "
                f"torch {torch.__version__}; measured 2048^2 matmul peak: {peaks}")

    def efficiency(self, samples_per_s: float, flops: float, precision: str) -> tuple[float, float]:
        """(achieved GFLOP/s, fraction of the measured peak of ``precision``)."""
        gflops = samples_per_s * flops / 1e9
        return gflops, gflops / self.peaks[precision]

    def line(self, label: str, samples_per_s: float, flops: float, precision: str, unit: str = "img") -> str:
        gflops, frac = self.efficiency(samples_per_s, flops, precision)
        return (f"{label:34s} {samples_per_s:9.1f} {unit}/s | {flops / 1e9:7.3f} GFLOP/{unit} | "
                f"{gflops:6.1f} GFLOP/s = {100 * frac:4.1f}% of the {precision} peak")
