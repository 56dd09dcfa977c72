"""embed-ground: the photo cache, its key, resumability and the paired dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from senclip.data import ground_cache as gc
from senclip.data.ground_cache import GroundCache, build_ground_cache, load_photo
from senclip.data.manifest import read_manifest, write_manifest
from senclip.data.paired import PairedDataset
from senclip.errors import SenclipError


@pytest.fixture
def manifest(shared_manifest):
    return read_manifest(shared_manifest)


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_load_photo_resizes_any_photo(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (150, 300, 3), dtype=np.uint8)  # landscape, 2:1
    Image.fromarray(arr).save(tmp_path / "wide.png")
    x = load_photo(str(tmp_path / "wide.png"), 64)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # centre crop: the left/right quarters are cut, so the crop's mean equals the centre's mean
    centre = torch.from_numpy(arr[:, 75:225].astype(np.float32) / 255).permute(2, 0, 1).mean()
    assert abs(float(x.mean()) - float(centre)) < 0.01
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(SenclipError, match="unreadable ground photo"):
        load_photo(str(tmp_path / "bad.jpg"), 64)


def test_cache_contents_match_the_frozen_tower(manifest, photo_cache, tiny_vit):
    cache = photo_cache
    assert cache.embeddings.shape == (10, 5, 128) and cache.mask.shape == (10, 5)
    assert cache.point_ids == [f"pt{i:03d}" for i in range(10)]
    expected_mask = np.array([[manifest.loc[i, f"photo_{v}"] is not None for v in "NESWP"]
                              for i in range(10)])
    assert (np.asarray(cache.mask) == expected_mask).all()
    assert cache.mask[3].tolist() == [False, False, False, False, True]
    emb = np.asarray(cache.embeddings)
    assert np.allclose(np.linalg.norm(emb[expected_mask], axis=-1), 1.0, atol=1e-5)
    assert not emb[~expected_mask].any()
    # one photo re-encoded by hand
    photo = manifest.loc[5, "photo_S"]
    with torch.no_grad():
        direct = tiny_vit.image_tower(load_photo(photo, 64)[None]).numpy()[0]
    np.testing.assert_allclose(emb[5, 2], direct, atol=1e-5)
    meta = cache.meta
    assert meta["complete"] and meta["model"] == "senclip-tiny-vit" and meta["dim"] == 128
    assert meta["views"] == ["N", "E", "S", "W", "P"] and meta["preprocess"]["image_size"] == 64
    e, m = cache.lookup(["pt007", "pt001"])
    assert e.dtype == np.float32 and e.shape == (2, 5, 128) and m.dtype == bool
    np.testing.assert_array_equal(e[1], emb[1])
    with pytest.raises(SenclipError, match=r"1 point.*not in ground cache.*'nope'"):
        cache.lookup(["pt001", "nope"])


def test_interrupted_build_resumes_to_identical_cache(tmp_path, manifest, photo_cache, tiny_vit,
                                                       monkeypatch):
    whole = photo_cache  # built in one go with the same batch size
    real_write = gc.CacheWriter.write
    calls = []

    def dying_write(self, start, emb, mask):
        if calls:
            raise KeyboardInterrupt  # the process stops after the first chunk was flushed
        calls.append(start)
        real_write(self, start, emb, mask)

    monkeypatch.setattr(gc.CacheWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        build_ground_cache(manifest, tiny_vit, tmp_path / "resumed", batch_size=10, progress=False)
    assert json.loads((tmp_path / "resumed" / "progress.json").read_text()) == {"rows_done": 2}
    with pytest.raises(SenclipError, match="unfinished"):
        GroundCache.open(tmp_path / "resumed")
    starts = []

    def counting_write(self, start, emb, mask):
        starts.append(start)
        real_write(self, start, emb, mask)

    monkeypatch.setattr(gc.CacheWriter, "write", counting_write)
    resumed = build_ground_cache(manifest, tiny_vit, tmp_path / "resumed", batch_size=10, progress=False)
    assert starts[0] == 2  # continued, did not start over
    assert _files(tmp_path / "resumed") == _files(whole.path)
    np.testing.assert_array_equal(resumed.embeddings, whole.embeddings)


def test_finished_cache_is_reused_and_other_model_refused(tmp_path, manifest, photo_cache, tiny_vit, tiny_rn,
                                                          monkeypatch):
    before = _files(photo_cache.path)
    monkeypatch.setattr(gc.CacheWriter, "write", lambda *a: pytest.fail("recomputed a finished cache"))
    build_ground_cache(manifest, tiny_vit, photo_cache.path, batch_size=10, progress=False)
    assert _files(photo_cache.path) == before
    with pytest.raises(SenclipError, match=r"built differently.*model='senclip-tiny-vit'"):
        build_ground_cache(manifest, tiny_rn, photo_cache.path, batch_size=10, progress=False)
    with pytest.raises(SenclipError, match=r"built differently.*point_ids_sha256"):
        build_ground_cache(manifest.iloc[:5], tiny_vit, photo_cache.path, batch_size=10, progress=False)
    assert _files(photo_cache.path) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SenclipError, match="not empty and not a ground cache"):
        build_ground_cache(manifest, tiny_vit, tmp_path / "other", progress=False)
    with pytest.raises(SenclipError, match="not a ground-embedding cache"):
        GroundCache.open(tmp_path / "other")


def test_paired_dataset_samples(manifest, photo_cache):
    cache = photo_cache
    ds = PairedDataset(manifest, cache)
    s = ds[3]
    assert s["image"].shape == (3, 64, 64) and s["image"].dtype == torch.float32
    assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
    assert s["ground"].shape == (5, 128) and s["ground_mask"].tolist() == [False] * 4 + [True]
    assert s["point_id"] == "pt003" and s["label"].dtype == torch.int64 and int(s["label"]) == 0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["ground_mask"].shape == (4, 5)
    no_labels = PairedDataset(manifest.drop(columns=["label"]), cache)
    assert int(no_labels[0]["label"]) == -1
    with pytest.raises(SenclipError, match="not in ground cache"):
        PairedDataset(manifest.assign(point_id=[f"x{i}" for i in range(10)]), cache)


def test_cli_embed_ground(cli, tmp_path, frame, capsys):
    manifest_csv = write_manifest(frame(4), tmp_path / "m.csv")
    out = tmp_path / "cli_cache"
    args = ["embed-ground", "--manifest", str(manifest_csv), "--model", "senclip-tiny-vit",
            "--out", str(out), "--batch-size", "16", "--workers", "0", "--no-progress"]
    assert cli(args) == 0
    assert "4 points, 13 photos, dim 128" in capsys.readouterr().out
    assert GroundCache.open(out).meta["complete"]
    assert cli(["embed-ground", "--manifest", str(manifest_csv), "--model", "senclip-tiny-rn",
                "--out", str(out), "--no-progress"]) == 2
    assert "built differently" in capsys.readouterr().err
