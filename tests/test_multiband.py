"""Multispectral towers: inflation rules, band matching, checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch

from senclip.bands import S2_L1C_BANDS, band_indices, parse_bands
from senclip.errors import SenclipError
from senclip.models import create_model, load_model, save_model
from senclip.models.multiband import S2_REFLECTANCE_STATS, inflate_weight, set_input_bands


def _rgb_into_l1c(rgb: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Place an RGB batch (B04,B03,B02) at its band positions of a 13-band batch."""
    out = torch.full((rgb.shape[0], 13, *rgb.shape[-2:]), fill)
    for i, band in enumerate(("B04", "B03", "B02")):
        out[:, S2_L1C_BANDS.index(band)] = rgb[:, i]
    return out


@pytest.mark.parametrize("fixture", ["tiny_vit", "tiny_rn"])
def test_zero_rule_keeps_rgb_output(fixture, request):
    model = request.getfixturevalue(fixture)
    tower = copy.deepcopy(model.image_tower).eval()
    set_input_bands(tower, "L1C")
    assert tower.bands == S2_L1C_BANDS
    assert tower.preprocess.mean.shape[1] == 13
    rgb = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.image_tower.eval()(rgb)
        zero_filled = tower(_rgb_into_l1c(rgb))
        other_fill = tower(_rgb_into_l1c(rgb, fill=0.7))
    torch.testing.assert_close(zero_filled, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(other_fill, ref, rtol=1e-5, atol=1e-5)


def test_preprocess_stats_rule(tiny_vit):
    tower = set_input_bands(copy.deepcopy(tiny_vit.image_tower), "B02,B08,B04")
    mean = tower.preprocess.mean.flatten()
    rgb_mean = tiny_vit.image_tower.preprocess.mean.flatten()
    assert mean[0] == pytest.approx(float(rgb_mean[2]))  # B02 keeps the blue statistic
    assert mean[2] == pytest.approx(float(rgb_mean[0]))  # B04 keeps the red statistic
    assert mean[1] == pytest.approx(S2_REFLECTANCE_STATS["B08"][0])


def test_new_filters_are_trainable(tiny_vit):
    tower = set_input_bands(copy.deepcopy(tiny_vit.image_tower), "L2A").train()
    x = torch.rand(2, 12, 64, 64)
    tower(x).sum().backward()
    conv = tower.visual.conv1
    assert conv.weight.grad is not None
    assert conv.weight.grad[:, 0].abs().sum() > 0  # B01 starts at zero but learns


def test_mean_and_nearest_rules():
    w = torch.randn(4, 3, 2, 2)
    rgb = ("B04", "B03", "B02")
    mean = inflate_weight(w, rgb, ("B04", "B03", "B02", "B08", "B11", "B01"), rule="mean")
    torch.testing.assert_close(mean.sum(1), w.sum(1))  # same response to band-constant input
    nearest = inflate_weight(w, rgb, ("B02", "B05", "B01", "B03"), rule="nearest")
    torch.testing.assert_close(nearest[:, 0], w[:, 2])
    torch.testing.assert_close(nearest[:, 1], w[:, 0])  # 705 nm is nearest to red
    torch.testing.assert_close(nearest[:, 2], w[:, 2])  # 443 nm is nearest to blue
    with pytest.raises(SenclipError, match="unknown inflation rule"):
        inflate_weight(w, rgb, rgb, rule="bogus")


def test_band_matching_by_name():
    assert band_indices(["B02", "b03", "B04", "B08"], ["B04", "B03", "B02"]) == [2, 1, 0]
    with pytest.raises(SenclipError, match="B8A"):
        band_indices(["B02", "B03", "B04"], ["B8A"])
    assert parse_bands("rgb") == ("B04", "B03", "B02")
    with pytest.raises(SenclipError, match="twice"):
        parse_bands("B02,B02")


def test_create_model_bands_and_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = create_model("senclip-tiny-vit", bands="L1C")
    assert model.image_tower.bands == S2_L1C_BANDS
    with torch.no_grad():
        model.image_tower.visual.conv1.weight[:, 0] += 0.5  # trained B01 filter
    path = save_model(model, tmp_path / "ms.safetensors", kind="full")
    loaded = load_model(path)
    assert loaded.image_tower.bands == S2_L1C_BANDS
    x = torch.rand(2, 13, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x))
    # an RGB checkpoint is the starting point of a 13-band tower
    rgb = save_model(create_model("senclip-tiny-vit"), tmp_path / "rgb.safetensors", kind="full")
    inflated = create_model("senclip-tiny-vit", pretrained=str(rgb), bands="L1C")
    assert inflated.image_tower.visual.conv1.in_channels == 13
