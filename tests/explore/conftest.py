"""Fixtures of the explorer tests: one small map made by senclip itself, built once per session.

A 4x4 mosaic of real EuroSAT images (256 px, 10 m, UTM) is mapped by ``senclip map`` with a linear
probe fitted to the blocks' classes (so the map holds known classes) and ``--probabilities``, and
embedded by ``senclip embed --stride 32`` (49 tiles), with the tiny ViT saved as a weights file.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from senclip.testing.rasters import eurosat_mosaic


@pytest.fixture(scope="session")
def made(tmp_path_factory, eurosat_rgb):
    import torch
    from sklearn.linear_model import LogisticRegression

    from senclip.cli import main
    from senclip.evaluate.fewshot import LinearClassifier
    from senclip.models import create_model, save_model

    root = tmp_path_factory.mktemp("explore")
    mosaic = eurosat_mosaic(eurosat_rgb, root / "scene.tif")
    torch.manual_seed(0)
    weights = save_model(create_model("senclip-tiny-vit"), root / "tiny-vit.safetensors", kind="full")
    model = create_model("senclip-tiny-vit", pretrained=str(weights))
    x = torch.from_numpy(np.stack(mosaic["images"]).transpose(0, 3, 1, 2).astype(np.float32) / 255)
    with torch.no_grad():
        emb = model.encode_image(x).numpy()
    classes = sorted(set(mosaic["labels"]))
    y = np.array([classes.index(label) for label in mosaic["labels"]])
    lr = LogisticRegression(C=1e4, max_iter=5000).fit(emb, y)
    probe = root / "probe.safetensors"
    LinearClassifier(classes, lr.coef_, lr.intercept_, model.describe()).save(probe)
    flags = ["--model", "senclip-tiny-vit", "--pretrained", str(weights), "--no-progress", "--workers", "1"]
    out = SimpleNamespace(root=root, scene=mosaic["path"], map=root / "map.tif", probs=root / "probs.tif",
                          tiles=root / "tiles.parquet", weights=weights, model=model, classes=classes,
                          labels=mosaic["labels"])
    assert main(["map", str(out.scene), str(out.map), *flags, "--classifier", str(probe),
                 "--probabilities", str(out.probs)]) == 0
    assert main(["embed", str(out.scene), "--out", str(out.tiles), *flags, "--stride", "32"]) == 0
    return out


@pytest.fixture(scope="session")
def explorer(made):
    from senclip.explore import Explorer, resolve_files

    return Explorer(resolve_files(made.map, made.scene, made.probs, made.tiles), made.model)


@pytest.fixture(scope="session")
def client(explorer):
    from fastapi.testclient import TestClient

    from senclip.explore.app import LOOPBACK_HOSTS, create_app

    with TestClient(create_app(explorer, LOOPBACK_HOSTS), base_url="http://127.0.0.1") as c:
        yield c
