"""The guard of reduced precision for maps: bf16 gives fp32's class map (docs/performance.md)."""

from __future__ import annotations

import numpy as np
import rasterio
import torch
from mapping_helpers import BLOCK, encode_blocks, eurosat_blocks, write_raster
from sklearn.linear_model import LogisticRegression

from senclip.evaluate.fewshot import LinearClassifier
from senclip.mapping.mapper import MapOptions, map_scene
from senclip.models import create_model, save_model

SIDE = 20  # blocks per side: 400 EuroSAT validation images, one tile each
N_FIT = 200  # further validation images, for the probe


def test_bf16_map_agrees_with_fp32(eurosat_rgb, tmp_path):
    """``map`` in bf16 gives the fp32 map's class on >= 99.5 % of its pixels: the tiny ViT with
    seeded random weights, a mosaic of EuroSAT validation images (one tile per image), and a linear
    probe fitted in fp32 on other images.

    A probe, not zero-shot prompts: with random text and image towers every class's logit is
    nearly the same, so the fp32 map is one class or near-ties that any rounding flips (an
    ill-conditioned test; docs/performance.md). Not the tiny ResNet: with random weights its
    embeddings of all images are the same to cosine 0.99998, so no classifier of them is
    well-conditioned (tests/models/test_precision.py guards it otherwise).
    """
    name = "senclip-tiny-vit"
    images, labels = eurosat_blocks(eurosat_rgb, SIDE * SIDE + N_FIT)
    data = np.zeros((3, SIDE * BLOCK, SIDE * BLOCK), dtype=np.uint8)
    for i, img in enumerate(images[:SIDE * SIDE]):
        r, c = divmod(i, SIDE)
        data[:, r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = img.transpose(2, 0, 1)
    scene = write_raster(tmp_path / "scene.tif", data, ["B04", "B03", "B02"])
    torch.manual_seed(0)
    weights = save_model(create_model(name), tmp_path / "model.safetensors", kind="full")
    maps = {}
    for precision in ("fp32", "bf16"):  # a model per precision: bf16 weights cannot run as fp32 again
        model = create_model(name, pretrained=str(weights))
        if precision == "fp32":
            fit_images, fit_labels = images[SIDE * SIDE:], labels[SIDE * SIDE:]
            classes = sorted(set(fit_labels))
            lr = LogisticRegression(C=10, max_iter=5000).fit(
                encode_blocks(model, fit_images).numpy(), [classes.index(c) for c in fit_labels])
            probe = LinearClassifier(classes, lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32),
                                     model.describe())
        model.set_precision(precision)
        out = tmp_path / f"{precision}.tif"
        map_scene(model, probe, str(scene), out, MapOptions(stride=64, batch_size=64, progress=False,
                                                             quicklook=False))
        with rasterio.open(out) as src:
            maps[precision] = src.read(1)
            assert "'precision': '" + precision + "'" in src.tags()["SENCLIP_MODEL"]
    assert len(np.unique(maps["fp32"])) >= 5  # a map with classes, which a constant one is not
    agree = float((maps["fp32"] == maps["bf16"]).mean())
    assert agree >= 0.995, f"bf16 vs fp32 map classes agree on {agree:.3%}"
