"""The reference head at step 0, model.head_at_inference: drop, and checkpoints of the earlier head.

The step-0 check needs a base whose zero-shot predictions mean something: a random tiny CLIP is at
chance, so :mod:`fitted_base` fits its two projections on proxy pairs of EuroSAT ``train`` images
(about 45 % zero-shot top-1 on ``valid``, chance 10 %). Its embeddings are 512-d, ViT-B/32's width:
LayerNorm's centring moves every zero-shot score by an amount of the order of 1/D, so a 128-d test
model would flip about 2 % of its (low-margin) predictions where a CLIP-sized embedding flips well
under 1 %.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from fitted_base import class_images, fit_base
from torch import nn
from train_helpers import tiny_config

from senclip.models import create_model, read_metadata
from senclip.models.head import ProjectingHead, ResidualHead
from senclip.train.config import from_dict, load_config
from senclip.train.export import export_checkpoint
from senclip.train.run import fit

ARCH = "senclip-test-vit-512"
"""``senclip-tiny-vit`` with a 512-d embedding (registered for these tests only)."""


@pytest.fixture(scope="module")
def fitted_base(tmp_path_factory, eurosat_rgb):
    import open_clip

    from senclip.models.factory import CONFIG_DIR

    root = tmp_path_factory.mktemp("fitted")
    config = json.loads((CONFIG_DIR / "senclip-tiny-vit.json").read_text()) | {"embed_dim": 512}
    (root / "configs").mkdir()
    (root / "configs" / f"{ARCH}.json").write_text(json.dumps(config))
    open_clip.add_model_config(root / "configs")
    return str(fit_base(eurosat_rgb / "train", root / "base.safetensors", arch=ARCH))


def test_step0_tower_is_layernorm_of_the_base_embedding(fitted_base, eurosat_rgb):
    from senclip.prompts import load_prompts, text_classifier
    from senclip.train.module import SenclipModule

    base = create_model(ARCH, pretrained=fitted_base).eval()
    torch.manual_seed(0)
    module = SenclipModule(load_config(None, {"model.name": ARCH, "model.pretrained": fitted_base}).to_dict())
    tower = module.image_tower
    assert isinstance(tower.head, ResidualHead)
    images, labels, classes = class_images(eurosat_rgb / "valid", 30)  # 300 images, 30 per class
    with torch.no_grad():
        emb = base.image_tower(images, normalize=False)
        step0 = tower.eval()(images, normalize=False)
        # in training mode too (the head's dropout acts on zeros; the trunk may take other kernels)
        emb_train = base.image_tower.train()(images, normalize=False)
        step0_train = tower.train()(images, normalize=False)
    base.eval()
    expected = F.layer_norm(emb, emb.shape[-1:])
    max_diff = (step0 - expected).abs().max().item()
    assert max_diff == 0.0
    assert torch.equal(step0_train, F.layer_norm(emb_train, emb_train.shape[-1:]))

    cls = text_classifier(base, load_prompts("ground", classes, "eurosat"))
    base_pred = (F.normalize(emb, dim=-1) @ cls.T).argmax(1)
    step0_pred = (F.normalize(step0, dim=-1) @ cls.T).argmax(1)
    base_top1 = (base_pred == labels).float().mean().item()
    same = (base_pred == step0_pred).float().mean().item()
    print(f"step-0: max |tower - LayerNorm(base)| = {max_diff}; same predictions {same:.2%} of "
          f"{len(labels)} EuroSAT valid images; base top-1 {base_top1:.1%}, step-0 top-1 "
          f"{(step0_pred == labels).float().mean().item():.1%}")
    assert base_top1 >= 0.3  # far above chance (10 %)
    assert same >= 0.99


def _images(tiny_pairs) -> torch.Tensor:
    from senclip.data.manifest import read_manifest
    from senclip.data.paired import read_chip

    paths = read_manifest(tiny_pairs["manifest"])["sat_path"][:4]
    return torch.stack([read_chip(p)["image"] for p in paths])


def test_head_at_inference_drop_exports_the_trained_trunk(tiny_pairs, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(tiny_pairs, out, **{"model.head_at_inference": "drop", "trainer.max_steps": 2,
                                         "trainer.val_every_n_steps": 0})
    module = fit(cfg, resume="none", progress=False)["module"].eval()
    head = module.image_tower.head
    assert isinstance(head, ResidualHead) and head.projection.weight.abs().sum() > 0  # it was trained
    dest = tmp_path / "model.safetensors"
    export_checkpoint(out / "checkpoints" / "last.ckpt", dest)
    meta = read_metadata(dest)
    assert meta["head"] is None
    assert meta["extra"]["training"]["config"]["model"]["head_at_inference"] == "drop"
    model = create_model("senclip-tiny-vit", pretrained=str(dest))
    assert isinstance(model.image_tower.head, nn.Identity)
    trained = module.image_tower.state_dict()
    exported = model.image_tower.state_dict()
    assert not any(k.startswith("head.") for k in exported)
    assert exported.keys() == {k for k in trained if not k.startswith("head.")}
    for k, v in exported.items():
        assert torch.equal(v.cpu(), trained[k].cpu()), k
    x = _images(tiny_pairs)
    with torch.no_grad():
        trunk = F.normalize(module.image_tower.visual(module.image_tower.preprocess(x)), dim=-1)
        with_head = module(x)
    got = model.encode_image(x)
    torch.testing.assert_close(got, trunk, rtol=0, atol=1e-6)
    assert not torch.allclose(got, with_head, atol=1e-4)  # the trained head is what was left out


# the options this version added; a checkpoint written before has none of them
NEW_MODEL_OPTIONS = ("head_kind", "head_at_inference", "pool_out", "ground_views")
NEW_OPTIONS = {"model": NEW_MODEL_OPTIONS, "loss": ("queue_init",),
               "optim": ("decay_all", "scheduler", "step_size", "step_gamma", "step_unit")}


def _as_before(config: dict) -> dict:
    for section, keys in NEW_OPTIONS.items():
        for key in keys:
            config[section].pop(key)
    return config


def test_checkpoints_of_the_earlier_head_export_and_resume_as_before(tiny_pairs, tmp_path):
    out = tmp_path / "old"
    cfg = tiny_config(tiny_pairs, out, **{"model.head_kind": "projecting", "trainer.max_steps": 2,
                                         "trainer.val_every_n_steps": 0})
    module = fit(cfg, resume="none", progress=False)["module"].eval()
    last = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    _as_before(ckpt["hyper_parameters"]["config"])
    assert "image_tower.head.proj.weight" in ckpt["state_dict"]  # the earlier head's names
    torch.save(ckpt, last)

    dest = tmp_path / "old.safetensors"
    export_checkpoint(last, dest)
    assert read_metadata(dest)["head"]["kind"] == "projecting"
    model = create_model("senclip-tiny-vit", pretrained=str(dest))
    assert isinstance(model.image_tower.head, ProjectingHead)
    x = _images(tiny_pairs)
    with torch.no_grad():
        expected = module(x)
    torch.testing.assert_close(model.encode_image(x), expected, rtol=0, atol=1e-6)

    # resuming with the run's config.yaml of that version (no head_kind: now read as residual)
    raw = _as_before(yaml.safe_load((out / "config.yaml").read_text()))
    raw["trainer"]["max_steps"] = 3
    resumed = fit(from_dict(raw), resume="auto", progress=False)
    assert resumed["global_step"] == 3 and isinstance(resumed["module"].image_tower.head, ProjectingHead)
