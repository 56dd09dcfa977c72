"""TimeSenTower: calendar-month positions, key-padding mask, size, checkpoints."""

from __future__ import annotations

import torch

from senclip.models.timesen import (
    TimeSenTower,
    build_timesen_model,
    count_parameters,
    paper_config,
)

NAN = float("nan")


def _tower(cfg, seed=0):
    torch.manual_seed(seed)
    return TimeSenTower(cfg).eval()


def test_month_position_does_not_shift_when_a_month_is_missing(ndvi_tower_config):
    tower = _tower(ndvi_tower_config)
    x = torch.rand(3, 12, 1)
    for m in range(11):
        gap = x.clone()
        gap[:, m] = NAN
        tokens, _ = tower.embed(x)
        tokens_gap, pad_gap = tower.embed(gap)
        # the token of month m+1 (sequence index m+2 after CLS) is unchanged, position included
        torch.testing.assert_close(tokens_gap[:, m + 2], tokens[:, m + 2], rtol=0, atol=0)
        assert pad_gap[:, m + 1].all() and not pad_gap[:, m + 2].any() and not pad_gap[:, 0].any()
    # and the position used is the calendar month: same values in another slot give another token
    shifted = x.clone()
    shifted[:, 5] = x[:, 4]
    assert not torch.allclose(tower.embed(shifted)[0][:, 6], tower.embed(x)[0][:, 5])


def test_masked_months_do_not_influence_the_output(ndvi_tower_config):
    tower = _tower(ndvi_tower_config)
    x = torch.rand(4, 12, 1)
    x[:, [1, 2, 7]] = NAN
    ref = tower(x)
    valid = torch.isfinite(x).all(-1)
    garbage = x.clone()
    garbage[:, [1, 2, 7]] = torch.randn(4, 3, 1) * 100
    torch.testing.assert_close(tower(garbage, valid=valid), ref)
    # a valid month does influence it
    other = x.clone()
    other[:, 0] += 1.0
    assert not torch.allclose(tower(other), ref)
    assert torch.isfinite(ref).all() and torch.allclose(ref.norm(dim=-1), torch.ones(4))


def test_all_missing_sample_gives_finite_output(ndvi_tower_config):
    tower = _tower(ndvi_tower_config)
    x = torch.full((2, 12, 1), NAN)
    assert torch.isfinite(tower(x)).all()


def test_month_dropout_only_in_training_and_keeps_a_month(ndvi_tower_config):
    from dataclasses import replace

    tower = _tower(replace(ndvi_tower_config, month_dropout=0.9))
    x = torch.rand(64, 12, 1)
    x[:, :11] = NAN  # one valid month per sample: never dropped
    tower.train()
    _, pad = tower.embed(x)
    assert (~pad[:, 1:]).sum(1).min() == 1
    full = torch.rand(64, 12, 1)
    _, pad = tower.embed(full)
    hidden = pad[:, 1:].float().mean()
    assert 0.7 < hidden < 0.95
    tower.eval()
    assert not tower.embed(full)[1].any()


def test_paper_size_parameter_count():
    n = count_parameters(TimeSenTower(paper_config()))
    assert 7.5e6 < n < 8.5e6, n


def test_checkpoint_round_trip(tmp_path, tiny_vit, ndvi_tower_config):
    from senclip.models import create_model, read_metadata, save_model
    from senclip.models.head import HeadConfig, ProjectionHead

    torch.manual_seed(1)
    model = build_timesen_model(tiny_vit, ndvi_tower_config).eval()
    model.image_tower.head = ProjectionHead(HeadConfig(128, 128, 0.0))
    model.eval()
    path = save_model(model, tmp_path / "ts.safetensors")
    meta = read_metadata(path)
    assert meta["tower"] == "timesen" and meta["bands"] == ["NDVI"]
    loaded = create_model("senclip-tiny-vit", checkpoint=path)
    x = torch.rand(5, 12, 1)
    x[0, 3] = NAN
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x), rtol=0, atol=0)
    assert loaded.image_tower.config == model.image_tower.config
