from __future__ import annotations

import os
from pathlib import Path

import pytest

CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
           "PermanentCrop", "Residential", "River", "SeaLake"]


def link_tree(src: Path, dst: Path, per_class: int, start: int = 0) -> Path:
    """A EuroSAT-layout folder of symlinks to ``per_class`` real images per class."""
    for c in CLASSES:
        files = sorted((src / c).glob("*.jpg"))[start:start + per_class]
        (dst / c).mkdir(parents=True, exist_ok=True)
        for f in files:
            os.symlink(f, dst / c / f.name)
    return dst


@pytest.fixture
def make_tree():
    """``make_tree(src, dst, per_class, start=0)``: see :func:`link_tree`."""
    return link_tree


@pytest.fixture
def classes():
    return list(CLASSES)


@pytest.fixture
def small_valid(eurosat_rgb, tmp_path) -> Path:
    return link_tree(eurosat_rgb / "valid", tmp_path / "valid_small", per_class=12)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SENCLIP_CACHE", str(tmp_path / "cache"))
