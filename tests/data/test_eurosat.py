"""EuroSAT RGB: layout, labels, pixel values, transforms, errors, fingerprint, download hook."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from senclip.data import DATASETS, EuroSAT, get_dataset
from senclip.data.transforms import ToFloat
from senclip.errors import DatasetNotFoundError, SenclipError

CANONICAL = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
             "Pasture", "PermanentCrop", "Residential", "River", "SeaLake"]


@pytest.fixture(scope="module")
def valid(eurosat_rgb):
    return get_dataset("eurosat", eurosat_rgb / "valid", transforms=None)


def test_registry_and_classes(valid):
    assert DATASETS["eurosat"] is EuroSAT
    assert valid.classes == CANONICAL
    assert valid.name == "eurosat" and not valid.multilabel
    assert valid.all_bands == ("B04", "B03", "B02")


def test_real_split_paths_and_labels_match_folders(valid, eurosat_rgb):
    counts = {c: len(os.listdir(eurosat_rgb / "valid" / c)) for c in CANONICAL}
    assert len(valid) == sum(counts.values()) == 4050
    assert valid.labels.dtype == np.int64 and valid.labels.shape == (len(valid),)
    for k, c in enumerate(CANONICAL):
        assert int((valid.labels == k).sum()) == counts[c]
    # every label is the canonical index of the folder the file lies in
    folder_idx = np.array([CANONICAL.index(os.path.basename(os.path.dirname(p))) for p in valid.paths])
    np.testing.assert_array_equal(folder_idx, valid.labels)


def test_train_and_valid_share_label_indices(valid, eurosat_rgb):
    train = EuroSAT(eurosat_rgb / "train")
    assert train.classes == valid.classes
    # a class with fewer images (Pasture) does not shift the indices of the next classes
    pasture = CANONICAL.index("Pasture")
    rows = np.flatnonzero(train.labels == pasture)
    folders = {os.path.basename(os.path.dirname(train.paths[i])) for i in rows}
    assert folders == {"Pasture"}


def test_sample_contract_and_pixels_match_pil(valid):
    i = int(np.flatnonzero(valid.labels == CANONICAL.index("SeaLake"))[3])
    s = valid[i]
    assert set(s) >= {"image", "label", "path", "bands"}
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 64, 64)
    assert s["label"].dtype == torch.int64 and s["label"].ndim == 0 and int(s["label"]) == 9
    assert s["path"] == valid.paths[i] and s["bands"] == ("B04", "B03", "B02")
    # raw stored 8-bit values, channels in R, G, B order (same as PIL's decode)
    ref = np.asarray(Image.open(s["path"]).convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
    np.testing.assert_array_equal(s["image"].numpy(), ref)
    assert s["image"].max() > 1.0


def test_default_transforms_scale_to_unit_range(eurosat_rgb, valid):
    ds = get_dataset("eurosat", eurosat_rgb / "valid")
    s, raw = ds[17], valid[17]
    torch.testing.assert_close(s["image"], raw["image"] / 255.0)
    assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
    # a reordering of RGB bands selects channels, then scales
    bgr = get_dataset("eurosat", eurosat_rgb / "valid", bands=("B02", "B03", "B04"))
    torch.testing.assert_close(bgr[17]["image"], raw["image"].flip(0) / 255.0)
    assert bgr[17]["bands"] == ("B02", "B03", "B04")


def test_custom_transforms_callable(eurosat_rgb):
    ds = get_dataset("eurosat", eurosat_rgb / "valid", transforms=ToFloat(0.5))
    ref = get_dataset("eurosat", eurosat_rgb / "valid", transforms=None)
    torch.testing.assert_close(ds[5]["image"], ref[5]["image"] * 0.5)


def test_dataloader_batches_with_workers(eurosat_rgb_tree):
    root = eurosat_rgb_tree(per_class=2)
    ds = get_dataset("eurosat", root)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(b["image"].shape[0] for b in batches) == 20
    assert batches[0]["image"].shape == (8, 3, 64, 64)
    assert batches[0]["label"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("nested", ["2750", "EuroSAT_RGB"])
def test_release_nested_root_accepted(eurosat_rgb_tree, nested):
    root = eurosat_rgb_tree(per_class=1, nested=nested)
    ds = EuroSAT(root)
    assert len(ds) == 10 and ds.root == root / nested
    assert ds[0]["image"].shape == (3, 64, 64)


def test_missing_root_says_expected_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"<root>/<ClassName>/\*\.jpg"):
        get_dataset("eurosat", tmp_path / "nowhere")


def test_split_parent_root_suggests_split_folder(eurosat_rgb):
    with pytest.raises(DatasetNotFoundError, match=r"did you mean .*train"):
        EuroSAT(eurosat_rgb)


def test_empty_class_folder_is_named(eurosat_rgb_tree):
    root = eurosat_rgb_tree(per_class=1)
    for f in (root / "Highway").iterdir():
        f.unlink()
    with pytest.raises(SenclipError, match="Highway"):
        EuroSAT(root)


def test_missing_class_folder_is_named(eurosat_rgb_tree):
    root = eurosat_rgb_tree(per_class=1)
    for f in (root / "River").iterdir():
        f.unlink()
    (root / "River").rmdir()
    with pytest.raises(SenclipError, match="River"):
        EuroSAT(root)


@pytest.mark.parametrize("kind", ["garbage", "header-only", "truncated"])
def test_corrupt_image_names_file(eurosat_rgb_tree, kind):
    root = eurosat_rgb_tree(per_class=1)
    good = next((root / "Forest").iterdir()).read_bytes()
    content = {"garbage": b"this is not a jpeg", "header-only": good[:20],
               "truncated": good[: len(good) // 2]}
    bad = root / "Forest" / "Forest_bad.jpg"
    bad.write_bytes(content[kind])
    ds = EuroSAT(root)
    i = ds.paths.index(str(bad))
    ds[i - 1]  # neighbours still load
    with pytest.raises(SenclipError, match=r"Forest_bad\.jpg"):
        ds[i]


def test_bad_arguments(eurosat_rgb):
    with pytest.raises(SenclipError, match="unknown dataset"):
        get_dataset("eurosat-rgb-typo", eurosat_rgb / "valid")
    with pytest.raises(SenclipError, match="eurosat-ms"):
        get_dataset("eurosat", eurosat_rgb / "valid", bands=("B08", "B04", "B03"))
    with pytest.raises(SenclipError, match="transforms"):
        get_dataset("eurosat", eurosat_rgb / "valid", transforms="fancy")
    with pytest.raises(SenclipError, match="transforms"):
        EuroSAT(eurosat_rgb / "valid", transforms=42)
    with pytest.raises(IndexError):
        EuroSAT(eurosat_rgb / "valid")[4050]


def test_fingerprint_is_stable_and_tracks_files(eurosat_rgb_tree, eurosat_rgb):
    root = eurosat_rgb_tree(per_class=2)
    a, b = EuroSAT(root).fingerprint(), EuroSAT(root, transforms=ToFloat()).fingerprint()
    assert a == b and len(a) == 64 and int(a, 16) >= 0
    extra = root / "Forest" / "Forest_extra.jpg"
    extra.write_bytes((eurosat_rgb / "valid" / "Forest" / os.listdir(eurosat_rgb / "valid" / "Forest")[5])
                      .read_bytes())
    c = EuroSAT(root).fingerprint()
    assert c != a
    extra.write_bytes(extra.read_bytes() + b"\0")  # same names, different size
    d = EuroSAT(root).fingerprint()
    assert d not in (a, c)
    extra.rename(root / "Forest" / "Forest_renamed.jpg")  # same sizes, different name
    assert EuroSAT(root).fingerprint() not in (a, c, d)


def test_download_flag_calls_ensure_dataset(tmp_path, monkeypatch, eurosat_rgb_tree):
    calls = []
    built = {}

    def ensure_dataset(name, root):
        calls.append((name, root))
        built["root"] = eurosat_rgb_tree(per_class=1)
        return built["root"]

    fake = types.ModuleType("senclip.data.download")
    fake.ensure_dataset = ensure_dataset
    monkeypatch.setitem(sys.modules, "senclip.data.download", fake)
    target = tmp_path / "will_be_downloaded"
    ds = get_dataset("eurosat", target, download=True)
    assert calls == [("eurosat", target)] and len(ds) == 10 and ds.root == built["root"]
    # data already there: no second download
    get_dataset("eurosat", built["root"], download=True)
    assert len(calls) == 1
