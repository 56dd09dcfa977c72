"""Heads: the reference's zero-initialised residual head, the projecting head, stored configs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from senclip.errors import SenclipError
from senclip.models import create_model, read_metadata, save_model
from senclip.models.head import (
    HeadConfig,
    ProjectingHead,
    ProjectionHead,
    ResidualHead,
    attach_head,
    build_head,
    head_dropped,
)
from senclip.train.config import load_config


def test_residual_head_starts_as_layernorm_and_learns():
    head = ResidualHead(HeadConfig(16, 16, dropout=0.5, kind="residual")).train()  # dropout of zeros
    x = torch.randn(5, 16) * 3 + 1
    assert torch.equal(head(x), F.layer_norm(x, (16,)))
    for layer in (head.projection, head.fc):
        assert layer.weight.shape == (16, 16) and not layer.weight.any() and not layer.bias.any()
    head(x).pow(2).sum().backward()
    assert head.projection.weight.grad.abs().sum() > 0  # P gets gradient through the `+ P x` term
    with torch.no_grad():
        head.projection.weight.normal_()
        head.fc.weight.normal_()
    head.eval()
    p = head.projection(x)
    assert torch.allclose(head(x), F.layer_norm(x + p + head.fc(F.gelu(p)), (16,)), atol=1e-5)


def test_residual_head_needs_equal_widths_projecting_does_not():
    with pytest.raises(SenclipError, match=r"set model\.head_kind: projecting"):
        ResidualHead(HeadConfig(32, 16, kind="residual"))
    head = build_head(HeadConfig(32, 16, kind="projecting"))
    assert isinstance(head, ProjectingHead) and head(torch.randn(2, 32)).shape == (2, 16)
    assert ProjectionHead is ProjectingHead  # the earlier name still imports


def test_stored_head_config_without_kind_is_the_projecting_head():
    old = {"dim_in": 8, "dim_out": 8, "dropout": 0.1}  # a header written before the residual head
    assert isinstance(build_head(old), ProjectingHead)
    assert isinstance(build_head(old | {"kind": "residual"}), ResidualHead)
    with pytest.raises(SenclipError, match="unknown head kind"):
        HeadConfig(8, 8, kind="mlp")


def test_attach_head_follows_the_config(tiny_vit):
    import copy

    tower = copy.deepcopy(tiny_vit.image_tower)
    attach_head(tower, load_config().model, 128)
    assert isinstance(tower.head, ResidualHead)  # the default for new trainings
    attach_head(tower, load_config(None, ["model.head_kind=projecting"]).model, 64)
    assert isinstance(tower.head, ProjectingHead) and tower.head.config.dim_out == 64
    with pytest.raises(SenclipError, match="head_kind: projecting"):
        attach_head(tower, load_config().model, 64)  # 128-d trunk, 64-d targets
    with head_dropped(tower) as bare:
        assert isinstance(bare.head, nn.Identity)
    assert isinstance(tower.head, ProjectingHead)


def test_residual_head_roundtrips_through_a_senclip_file(tmp_path):
    torch.manual_seed(2)
    model = create_model("senclip-tiny-rn")
    base = tmp_path / "base.safetensors"
    save_model(model, base, kind="full")
    model = create_model("senclip-tiny-rn", pretrained=str(base))
    model.image_tower.head = ResidualHead(HeadConfig(128, 128, 0.1, "residual")).eval()
    with torch.no_grad():
        for p in model.image_tower.head.parameters():
            p.normal_(std=0.1)
    path = tmp_path / "tower.safetensors"
    save_model(model, path, kind="image")
    assert read_metadata(path)["head"] == {"dim_in": 128, "dim_out": 128, "dropout": 0.1, "kind": "residual"}
    loaded = create_model("senclip-tiny-rn", pretrained=str(base), checkpoint=str(path))
    assert isinstance(loaded.image_tower.head, ResidualHead)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded.encode_image(x), model.eval().encode_image(x), rtol=0, atol=0)


def test_dropping_a_head_that_changes_the_width_is_refused():
    from senclip.train.module import SenclipModule

    cfg = load_config(None, {"model.name": "senclip-tiny-vit", "model.head_kind": "projecting",
                             "model.target_dim": 64, "model.head_at_inference": "drop"})
    with pytest.raises(SenclipError, match="head_at_inference: drop leaves the trunk's 128-d output"):
        SenclipModule(cfg.to_dict())
