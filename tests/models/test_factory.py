"""The open_clip model factory: tiny architectures, weight routes, safe loading."""

from __future__ import annotations

import pickle

import open_clip
import pytest
import torch

from senclip.errors import SenclipError
from senclip.models import HeadConfig, ProjectionHead, create_model, list_architectures, read_metadata, save_model


def _images(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


@pytest.mark.parametrize("name", ["senclip-tiny-vit", "senclip-tiny-rn"])
def test_tiny_architectures_are_registered_and_small(name):
    assert name in list_architectures()
    model = create_model(name)
    n_visual = sum(p.numel() for p in model.image_tower.parameters())
    assert 100_000 < n_visual < 5_000_000
    assert model.image_tower.image_size == 64
    assert model.image_tower.bands == ("B04", "B03", "B02")
    emb = model.encode_image(_images())
    assert emb.shape == (4, 128)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(4))
    text = model.encode_text(["a photo of a forest", "a satellite image of a river"])
    assert text.shape == (2, 128)


def test_returns_towers_tokenizer_and_preprocessing(tiny_vit):
    tokens = tiny_vit.tokenizer(["a wheat field"])
    assert tokens.shape == (1, 77)
    # preprocessing resizes any input size to the tower's and normalises with the weights' mean/std
    x = torch.full((1, 3, 100, 100), 0.5)
    y = tiny_vit.preprocess(x)
    assert y.shape == (1, 3, 64, 64)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(y, ((x[..., :64, :64] - mean) / std).expand(1, 3, 64, 64))


def test_open_clip_state_dict_roundtrip_through_pretrained_path(tmp_path):
    torch.manual_seed(1)
    clip = open_clip.create_model("senclip-tiny-vit")
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in clip.state_dict().items()}}, path)
    model = create_model("senclip-tiny-vit", pretrained=str(path))
    x = _images()
    with torch.no_grad():
        expected = clip.eval().encode_image(model.preprocess(x), normalize=True)
        expected_text = clip.encode_text(open_clip.get_tokenizer("senclip-tiny-vit")(["forest"]), normalize=True)
    # open_clip's own forward (under no_grad it may take fused kernels): equal up to float rounding
    torch.testing.assert_close(model.encode_image(x), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.encode_text(["forest"]), expected_text, rtol=0, atol=1e-6)
    assert model.describe()["pretrained"] == str(path)


@pytest.mark.parametrize("kind", ["full", "image"])
def test_senclip_safetensors_roundtrip(tmp_path, kind):
    torch.manual_seed(2)
    base = tmp_path / "base.safetensors"
    model = create_model("senclip-tiny-rn")
    save_model(model, base, kind="full")
    model = create_model("senclip-tiny-rn", pretrained=str(base))
    model.image_tower.head = ProjectionHead(HeadConfig(128, 128, dropout=0.1)).eval()
    path = tmp_path / f"{kind}.safetensors"
    save_model(model, path, kind=kind)
    meta = read_metadata(path)
    assert meta["kind"] == kind and meta["head"] == {"dim_in": 128, "dim_out": 128, "dropout": 0.1,
                                                     "kind": "projecting"}
    x = _images()
    if kind == "full":
        loaded = create_model("senclip-tiny-rn", pretrained=str(path))
    else:  # an image tower pairs with the frozen text tower of --pretrained
        loaded = create_model("senclip-tiny-rn", pretrained=str(base), checkpoint=path)
    assert isinstance(loaded.image_tower.head, ProjectionHead), "the trained head must be used at inference"
    torch.testing.assert_close(loaded.encode_image(x), model.eval().encode_image(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded.encode_text(["pasture"]), model.encode_text(["pasture"]), rtol=0, atol=0)


def test_checkpoint_for_another_architecture_is_refused(tmp_path):
    path = save_model(create_model("senclip-tiny-rn"), tmp_path / "rn.safetensors")
    with pytest.raises(SenclipError, match="senclip-tiny-rn"):
        create_model("senclip-tiny-vit", checkpoint=path)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED",))


def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Exploit()}, f)
    with pytest.raises(SenclipError):
        create_model("senclip-tiny-vit", pretrained=str(path))
    assert not (tmp_path / "EXPLOITED").exists()


def test_bad_names_and_paths_give_one_line_errors(tmp_path):
    with pytest.raises(SenclipError, match="unknown architecture"):
        create_model("ViT-Nope-99")
    with pytest.raises(SenclipError, match="not found"):
        create_model("senclip-tiny-vit", pretrained=str(tmp_path / "missing.pt"))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(SenclipError):
        create_model("senclip-tiny-vit", pretrained=str(corrupt))


def test_remote_weights_fail_cleanly_offline():
    # HF_HUB_OFFLINE=1 and no network in tests: the tag / hub routes must report, not hang or trace back.
    with pytest.raises(SenclipError, match="could not load"):
        create_model("senclip-tiny-vit", pretrained="hf-hub:nobody/nothing")
    with pytest.raises(SenclipError, match="could not load"):
        create_model("RN50", pretrained="openai")
