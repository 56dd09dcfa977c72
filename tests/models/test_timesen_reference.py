"""The published TimeSenCLIP encoder: size, checkpoint layouts, and equality with a plain
re-implementation of the published forward for 12, 4 and 1 time steps."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from senclip.errors import SenclipError
from senclip.models.timesen_checkpoints import read_reference_checkpoint, tower_from_state
from senclip.models.timesen_reference import (
    REFERENCE_MEAN,
    REFERENCE_STD,
    TimeSenRefConfig,
    TimeSenReferenceTower,
    count_parameters,
    reduce_time_steps,
)
from timesen_published import loader_input


class _Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], x.shape[1], -1)


class PlainReference(nn.Module):
    """The published encoder written out plainly (torch's own layers, the published key names)."""

    def __init__(self, bands=10, size=1, dim=512, depth=6, heads=8, mlp_dim=256):
        super().__init__()
        self.spectral_embedding = nn.Sequential(_Flatten(), nn.Linear(bands * size * size, dim))
        self.time_pos_encoding = nn.Parameter(torch.zeros(1, 12, dim))
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(d_model=dim, nhead=heads, dim_feedforward=mlp_dim, dropout=0.2,
                                           batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))

    def inference(self, x):  # x: (B, T, S, H, W), already normalised
        x = self.spectral_embedding(x)
        b, n, d = x.shape
        pos = self.time_pos_encoding.expand(b, -1, -1)
        if n == 1:
            pos = F.interpolate(pos.permute(0, 2, 1).unsqueeze(-1), size=(1, 1), mode="nearest")
            pos = pos.squeeze(-1).permute(0, 2, 1)
        elif n == 4:
            pos = pos.reshape(b, 4, 3, d).median(dim=2).values
        x = x + pos
        x = torch.cat([self.class_token.expand(b, -1, -1), x], dim=1)
        return self.mlp_head(self.transformer(x)[:, 0])


def _random_reference(seed=0, **shape):
    torch.manual_seed(seed)
    ref = PlainReference(**shape).eval()
    with torch.no_grad():  # the published zero inits would hide position mistakes
        ref.time_pos_encoding.normal_()
        ref.class_token.normal_()
    return ref


def _reference_input(raw):
    """The default rule (reference-clamped) as the published evaluation loader applied it."""
    return loader_input(raw.reshape(*raw.shape[:3]), "reference-clamped")


def _published_reduce(x, steps):
    """The published evaluation's temporal aggregation (on normalised input)."""
    if steps == 4:
        return x.reshape(x.shape[0], 4, 3, *x.shape[2:]).median(dim=2).values
    if steps == 1:
        return x.median(dim=1, keepdim=True).values
    return x


def test_reference_size_and_shapes():
    tower = TimeSenReferenceTower()
    n = count_parameters(tower)
    assert abs(n - 8.2e6) <= 0.1e6, n
    assert n == count_parameters(PlainReference())
    keys = set(tower.state_dict())
    assert keys == {"time_token" if k == "class_token" else k for k in PlainReference().state_dict()}
    assert tower.time_pos_encoding.shape == (1, 12, 512) and not tower.time_pos_encoding.any()
    assert tower.time_token.shape == (1, 1, 512) and not tower.time_token.any()
    layer = tower.transformer.layers[0]
    assert not layer.norm_first and layer.activation_relu_or_gelu == 1  # post-norm, ReLU


@pytest.mark.parametrize("layout", ["bare", "lightning"])
def test_published_checkpoint_matches_the_plain_forward(tmp_path, layout):
    ref = _random_reference()
    state = ref.state_dict()
    path = tmp_path / "TimeSenCLIP_1x1.ckpt"
    if layout == "bare":
        torch.save(state, path)
    else:
        torch.save({"epoch": 3, "global_step": 100,
                    "state_dict": {"learner.TS_ViT." + k: v for k, v in state.items()}
                    | {"learner.other.weight": torch.zeros(2)}}, path)
    tower = tower_from_state(read_reference_checkpoint(path).state).eval()
    assert tower.config.width == 512 and tower.config.layers == 6 and tower.config.mlp_dim == 256
    torch.manual_seed(1)
    raw = torch.rand(5, 12, 10, 1, 1) * 4000
    with torch.no_grad():
        for steps in (12, 4, 1):
            ours = tower(reduce_time_steps(raw, steps), normalize=False)
            plain = ref.inference(_published_reduce(_reference_input(raw), steps))
            diff = (ours - plain).abs().max().item()
            assert diff <= 1e-5, (steps, diff)
            # (B, T, C) pixels are the 1x1 case
            assert torch.allclose(tower(reduce_time_steps(raw[..., 0, 0], steps), normalize=False), ours)
    # positions matter: the quarters in another order give another embedding
    with torch.no_grad():
        q = reduce_time_steps(raw, 4)
        assert not torch.allclose(tower(q.flip(1)), tower(q), atol=1e-4)


