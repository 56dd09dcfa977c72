"""A run trained with ``model.head_at_inference: drop`` exports to a folder open_clip opens itself."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
import torch.nn.functional as F
from train_helpers import tiny_config

from senclip.cli import main
from senclip.train.run import fit


@pytest.fixture(scope="module")
def drop_run(tiny_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_drop")
    cfg = tiny_config(tiny_pairs, out, **{"trainer.max_steps": 2, "model.head_at_inference": "drop",
                                          "model.preprocess": "senclip"})
    fit(cfg, resume="none", progress=False)
    return cfg, f"{out}/checkpoints/last.ckpt"


def test_drop_head_run_opens_in_open_clip(drop_run, tiny_pairs, tmp_path, eurosat_rgb, capsys):
    from senclip.data import get_dataset
    from senclip.models import create_model, read_metadata

    _, last = drop_run
    folder, file = tmp_path / "oc", tmp_path / "model.safetensors"
    assert main(["export", "--checkpoint", last, "--format", "open_clip", "--out", str(folder)]) == 0
    assert main(["export", "--checkpoint", last, "--out", str(file)]) == 0
    assert read_metadata(file)["preprocess"]["name"] == "senclip"  # the profile trained with travels along
    senclip_model = create_model("senclip-tiny-vit", pretrained=tiny_pairs["base"], checkpoint=str(file))
    clip, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    clip.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    ds = get_dataset("eurosat", eurosat_rgb / "valid")
    x = torch.stack([ds[i]["image"] for i in range(0, 4000, 500)])
    texts = ["a photo of a forest", "a photo of a river"]
    model = senclip_model
    with torch.no_grad():
        pairs = [(model.encode_image(x), clip.encode_image(model.preprocess(x), normalize=True)),
                 (model.encode_text(texts), clip.encode_text(tokenizer(texts), normalize=True))]
    for got, want in pairs:
        cos = F.cosine_similarity(got, want, dim=-1).min().item()
        print(f"trained (head dropped) vs open_clip local-dir: min cosine {cos:.7f}, "
              f"max abs diff {(got - want).abs().max().item():.2e}")
        assert cos >= 0.9999
    pre = json.loads((folder / "open_clip_config.json").read_text())["preprocess_cfg"]
    assert pre["mean"] == [0.347, 0.376, 0.296] and pre["interpolation"] == "bicubic"


def test_kept_head_is_refused(short_keep_ckpt, tmp_path, capsys):
    out = tmp_path / "oc"
    assert main(["export", "--checkpoint", short_keep_ckpt, "--format", "open_clip", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "head_at_inference: drop" in err
    assert not out.exists()


@pytest.fixture(scope="module")
def short_keep_ckpt(tiny_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_keep")
    fit(tiny_config(tiny_pairs, out, **{"trainer.max_steps": 1}), resume="none", progress=False)
    return f"{out}/checkpoints/last.ckpt"
