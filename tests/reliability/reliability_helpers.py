"""Helpers of the reliability battery: its inputs, subprocess runs, a read-only folder.

Everything is made from ../shared/data (EuroSAT RGB, the eo-learn patch) with the tiny open_clip
models; nothing is copied into the repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

PER_CLASS = 2


@dataclass
class Inputs:
    model: Path          # full tiny-ViT senclip checkpoint (also the base of everything else)
    scene: Path          # 128x128 RGB GeoTIFF (2x2 EuroSAT tiles, UTM)
    tiles: Path          # GeoParquet written by `senclip embed` from the scene
    stack: Path          # 16-row GeoTIFF stack of the real eo-learn NDVI series
    timesen: Path        # tiny NDVI time-series checkpoint
    eurosat: Path        # EuroSAT-layout folder, PER_CLASS images per class (symlinks)
    manifest: Path       # proxy-pairs manifest of `eurosat`
    cache: Path          # its ground-embedding cache
    config: Path         # a training config over the manifest
    points: Path         # survey points CSV for `acquire`
    area: Path           # a GeoJSON polygon for `composite`


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def write_scene(path: Path, eurosat_rgb: Path) -> Path:
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    classes = sorted(p.name for p in (eurosat_rgb / "valid").iterdir() if p.is_dir())
    data = np.zeros((3, 128, 128), np.uint8)
    for i in range(4):
        img = sorted((eurosat_rgb / "valid" / classes[3 * i]).glob("*.jpg"))[0]
        r, c = divmod(i, 2)
        rgb = np.asarray(Image.open(img).convert("RGB"))
        data[:, r * 64:(r + 1) * 64, c * 64:(c + 1) * 64] = rgb.transpose(2, 0, 1)
    profile = {"driver": "GTiff", "width": 128, "height": 128, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(500_000.0, 5_600_000.0, 10.0, 10.0),
               "tiled": True, "blockxsize": 64, "blockysize": 64}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(("B04", "B03", "B02")):
            dst.set_band_description(i + 1, name)
    return path


def senclip_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "senclip.cli", *map(str, args)]


def subprocess_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def read_only_run(folder: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``senclip argv`` with ``folder`` mounted read-only (a private mount namespace).

    ``chmod`` cannot make a folder read-only for root, so the battery uses what root cannot write
    either: a read-only bind mount, visible only to this one command.
    """
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed for the read-only folder case")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.decode().strip()}")
    cmd = " ".join(f"'{a}'" for a in senclip_cmd(*argv))
    script = f"mount --bind -o ro '{folder}' '{folder}' && exec {cmd}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)


def sen2lucas(i: Inputs):
    """Four Sen2LUCAS chips, their paths list and frozen embeddings, written once beside the inputs."""
    from senclip.testing.sen2lucas import write_sen2lucas

    root = Path(i.model).parent / "sen2lucas"
    done = root / "embeddings.pt"
    if not done.is_file():
        write_sen2lucas(root, n=4, dim=128)
    return SimpleNamespace(chips=root, paths=root / "paths.txt", embeddings=done)


def sen2lucas_args(i: Inputs) -> list:
    f = sen2lucas(i)
    return ["--chips", f.chips, "--paths", f.paths, "--embeddings", f.embeddings]
