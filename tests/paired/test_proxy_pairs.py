"""proxy-pairs on a small EuroSAT tree: manifest + cache in the embed-ground format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from senclip.data.ground_cache import GroundCache
from senclip.data.manifest import read_manifest
from senclip.data.paired import PairedDataset
from senclip.prompts.proxy import assign_prompts, build_proxy_pairs
from senclip.prompts import load_prompts

CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
           "PermanentCrop", "Residential", "River", "SeaLake"]


@pytest.fixture
def small_eurosat(tmp_path, eurosat_rgb):
    """5 symlinked images per class."""
    root = tmp_path / "eurosat"
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
        for src in sorted((eurosat_rgb / "train" / cls).glob("*.jpg"))[:5]:
            (root / cls / src.name).symlink_to(src)
    return root


def test_assign_prompts_seeded_and_varied():
    labels = np.array([0] * 6 + [1] * 2)
    a = assign_prompts(labels, [8, 3], seed=0)
    assert a.shape == (8, 5)
    assert (a == assign_prompts(labels, [8, 3], seed=0)).all()
    assert not (a == assign_prompts(labels, [8, 3], seed=1)).all()
    assert all(len(set(r)) == 5 for r in a[:6])  # 8 prompts: 5 distinct ones per image
    assert len({tuple(r) for r in a[:6]}) > 1  # images of one class get different view sets
    assert set(a[6:].ravel()) == {0, 1, 2}  # 3 prompts: cycled


def test_proxy_pairs_library(tmp_path, small_eurosat, tiny_vit):
    manifest_path, cache_dir = build_proxy_pairs(small_eurosat, tiny_vit, "ground", tmp_path / "p",
                                                 progress=False)
    df = read_manifest(manifest_path)
    assert len(df) == 50 and df["proxy"].all() and df["lat"].isna().all()
    assert df.loc[7, "point_id"] == f"Forest/{df.loc[7, 'sat_path'].rsplit('/', 1)[-1]}"
    assert [CLASSES.index(p.split("/")[0]) for p in df["point_id"]] == df["label"].tolist()
    assert (df["label_name"] == [p.split("/")[0] for p in df["point_id"]]).all()
    cache = GroundCache.open(cache_dir)
    assert cache.point_ids == list(df["point_id"]) and cache.embeddings.shape == (50, 5, 128)
    assert cache.mask.all() and cache.meta["preprocess"]["kind"] == "proxy-text-prompts"
    ground = load_prompts("ground", CLASSES, "eurosat")
    rows = (0, 23, 49)
    used = [df.loc[i, "view_prompts"].split(" | ") for i in rows]
    for i, u in zip(rows, used, strict=True):
        assert len(u) == 5 and set(u) <= set(ground[df.loc[i, "label_name"]])
    direct = tiny_vit.encode_text([t for u in used for t in u]).numpy().reshape(3, 5, -1)
    np.testing.assert_allclose(cache.embeddings[list(rows)], direct, atol=1e-5)
    sample = PairedDataset(df, cache)[12]
    assert sample["image"].shape == (3, 64, 64) and int(sample["label"]) == 2
    assert torch.equal(sample["ground"], torch.from_numpy(np.asarray(cache.embeddings[12])))
    # deterministic: another run gives the same files
    _, again = build_proxy_pairs(small_eurosat, tiny_vit, "ground", tmp_path / "q", progress=False)
    for name in ("embeddings.npy", "mask.npy", "meta.json", "point_ids.json"):
        assert (again / name).read_bytes() == (cache_dir / name).read_bytes()


def test_proxy_pairs_cli(cli, tmp_path, small_eurosat, capsys):
    out = tmp_path / "proxy"
    assert cli(["proxy-pairs", "--eurosat", str(small_eurosat), "--model", "senclip-tiny-vit",
                "--prompts", "ground", "--out", str(out), "--no-progress"]) == 0
    assert "pipeline check" in capsys.readouterr().out
    assert len(read_manifest(out / "manifest.csv")) == 50
    assert GroundCache.open(out / "ground_cache").meta["complete"]
    assert cli(["proxy-pairs", "--eurosat", str(tmp_path / "nowhere"), "--model", "senclip-tiny-vit",
                "--out", str(tmp_path / "p2"), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
