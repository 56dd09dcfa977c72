"""``senclip export --format open_clip``: a folder open_clip itself opens (local-dir: and hf-hub:)."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

from senclip.cli import main
from senclip.models import HeadConfig, ProjectionHead, create_model, save_model
from senclip.models.convert import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS, export_open_clip

TEXTS = ["a photo of a forest", "a satellite image of a highway"]


def _images(n=4, size=64, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _same_embeddings(model, clip, tokenizer, preprocess_of_clip=None) -> None:
    x = _images()
    with torch.no_grad():
        img = clip.encode_image(model.preprocess(x), normalize=True)
        txt = clip.encode_text(tokenizer(TEXTS), normalize=True)
    for got, want, what in ((model.encode_image(x), img, "image"), (model.encode_text(TEXTS), txt, "text")):
        cos = F.cosine_similarity(got, want, dim=-1).min().item()
        print(f"open_clip export {model.name} {what}: min cosine {cos:.7f}, "
              f"max abs diff {(got - want).abs().max().item():.2e}")
        assert cos >= 0.9999


@pytest.mark.parametrize("arch", ["senclip-tiny-vit", "senclip-tiny-rn-quickgelu"])
def test_exported_folder_opens_in_open_clip(tmp_path, arch, capsys):
    out = tmp_path / "oc"
    base = tmp_path / "base.safetensors"
    assert main(["export", "--base", arch, "--seed", "3", "--out", str(base)]) == 0
    assert main(["export", "--base", arch, "--pretrained", str(base), "--format", "open_clip",
                 "--out", str(out)]) == 0
    assert "local-dir:" in capsys.readouterr().out
    assert {OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS} <= {p.name for p in out.iterdir()}
    clip, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out}")
    model = create_model(arch, pretrained=str(base))
    _same_embeddings(model, clip.eval(), open_clip.get_tokenizer(f"local-dir:{out}"))
    cfg = json.loads((out / OPEN_CLIP_CONFIG).read_text())
    assert cfg["model_cfg"] == open_clip.get_model_config(arch)  # quick_gelu travels with the config
    assert cfg["preprocess_cfg"]["mean"] == pytest.approx(list(open_clip.OPENAI_DATASET_MEAN))


def test_profile_travels_to_open_clip_transform(tmp_path):
    torch.manual_seed(0)
    model = create_model("senclip-tiny-vit", preprocess="senclip")
    export_open_clip(model, tmp_path / "oc")
    _, _, transform = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'oc'}")
    norm = transform.transforms[-1]
    assert list(norm.mean) == [0.347, 0.376, 0.296] and list(norm.std) == [0.269, 0.261, 0.276]
    assert "bicubic" in repr(transform.transforms[0]).lower()


def test_exported_folder_loads_as_hf_hub_model(tmp_path, monkeypatch):
    """The same two files in a Hub repository: open_clip's hf-hub: route, from a pre-filled HF cache."""
    from huggingface_hub import constants

    torch.manual_seed(1)
    model = create_model("senclip-tiny-vit")
    folder = tmp_path / "oc"
    export_open_clip(model, folder)
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--me--senclip-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in (OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS):
        (snap / name).write_bytes((folder / name).read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    clip = open_clip.create_model("hf-hub:me/senclip-tiny", cache_dir=str(tmp_path / "hub")).eval()
    _same_embeddings(model, clip, open_clip.get_tokenizer("hf-hub:me/senclip-tiny"))


def test_what_open_clip_cannot_hold_is_refused(tmp_path, capsys):
    torch.manual_seed(2)
    model = create_model("senclip-tiny-vit")
    model.image_tower.head = ProjectionHead(HeadConfig(128, 128)).eval()
    headed = save_model(model, tmp_path / "headed.safetensors", kind="full")
    out = tmp_path / "oc"
    assert main(["export", "--base", "senclip-tiny-vit", "--pretrained", str(headed), "--format", "open_clip",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "projection head that an open_clip model cannot hold" in err
    assert "head_at_inference: drop" in err
    assert not out.exists(), "a refused export leaves nothing behind"
    for kwargs, message in [({"bands": "B04,B03,B02,B08"}, "open_clip models take RGB"),
                            ({"preprocess": "senclip-train"}, "no equivalent of profile senclip-train")]:
        torch.manual_seed(2)
        with pytest.raises(Exception, match=message):
            export_open_clip(create_model("senclip-tiny-vit", **kwargs), out)
        assert not out.exists() or not any(out.iterdir())
    assert main(["export", "--base", "senclip-tiny-vit", "--format", "open_clip",
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "writes a folder" in capsys.readouterr().err and not (tmp_path / "x.safetensors").exists()