def test_filled_months_take_the_median_and_mask_hides_them():
    torch.manual_seed(0)
    cfg = TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16, dropout=0.0)
    tower = TimeSenReferenceTower(cfg).eval()
    raw = torch.rand(3, 12, 10) * 3000
    gap = raw.clone()
    gap[:, [2, 5]] = float("nan")
    filled = gap.clone()
    # per-band median of the valid months after normalisation (monotone, so the same month order)
    z = loader_input(gap, "reference-clamped")[..., 0, 0]
    med = torch.nanmedian(z, dim=1, keepdim=True).values
    z_filled = torch.where(torch.isnan(z), med, z)
    plain = TimeSenReferenceTower(TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16, dropout=0.0,
                                                   norm="none")).eval()
    plain.load_state_dict(tower.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(tower(filled), plain(z_filled))
        masked = TimeSenReferenceTower(TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16,
                                                        dropout=0.0, fill="mask")).eval()
        masked.load_state_dict(tower.state_dict())
        junk = raw.clone()
        junk[:, [2, 5]] = float("nan")
        other = junk.clone()
        other[:, 7] += 500
        assert torch.isfinite(masked(junk)).all()
        assert not torch.allclose(masked(junk), masked(other))


def test_bad_checkpoints_and_inputs(tmp_path):
    bad = tmp_path / "other.ckpt"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(SenclipError, match="not a TimeSenCLIP checkpoint"):
        read_reference_checkpoint(bad)
    state = _random_reference(depth=1, dim=32, heads=4, mlp_dim=16).state_dict()
    state.pop("mlp_head.1.bias")
    with pytest.raises(SenclipError, match="do not fit"):
        tower_from_state(state, heads=4)
    torch.save(state, tmp_path / "short.pt")
    with pytest.raises(SenclipError, match=r"closest is bare / class_token with missing mlp_head\.1\.bias"):
        read_reference_checkpoint(tmp_path / "short.pt")
    tower = TimeSenReferenceTower(TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16))
    with pytest.raises(SenclipError, match="12, 4 or 1 time steps"):
        tower(torch.rand(2, 6, 10))
    with pytest.raises(SenclipError, match="expects"):
        tower(torch.rand(2, 12, 3))


def test_loads_as_a_senclip_checkpoint_and_round_trips(tmp_path, tiny_vit):
    from senclip.models.checkpoint import load_image_tower, save_model

    ref = _random_reference(dim=128, depth=2, heads=8, mlp_dim=64)  # the tiny text tower is 128-d
    path = tmp_path / "TimeSenCLIP_1x1.ckpt"
    torch.save(ref.state_dict(), path)
    model = copy.deepcopy(tiny_vit)
    load_image_tower(model, path)
    assert model.image_tower.tower_kind == "timesen-reference" and model.checkpoint == str(path)
    raw = torch.rand(3, 12, 10) * 3000
    with torch.no_grad():
        expected = F.normalize(ref.inference(_reference_input(raw[..., None, None])), dim=-1)
        torch.testing.assert_close(model.encode_image(raw), expected, atol=1e-5, rtol=0)
        out = save_model(model, tmp_path / "tower.safetensors")
        again = copy.deepcopy(tiny_vit)
        load_image_tower(again, out)
        again.eval()
        torch.testing.assert_close(again.encode_image(raw), expected, atol=1e-5, rtol=0)
    wide = _random_reference(dim=32, depth=1, heads=4, mlp_dim=16)
    torch.save(wide.state_dict(), tmp_path / "wide.ckpt")
    with pytest.raises(SenclipError, match="32-d embeddings"):
        load_image_tower(copy.deepcopy(tiny_vit), tmp_path / "wide.ckpt")


