"""Encode a dataset with a model's image tower, with an optional disk cache.

The cache key covers everything that changes the embeddings: the model's
identity (architecture, weights source, checkpoint), a hash of the image
tower's actual tensors (so two random initialisations never share a cache),
the dataset's fingerprint (files and sizes) and its transforms. A second run
with the same key loads the ``.npy`` instead of re-encoding.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from senclip.outputs import atomic_path


def default_cache_dir() -> Path:
    """``$SENCLIP_CACHE/embeddings`` (default ``~/.cache/senclip/embeddings``)."""
    root = os.environ.get("SENCLIP_CACHE") or Path.home() / ".cache" / "senclip"
    return Path(root) / "embeddings"


def tensors_fingerprint(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes, values)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(model, dataset) -> str:
    parts = {
        "model": model.describe(),
        "image_tower": tensors_fingerprint(model.image_tower),
        "dataset": dataset.fingerprint(),
        "transforms": repr(getattr(dataset, "transforms", None)),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def collate(samples: list[dict]) -> dict:
    """Stack images and labels; keep paths as a list (other keys are dropped)."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.stack([torch.as_tensor(s["label"]) for s in samples]),
        "path": [s.get("path") for s in samples],
    }


def make_loader(dataset, batch_size: int, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=collate, pin_memory=device.type == "cuda",
        persistent_workers=False, prefetch_factor=4 if workers > 0 else None,
    )


@torch.no_grad()
def encode_dataset(
    model,
    dataset,
    batch_size: int = 64,
    workers: int = 2,
    device: torch.device | str | None = None,
    cache_dir: Path | str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """L2-normalised image embeddings ``(len(dataset), D)`` float32, in dataset order.

    Args:
        model: a :class:`~senclip.models.SenCLIP` (in eval mode).
        dataset: a classification dataset (``fingerprint()`` needed for caching).
        cache_dir: folder of the embedding cache; ``None`` disables caching.
    """
    device = torch.device(device) if device is not None else model.device
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{cache_key(model, dataset)}.npy"
        if path.is_file():
            emb = np.load(path)
            if emb.shape[0] == len(dataset):
                return emb
    model.eval()
    loader = make_loader(dataset, batch_size, workers, device)
    out = []
    bar = tqdm(total=len(dataset), desc="encoding", unit="img", disable=not progress, dynamic_ncols=True)
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True)
        out.append(model.encode_image(images, normalize=True).float().cpu())
        bar.update(len(images))
    bar.close()
    emb = torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, ".partial.npy") as tmp:
            np.save(tmp, emb)
    return emb
