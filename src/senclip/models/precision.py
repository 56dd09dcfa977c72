"""Numeric precision of inference: ``auto``, ``fp32``, ``bf16`` or ``fp16``.

Reduced precision applies to the image tower. An open_clip trunk (ViT, ResNet) holds its weights
in bf16/fp16 and runs there, ResNets channels-last
(:meth:`senclip.models.towers.ImageTower.set_compute_dtype`), while its preprocessing and head stay
fp32; other towers (the time-series ones) keep fp32 weights and run under ``torch.autocast``
(matrix products in bf16/fp16, normalisations and reductions in fp32). Embeddings come out fp32, so
the metrics and every file written stay fp32. Text embeddings are always fp32: a run encodes its
prompts once, and a bf16 classifier would add its rounding to every prediction (on a random tiny
ViT under autocast, bf16 text and images agreed with fp32 on 99.25% of 400 EuroSAT images, bf16
images alone on 99.75%).

``auto`` picks, per device:

- CUDA: ``bf16`` where the GPU supports it (Ampere and later), ``fp16`` on older GPUs;
- CPU: ``bf16`` where the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX,
  read from ``/proc/cpuinfo``), otherwise ``fp32`` (emulated bf16 is slower than fp32);
- anything else: ``fp32``.

What reduced precision changes is measured, not assumed: see docs/performance.md
for the agreement of predictions and the embedding tolerance.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from senclip.errors import SenclipError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""The names; importing them does not import torch (``senclip --help`` stays fast)."""
LIGHTNING_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}
"""Lightning's name of each precision, for training."""
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of native bf16 arithmetic (AVX-512 BF16 dot products, AMX tiles)."""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no ``/proc/cpuinfo``)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_bf16() -> bool:
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


def resolve_precision(precision: str, device) -> tuple[str, str]:
    """``(precision, why)`` with ``auto`` replaced by the choice for ``device``.

    Raises:
        SenclipError: an unknown name, or a precision the device cannot run.
    """
    import torch

    device = torch.device(device)
    if precision not in PRECISIONS:
        raise SenclipError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise SenclipError(f"{device} does not support bf16; use --precision fp16 or fp32")
        return precision, "requested"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: {torch.cuda.get_device_name(device)} supports bf16"
        return "fp16", f"auto: {torch.cuda.get_device_name(device)} has no bf16"
    if device.type == "cpu":
        if cpu_has_bf16():
            have = [f for f in CPU_BF16_FLAGS if f in cpu_flags()]
            return "bf16", f"auto: CPU has {' and '.join(have)}"
        return "fp32", "auto: CPU has no native bf16 (AVX-512 BF16 or AMX)"
    return "fp32", f"auto: no reduced precision on {device.type}"


def compute_dtype(precision: str):
    """The torch dtype of a resolved precision."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(precision: str, device):
    """A context that runs ``precision`` on ``device`` (``fp32``: no autocast)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise SenclipError(f"precision {precision!r} must be resolved (fp32, bf16 or fp16) before use")
    return torch.autocast(torch.device(device).type, dtype=compute_dtype(precision))