def test_time_steps_reduce_inside_the_tower_and_change_its_identity(tiny_vit):
    from senclip.evaluate.embeddings import tensors_fingerprint
    from senclip.models.kinds import set_time_steps
    from senclip.models.timesen import TimeSenConfig, TimeSenTower

    torch.manual_seed(0)
    cfg = TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16, dropout=0.0)
    tower = TimeSenReferenceTower(cfg).eval()
    raw = torch.rand(3, 12, 10) * 3000
    raw[0, 4] = float("nan")
    before = tensors_fingerprint(tower)
    with torch.no_grad():
        for steps in (4, 1):
            set_time_steps(tower, steps)
            torch.testing.assert_close(tower(raw), tower(reduce_time_steps(raw, steps)))
            assert tensors_fingerprint(tower) != before
        set_time_steps(tower, 12)
    assert tensors_fingerprint(tower) == before
    with pytest.raises(SenclipError, match="12, 4 or 1"):
        set_time_steps(tower, 6)
    with pytest.raises(SenclipError, match="clip-visual tower cannot take 4"):
        set_time_steps(tiny_vit.image_tower, 4)
    # senclip's own tower: quarters and the year sit at the mean of their months' positions
    ours = TimeSenTower(TimeSenConfig(bands=("NDVI",), embed_dim=16, width=8, layers=1, heads=2, mlp_dim=8,
                                      dropout=0.0)).eval()
    x = torch.rand(2, 12, 1)
    tokens, _ = ours.embed(reduce_time_steps(x, 4))
    quarter = ours.band_embed(reduce_time_steps(x, 4)[:, 1]) + ours.month_embed.weight[3:6].mean(0)
    torch.testing.assert_close(tokens[:, 2], quarter)
    set_time_steps(ours, 1)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ours(reduce_time_steps(x, 1)))
        assert ours(x).shape == (2, 16)


def _draws(names, seeds, p=1.0, shape=(4, 12, 10, 1, 1)):
    from senclip.models.timesen_reference import augment_series

    z = torch.rand(*shape) + 0.1  # no zeros: a zeroed band is a dropped band
    return z, [augment_series(z, names, torch.Generator().manual_seed(s), p) for s in seeds]


def test_tsmixaug_collapses_the_year_or_drops_one_quarter():
    z, outs = _draws(("tsmixaug",), range(40))
    kinds = set()
    for out, months in outs:
        assert months is not None
        if out.shape[1] == 1:  # the year's median
            kinds.add("median")
            torch.testing.assert_close(out, z.median(dim=1, keepdim=True).values)
            assert months == list(range(12))
        else:  # three consecutive months dropped, the others kept in calendar order
            kinds.add("drop")
            assert out.shape == (4, 9, 10, 1, 1) and len(months) == 9
            gone = sorted(set(range(12)) - set(months))
            assert gone == list(range(gone[0], gone[0] + 3))
            torch.testing.assert_close(out, z[:, months])
    assert kinds == {"median", "drop"}
    # p = 0: never applied
    _, never = _draws(("tsmixaug",), range(10), p=0.0)
    assert all(months is None and out.shape[1] == 12 for out, months in never)


def test_random_ts_and_spectral_dropout_keep_what_they_say():
    z, outs = _draws(("random-ts",), range(30))
    sizes = set()
    for out, months in outs:
        assert months == sorted(set(months)) and 1 <= len(months) <= 12
        torch.testing.assert_close(out, z[:, months])
        sizes.add(len(months))
    assert len(sizes) > 3
    z, outs = _draws(("spectral-dropout",), range(30), p=0.0)
    dropped_any = False
    for out, months in outs:
        assert out.shape == z.shape and months is None
        kept = (out != 0).flatten(3).all(-1).all(1).all(0)  # (C,) bands kept for the whole batch
        assert kept[:3].all()  # the first three bands are always kept
        torch.testing.assert_close(out[:, :, kept], z[:, :, kept])
        assert (out[:, :, ~kept] == 0).all()
        dropped_any |= bool((~kept).any())
    assert dropped_any


def test_augmentation_is_deterministic_per_seed_and_only_in_training():
    torch.manual_seed(0)
    cfg = TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16, dropout=0.0,
                           augment=["tsmixaug", "spectral-dropout"], augment_p=1.0)
    tower = TimeSenReferenceTower(cfg)
    x = torch.rand(3, 12, 10) * 3000
    outs = []
    for seed in (5, 5, 6, 7, 8, 9):
        tower.train()
        tower.set_augment_seed(seed)
        outs.append(tower(x))
    torch.testing.assert_close(outs[0], outs[1])  # same step seed (e.g. a resumed run): same draw
    assert any(not torch.allclose(outs[0], o) for o in outs[2:])
    tower.eval()
    with torch.no_grad():
        torch.testing.assert_close(tower(x), tower(x))
        plain = TimeSenReferenceTower(TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16, dropout=0.0))
        plain.load_state_dict(tower.state_dict())
        torch.testing.assert_close(tower(x), plain.eval()(x))
    with pytest.raises(SenclipError, match="unknown augmentation"):
        TimeSenRefConfig(augment=["flip"])


