"""Preprocessing profiles: built-ins, per-band files, checkpoints, the CLI flag."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from senclip.cli import main
from senclip.errors import SenclipError
from senclip.models import create_model, read_metadata, save_model
from senclip.models.preprocess import PROFILES, SENCLIP_MEAN, SENCLIP_STD
from senclip.models.towers import Preprocess

ARCH = "senclip-tiny-vit"


def _stats(model) -> tuple[list, list]:
    pre = model.image_tower.preprocess
    return pre.mean.flatten().tolist(), pre.std.flatten().tolist()


def test_senclip_profile_changes_the_towers_preprocess():
    torch.manual_seed(0)
    default = create_model(ARCH)
    pre = default.image_tower.preprocess
    assert pre.profile is None and pre.interpolation == "bilinear"
    torch.testing.assert_close(pre.mean.flatten(), torch.tensor(open_clip.OPENAI_DATASET_MEAN))
    torch.manual_seed(0)
    model = create_model(ARCH, preprocess="senclip")
    pre = model.image_tower.preprocess
    assert pre.profile == "senclip" and pre.interpolation == "bicubic" and pre.antialias
    torch.testing.assert_close(pre.mean.flatten(), torch.tensor(SENCLIP_MEAN))
    torch.testing.assert_close(pre.std.flatten(), torch.tensor(SENCLIP_STD))
    x = torch.rand(2, 3, 100, 100, generator=torch.Generator().manual_seed(1))
    want = F.interpolate(x, size=(64, 64), mode="bicubic", antialias=True, align_corners=False)
    want = (want - torch.tensor(SENCLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(SENCLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(pre(x), want)
    assert not torch.allclose(default.preprocess(x), pre(x))
    # same trunk, other input statistics: other embeddings; the profile is part of the model's identity
    assert not torch.allclose(model.encode_image(x), default.encode_image(x))
    assert model.describe()["preprocess"]["name"] == "senclip" and "preprocess" not in default.describe()


def test_bicubic_profile_follows_pils_resize(eurosat_rgb):
    """The reference resizes 8-bit PIL images with BICUBIC; antialiased torch bicubic is the same kernel."""
    paths = sorted((eurosat_rgb / "valid").rglob("*.jpg"))[::400]
    errors = {"bicubic": [], "bilinear": []}
    for p in paths:
        im = Image.open(p).convert("RGB")
        ref = torch.from_numpy(np.asarray(im.resize((224, 224), Image.BICUBIC)).copy()).permute(2, 0, 1) / 255
        x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255
        for mode in errors:
            out = Preprocess(224, (0, 0, 0), (1, 1, 1), interpolation=mode)(x)[0]
            errors[mode].append((out - ref).abs().mean().item())
    bicubic, bilinear = np.mean(errors["bicubic"]), np.mean(errors["bilinear"])
    print(f"mean |senclip - PIL| over {len(paths)} EuroSAT images, 64 -> 224 px: bicubic {bicubic:.5f}, "
          f"bilinear {bilinear:.5f}")
    assert bicubic < 0.002 and bicubic < bilinear / 2


def test_training_profile_stretches_and_crops():
    pre = Preprocess(64, (0, 0, 0), (1, 1, 1))
    from senclip.models.preprocess import apply_profile

    tower = type("T", (), {})()
    tower.preprocess, tower.bands = pre, ("B04", "B03", "B02")
    apply_profile(tower, "senclip-train")
    assert (pre.minmax, pre.center_crop, pre.interpolation) == (True, 32, "bilinear")
    x = torch.rand(1, 3, 100, 100, generator=torch.Generator().manual_seed(2)) * 0.3 + 0.1
    crop = x[..., 34:66, 34:66]
    stretched = torch.round((crop - x.min()) / (x.max() - x.min()) * 255) / 255  # min-max of the whole chip
    want = F.interpolate(stretched, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    mean, std = torch.tensor(SENCLIP_MEAN).view(1, 3, 1, 1), torch.tensor(SENCLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(pre(x), (want - mean) / std)
    with pytest.raises(ValueError, match="centre crop of 32 px"):
        pre(torch.rand(1, 3, 16, 16))


def test_profile_file_gives_statistics_by_band_name(tmp_path):
    spec = tmp_path / "s2.yaml"
    spec.write_text("interpolation: bicubic\nbands:\n  B04: [0.1, 0.05]\n  B08: {mean: 0.3, std: 0.1}\n")
    torch.manual_seed(0)
    model = create_model(ARCH, bands="B04,B03,B02,B08", preprocess=str(spec))
    mean, std = _stats(model)
    base_mean = list(open_clip.OPENAI_DATASET_MEAN)
    assert mean == pytest.approx([0.1, base_mean[1], base_mean[2], 0.3])
    assert std[0] == pytest.approx(0.05) and std[3] == pytest.approx(0.1)
    assert model.image_tower.preprocess.profile == str(spec)
    # lists in the tower's band order (JSON)
    lists = tmp_path / "lists.json"
    lists.write_text(json.dumps({"mean": [0.2, 0.3, 0.4], "std": [0.5, 0.5, 0.5], "antialias": False}))
    model = create_model(ARCH, preprocess=str(lists))
    assert _stats(model) == (pytest.approx([0.2, 0.3, 0.4]), pytest.approx([0.5, 0.5, 0.5]))
    assert model.image_tower.preprocess.antialias is False
    # mistakes: one line each
    bad = tmp_path / "bad.yaml"
    for text, message in [("bands: {B11: [0.1, 0.1]}\n", "none of the tower's bands"),
                          ("mean: [0.1, 0.2]\nstd: [1, 1]\n", "2 mean/std values, but the tower takes 3"),
                          ("interpolation: lanczos\nmean: [0, 0, 0]\nstd: [1, 1, 1]\n",
                           "interpolation must be"),
                          ("bands: {B04: [0.1, 0]}\n", "std 0.0; it must be positive"),
                          ("gamma: 2\n", "unknown preprocessing setting")]:
        bad.write_text(text)
        with pytest.raises(SenclipError, match=message):
            create_model(ARCH, preprocess=str(bad))
    with pytest.raises(SenclipError, match="unknown preprocessing profile 'nope'"):
        create_model(ARCH, preprocess="nope")
    assert set(PROFILES) == {"openai", "senclip", "senclip-train"}


@pytest.mark.parametrize("kind", ["full", "image"])
def test_profile_round_trips_through_checkpoints(tmp_path, kind):
    torch.manual_seed(3)
    base = tmp_path / "base.safetensors"
    save_model(create_model(ARCH), base, kind="full")
    model = create_model(ARCH, pretrained=str(base), preprocess="senclip")
    path = save_model(model, tmp_path / f"{kind}.safetensors", kind=kind)
    assert read_metadata(path)["preprocess"] == PROFILES["senclip"].settings()
    if kind == "full":
        loaded = create_model(ARCH, pretrained=str(path))
    else:  # the base's own (default) preprocessing is replaced by the checkpoint's
        loaded = create_model(ARCH, pretrained=str(base), checkpoint=str(path))
    pre, want = loaded.image_tower.preprocess, model.image_tower.preprocess
    assert pre.settings() == want.settings()
    assert _stats(loaded) == _stats(model)
    x = torch.rand(3, 3, 100, 100, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x), rtol=0, atol=0)
    # an explicit profile still wins over the recorded one
    route = {"pretrained": str(path)}
    if kind == "image":
        route = {"pretrained": str(base), "checkpoint": str(path)}
    assert create_model(ARCH, preprocess="openai", **route).image_tower.preprocess.profile == "openai"


def test_checkpoint_without_preprocess_header_gets_the_defaults(tmp_path):
    """Files written before profiles existed load as they did: bilinear, no profile."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    torch.manual_seed(5)
    base = tmp_path / "base.safetensors"
    save_model(create_model(ARCH), base, kind="full")
    profiled = create_model(ARCH, pretrained=str(base), preprocess="senclip")
    new = save_model(profiled, tmp_path / "i.safetensors")
    with safe_open(str(new), framework="pt") as f:
        meta = json.loads(f.metadata()["senclip"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    del meta["preprocess"]
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={"senclip": json.dumps(meta)})
    loaded = create_model(ARCH, pretrained=str(base), checkpoint=str(old), preprocess=None)
    assert loaded.image_tower.preprocess.settings()["interpolation"] == "bilinear"
    assert loaded.image_tower.preprocess.profile is None


def test_preprocess_flag_on_commands(tmp_path, eurosat_rgb, capsys):
    data = tmp_path / "eurosat"
    for class_dir in sorted((eurosat_rgb / "valid").iterdir()):
        (data / class_dir.name).mkdir(parents=True)
        for img in sorted(class_dir.glob("*.jpg"))[:1]:
            (data / class_dir.name / img.name).symlink_to(img)
    base = tmp_path / "base.safetensors"
    assert main(["export", "--base", ARCH, "--seed", "0", "--out", str(base)]) == 0
    out = tmp_path / "zs.json"
    argv = ["zeroshot", "--model", ARCH, "--pretrained", str(base), "--dataset", "eurosat",
            "--data", str(data), "--out", str(out), "--no-cache", "--workers", "0", "--no-progress"]
    assert main([*argv, "--preprocess", "senclip"]) == 0
    assert json.loads(out.read_text())["model"]["preprocess"]["name"] == "senclip"
    capsys.readouterr()
    assert main([*argv[:-1], "--preprocess", "nope", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown preprocessing profile 'nope'" in err


def test_training_config_has_a_preprocess_field():
    from senclip.train.config import load_config

    cfg = load_config(None, {"model.preprocess": "senclip"})
    assert cfg.model.preprocess == "senclip"
    assert load_config(None, {}).model.preprocess is None
