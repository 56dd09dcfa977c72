"""Fixtures of the reliability battery: one small real input per command, built once per session.

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
        data[:, r * 64:(r + 1) * 64, c * 64:(c + 1) * 64] = np.asarray(Image.open(img).convert("RGB")).transpose(
            2, 0, 1)
    profile = {"driver": "GTiff", "width": 128, "height": 128, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(500_000.0, 5_600_000.0, 10.0, 10.0),
               "tiled": True, "blockxsize": 64, "blockysize": 64}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(("B04", "B03", "B02")):
            dst.set_band_description(i + 1, name)
    return path


@pytest.fixture(scope="session")
def inputs(tmp_path_factory, eurosat_rgb, eopatch_root) -> Inputs:
    import torch

    from senclip.cli import main
    from senclip.data.series.io import EOPatchSource
    from senclip.data.series.rasters import write_stack
    from senclip.models import create_model, save_model
    from senclip.models.timesen import TimeSenConfig, build_timesen_model

    root = tmp_path_factory.mktemp("reliability")
    torch.manual_seed(0)
    base = create_model("senclip-tiny-vit")
    model = save_model(base, root / "tiny-vit.safetensors", kind="full")
    scene = write_scene(root / "scene.tif", eurosat_rgb)
    tiles = root / "tiles.parquet"
    assert main(["embed", str(scene), "--out", str(tiles), "--model", "senclip-tiny-vit", "--pretrained",
                 str(model), "--no-progress", "--workers", "1"]) == 0

    src = EOPatchSource(eopatch_root)
    data, valid = src.read(slice(0, 16))
    transform = src.transform
    stack = write_stack(root / "stack.tif", data, src.dates, src.bands, valid, src.crs, transform)
    cfg = TimeSenConfig(bands=("NDVI",), embed_dim=128, width=32, layers=2, heads=4, mlp_dim=64,
                        dropout=0.0, mean=(0.5,), std=(0.25,))
    torch.manual_seed(3)
    timesen = save_model(build_timesen_model(base, cfg), root / "timesen.safetensors")

    tree = root / "eurosat"
    for class_dir in sorted((eurosat_rgb / "train").iterdir()):
        (tree / class_dir.name).mkdir(parents=True)
        for img in sorted(class_dir.glob("*.jpg"))[:PER_CLASS]:
            (tree / class_dir.name / img.name).symlink_to(img)
    assert main(["proxy-pairs", "--eurosat", str(tree), "--model", "senclip-tiny-vit", "--pretrained",
                 str(model), "--out", str(root / "proxy"), "--no-progress"]) == 0
    manifest, cache = root / "proxy" / "manifest.csv", root / "proxy" / "ground_cache"
    config = root / "train.yaml"
    config.write_text(
        f"model: {{name: senclip-tiny-vit, pretrained: {model}}}\n"
        f"data: {{manifest: {manifest}, cache: {cache}, batch_size: 4, workers: 0, val_fraction: 0.2}}\n"
        "trainer: {max_steps: 2, ckpt_every_n_steps: 1, log_every_n_steps: 1}\n")
    points = root / "points.csv"
    points.write_text("point_id,lat,lon,date\np1,48.1,11.5,2022-06-01\n")
    return Inputs(model, scene, tiles, stack, timesen, tree, manifest, cache, config, points)


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
