"""Tiny paired data for training tests: EuroSAT chips with proxy ground views."""

from __future__ import annotations

import pytest

PER_CLASS = 4


@pytest.fixture(scope="session")
def tiny_pairs(tmp_path_factory, eurosat_rgb) -> dict:
    """A fixed random tiny-ViT base file and proxy pairs for 4 train images per class (40 points)."""
    from senclip.prompts.proxy import build_proxy_pairs
    from senclip.models import create_model
    from senclip.train.export import export_base

    root = tmp_path_factory.mktemp("pairs")
    tree = root / "eurosat"
    for class_dir in sorted((eurosat_rgb / "train").iterdir()):
        (tree / class_dir.name).mkdir(parents=True)
        for img in sorted(class_dir.glob("*.jpg"))[:PER_CLASS]:
            (tree / class_dir.name / img.name).symlink_to(img)
    base = root / "base.safetensors"
    export_base("senclip-tiny-vit", base, seed=0)
    manifest, cache = build_proxy_pairs(tree, create_model("senclip-tiny-vit", pretrained=str(base)),
                                        out=root / "proxy", progress=False)
    return {"base": str(base), "manifest": str(manifest), "cache": str(cache), "root": str(root)}