def test_reference_constants_follow_the_bands():
    rgb = TimeSenRefConfig(bands=("B04", "B03", "B02"))
    assert rgb.mean == (REFERENCE_MEAN[2], REFERENCE_MEAN[1], REFERENCE_MEAN[0])
    assert rgb.std == (REFERENCE_STD[2], REFERENCE_STD[1], REFERENCE_STD[0])
    assert TimeSenRefConfig(bands=("NDVI",), norm="none").mean == (0.0,)
    with pytest.raises(SenclipError, match="needs mean values"):
        TimeSenRefConfig(bands=("NDVI",))


def test_shipped_reference_config_prints_its_size(capsys):
    from pathlib import Path

    import yaml

    from senclip.cli import main

    config = Path(__file__).resolve().parents[2] / "configs" / "timesen-reference.yaml"
    assert main(["train", "--config", str(config), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "# model.tower timesen-reference: 8,169,472 parameters" in out
    cfg = yaml.safe_load(out)
    assert cfg["model"]["tower"] == "timesen-reference" and cfg["model"]["head"] is False


class _Unknown:
    pass


def test_a_checkpoint_with_python_objects_is_refused_with_a_hint(tmp_path, tiny_vit):
    """Lightning's argparse.Namespace of hyper-parameters is read (a plain container); any other class
    is refused, never run."""
    import argparse

    from senclip.models.checkpoint import load_image_tower

    state = _random_reference(dim=128, depth=1, heads=4, mlp_dim=16).state_dict()
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {"learner.TS_ViT." + k: v for k, v in state.items()},
                "hyper_parameters": argparse.Namespace(lr=1e-4, channels=["B4", "B3"])}, path)
    model = copy.deepcopy(tiny_vit)
    load_image_tower(model, path)
    assert model.image_tower.tower_kind == "timesen-reference"
    torch.save({"state_dict": {"learner.TS_ViT." + k: v for k, v in state.items()},
                "hyper_parameters": _Unknown()}, path)
    with pytest.raises(SenclipError, match=r"objects other than plain tensors.*state_dict"):
        load_image_tower(copy.deepcopy(tiny_vit), path)


@pytest.mark.parametrize("rule", ["reference-eval", "reference-clamped", "reference-train"])
def test_normalisation_rules_are_the_published_loaders(rule):
    """Each rule equals its loader transcribed from the published code (timesen_published.py)."""
    from timesen_published import series

    raw = series()
    tower = TimeSenReferenceTower(TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16, norm=rule))
    expected = loader_input(raw, rule)
    torch.testing.assert_close(tower.prepare(raw), expected, rtol=1e-6, atol=1e-6)
    others = {r: loader_input(raw, r) for r in ("reference-eval", "reference-clamped", "reference-train")}
    assert all(not torch.allclose(expected, v) for r, v in others.items() if r != rule)
    tower.set_normalisation("none")
    torch.testing.assert_close(tower.prepare(raw), raw[..., None, None])
    assert TimeSenRefConfig(norm="reference").norm == "reference-clamped"  # older senclip headers
    with pytest.raises(SenclipError, match="both or neither"):
        TimeSenRefConfig(bands=("B02", "B03"), norm="reference-train")


def test_training_positions_follow_the_newest_forward():
    """Kept months at their calendar positions, a collapsed year at the mean position (every published
    training forward), random-ts keeps at most 11 months (a48994f; 12 before)."""
    from senclip.models.timesen_reference import augment_series

    tower = TimeSenReferenceTower(TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16))
    with torch.no_grad():
        tower.time_pos_encoding.normal_()
    pos = tower.time_pos_encoding
    torch.testing.assert_close(tower.positions(1, list(range(12))), pos.mean(dim=1, keepdim=True))
    torch.testing.assert_close(tower.positions(1, [5]), pos.mean(dim=1, keepdim=True))  # x.size(1) == 1
    torch.testing.assert_close(tower.positions(1), pos[:, :1])          # inference: nearest = January
    torch.testing.assert_close(tower.positions(3, [2, 5, 9]), pos[:, [2, 5, 9]])
    old = TimeSenReferenceTower(TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16,
                                                 positions="renumbered"))
    old.load_state_dict(tower.state_dict())
    torch.testing.assert_close(old.positions(3, [2, 5, 9]), pos[:, :3])
    z = torch.rand(2, 12, 10, 1, 1) + 0.1
    kept = [len(augment_series(z, ("random-ts",), torch.Generator().manual_seed(s), 1.0)[1])
            for s in range(80)]
    assert max(kept) == 11 and min(kept) >= 1
    kept12 = [len(augment_series(z, ("random-ts",), torch.Generator().manual_seed(s), 1.0, 12)[1])
              for s in range(80)]
    assert max(kept12) == 12
