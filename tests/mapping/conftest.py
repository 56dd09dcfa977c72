"""Fixtures for mapping tests: real rasters built from ../shared/data (never copied into the repo)."""

from __future__ import annotations

import numpy as np
import pytest
from mapping_helpers import GRID, encode_blocks

from senclip.testing.rasters import eurosat_mosaic


@pytest.fixture(scope="session")
def mosaic(tmp_path_factory, eurosat_rgb):
    """4x4 blocks of 64 px EuroSAT tiles (RGB, B04/B03/B02 descriptions) with known classes."""
    return eurosat_mosaic(eurosat_rgb, tmp_path_factory.mktemp("mosaic") / "mosaic.tif", GRID)


@pytest.fixture(scope="session")
def probe(tiny_vit, mosaic):
    """A few-shot linear classifier fitted to the mosaic blocks' true classes."""
    from sklearn.linear_model import LogisticRegression

    from senclip.evaluate.fewshot import LinearClassifier

    emb = encode_blocks(tiny_vit, mosaic["images"]).numpy()
    classes = sorted(set(mosaic["labels"]))
    y = np.array([classes.index(lbl) for lbl in mosaic["labels"]])
    lr = LogisticRegression(C=1e4, max_iter=5000).fit(emb, y)
    return LinearClassifier(classes, lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32),
                            tiny_vit.describe())


@pytest.fixture(scope="session")
def tiny_vit_file(tmp_path_factory, tiny_vit):
    """The session's tiny ViT saved as a full senclip checkpoint (for subprocess runs)."""
    from senclip.models import save_model

    return save_model(tiny_vit, tmp_path_factory.mktemp("model") / "tiny-vit.safetensors", kind="full")


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    """Mapping tests run with one intra-op thread: reading threads share the 2 CPU cores."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the commands' own thread setting keeps it
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
