"""The published TimeSenCLIP encoder: size, input rules, missing months, augmentations in the
published order, and equality with the published forward transcribed in timesen_published.py (from
the published facts, no senclip code)."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F

from senclip.errors import SenclipError
from senclip.models.timesen_checkpoints import tower_from_state
from senclip.models.timesen_reference import (
    REFERENCE_MEAN,
    REFERENCE_STD,
    TimeSenRefConfig,
    TimeSenReferenceTower,
    count_parameters,
    draw_augment,
    reduce_time_steps,
)
from timesen_published import inference, loader_input, random_encoder, temporal_reduce, training_forward

SMALL = {"D": 32, "F": 16, "P": 10, "T": 12, "L": 1, "heads": 4}


def _small_tower(seed: int = 0, **options) -> tuple[dict, TimeSenReferenceTower]:
    """A published-layout random state (positions and token non-zero) and a tower loaded from it."""
    state = random_encoder(SMALL, seed=seed)
    return state, tower_from_state(state, heads=SMALL["heads"], **options)


def test_reference_size_and_init():
    tower = TimeSenReferenceTower()
    assert abs(count_parameters(tower) - 8.2e6) <= 0.1e6
    assert tower.time_pos_encoding.shape == (1, 12, 512) and not tower.time_pos_encoding.any()
    assert tower.time_token.shape == (1, 1, 512) and not tower.time_token.any()
    layer = tower.transformer.layers[0]
    assert not layer.norm_first and layer.activation_relu_or_gelu == 1  # post-norm, ReLU


def test_pixels_and_patches_embed_alike_and_positions_matter():
    state, tower = _small_tower()
    tower.eval()
    torch.manual_seed(1)
    raw = torch.rand(5, 12, 10) * 4000
    with torch.no_grad():
        for steps in (12, 4, 1):
            ours = tower(reduce_time_steps(raw, steps), normalize=False)
            z = temporal_reduce(loader_input(raw, "reference-clamped"), steps)
            ref = inference(state, z, SMALL["heads"])
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
            # (B, T, C) pixels are the 1x1 case of (B, T, C, H, W)
            x = reduce_time_steps(raw, steps)[..., None, None]
            torch.testing.assert_close(tower(x, normalize=False), ours)
        # positions matter: the quarters in another order give another embedding
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


def test_bad_checkpoints_and_inputs(tmp_path, tiny_vit):
    """Through the real routes: --checkpoint (load_image_tower) and senclip convert."""
    from senclip.models.checkpoint import load_image_tower
    from senclip.models.factory import convert_file

    bad = tmp_path / "other.ckpt"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(SenclipError, match="not a tower checkpoint"):
        load_image_tower(copy.deepcopy(tiny_vit), bad)
    state = random_encoder(SMALL, token="class_token")
    state.pop("mlp_head.1.bias")
    with pytest.raises(SenclipError, match="do not fit"):
        tower_from_state(state, heads=4)
    short = tmp_path / "short.pt"
    torch.save(state, short)
    closest = (re.escape(str(short)) + r": no published TimeSenCLIP layout fits; closest is bare / "
               r"class_token with missing mlp_head\.1\.bias")
    with pytest.raises(SenclipError, match=closest):
        load_image_tower(copy.deepcopy(tiny_vit), short)
    with pytest.raises(SenclipError, match=closest):
        convert_file(short, tmp_path / "short.safetensors")
    # a shape senclip cannot build: the message names the file
    odd = random_encoder(SMALL | {"P": 7})
    torch.save(odd, tmp_path / "odd.pt")
    named = re.escape(f"{tmp_path / 'odd.pt'}: TimeSenCLIP band embedding takes 7")
    with pytest.raises(SenclipError, match=named):
        load_image_tower(copy.deepcopy(tiny_vit), tmp_path / "odd.pt")
    tower = TimeSenReferenceTower(TimeSenRefConfig(width=32, layers=1, heads=4, mlp_dim=16))
    with pytest.raises(SenclipError, match="12, 4 or 1 time steps"):
        tower(torch.rand(2, 6, 10))
    with pytest.raises(SenclipError, match="expects"):
        tower(torch.rand(2, 12, 3))


def test_loads_as_a_senclip_checkpoint_and_round_trips(tmp_path, tiny_vit):
    from senclip.models.checkpoint import load_image_tower, save_model

    dims = {"D": 128, "F": 64, "P": 10, "T": 12, "L": 2, "heads": 8}  # the tiny text tower is 128-d
    state = random_encoder(dims)
    path = tmp_path / "TimeSenCLIP_1x1.ckpt"
    torch.save(state, path)
    model = copy.deepcopy(tiny_vit)
    load_image_tower(model, path)
    assert model.image_tower.tower_kind == "timesen-reference" and model.checkpoint == str(path)
    raw = torch.rand(3, 12, 10) * 3000
    with torch.no_grad():
        z = loader_input(raw, "reference-clamped")
        expected = F.normalize(inference(state, z, dims["heads"]), dim=-1)
        torch.testing.assert_close(model.encode_image(raw), expected, atol=1e-5, rtol=0)
        out = save_model(model, tmp_path / "tower.safetensors")
        again = copy.deepcopy(tiny_vit)
        load_image_tower(again, out)
        again.eval()
        torch.testing.assert_close(again.encode_image(raw), expected, atol=1e-5, rtol=0)
    torch.save(random_encoder(SMALL), tmp_path / "wide.ckpt")
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


def _draws(names, seeds, p=1.0, c=10):
    return [draw_augment(names, torch.Generator().manual_seed(s), 12, c, p) for s in seeds]


def test_tsmixaug_collapses_the_year_or_drops_one_quarter():
    tokens = torch.rand(4, 12, 8)
    pad = torch.zeros(4, 12, dtype=torch.bool)
    pad[0, [1, 2]] = True
    kinds = set()
    for draw in _draws(("tsmixaug",), range(40)):
        assert draw.bands is None and draw.months is not None
        out, out_pad, months = draw.apply_time(tokens)
        if draw.collapse:  # the year's median token (torch.median: the lower middle value of 12)
            kinds.add("median")
            assert months == list(range(12)) and out_pad is None
            torch.testing.assert_close(out, tokens.sort(dim=1).values[:, 5:6])
            masked, masked_pad, _ = draw.apply_time(tokens, pad)  # fill: mask: the median of the others
            torch.testing.assert_close(masked[0], tokens[0, [0, *range(3, 12)]].sort(dim=0).values[4:5])
            assert not masked_pad.any()
        else:  # three consecutive months dropped, the others kept in calendar order
            kinds.add("drop")
            assert out.shape == (4, 9, 8) and len(months) == 9
            gone = sorted(set(range(12)) - set(months))
            assert gone == list(range(gone[0], gone[0] + 3))
            torch.testing.assert_close(out, tokens[:, months])
            assert torch.equal(draw.apply_time(tokens, pad)[1], pad[:, months])
    assert kinds == {"median", "drop"}
    # p = 0: never applied
    never = _draws(("tsmixaug",), range(10), 0.0)
    assert all(d.months is None and d.apply_time(tokens)[0] is tokens for d in never)


def test_random_ts_and_spectral_dropout_keep_what_they_say():
    tokens = torch.rand(4, 12, 8)
    sizes = set()
    for draw in _draws(("random-ts",), range(30)):
        months = list(draw.months)
        assert months == sorted(set(months)) and 1 <= len(months) <= 12 and not draw.collapse
        torch.testing.assert_close(draw.apply_time(tokens)[0], tokens[:, months])
        sizes.add(len(months))
    assert len(sizes) > 3
    z = torch.rand(4, 12, 10, 1, 1) + 0.1  # no zeros: a zeroed band is a dropped band
    dropped_any = False
    for draw in _draws(("spectral-dropout",), range(30), p=0.0):
        assert draw.months is None
        out = draw.apply_bands(z)
        kept = (out != 0).flatten(3).all(-1).all(1).all(0)  # (C,) bands kept for the whole batch
        assert kept[:3].all()  # the first three bands are always kept
        torch.testing.assert_close(out[:, :, kept], z[:, :, kept])
        assert (out[:, :, ~kept] == 0).all()
        dropped_any |= bool((~kept).any())
    assert dropped_any


def test_tsmixaug_acts_on_the_embedded_tokens_as_the_published_forward():
    """The training forward with TSMixAug equals the published forward (a48994f, transcribed in
    timesen_published.training_forward) fed the same draw; its collapsed year is the median of the
    embedded tokens, which differs from the embedding of the inputs' median."""
    state, tower = _small_tower(dropout=0.0, augment=("tsmixaug",), augment_p=1.0)
    tower.train()
    raw = torch.rand(6, 12, 10) * 4000
    z = loader_input(raw, "reference-clamped")
    seen = set()
    for seed in range(12):
        draw = draw_augment(("tsmixaug",), torch.Generator().manual_seed(seed), 12, 10, 1.0)
        temporal = "median" if draw.collapse else min(set(range(12)) - set(draw.months))
        seen.add("median" if draw.collapse else "drop")
        tower.set_augment_seed(seed)
        with torch.no_grad():
            ours = tower(raw, normalize=False)
            ref = training_forward(state, z, SMALL["heads"], temporal)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
        if draw.collapse:  # the median of the inputs, embedded, is another token: the test can fail
            with torch.no_grad():
                other = inference(state, z.median(dim=1, keepdim=True).values, SMALL["heads"])
                mean_pos = state | {"time_pos_encoding": state["time_pos_encoding"].mean(1, keepdim=True)
                                    .expand(-1, 12, -1)}
                other_mean = inference(mean_pos, z.median(dim=1, keepdim=True).values, SMALL["heads"])
            assert (ours - other).abs().max() > 1e-2 and (ours - other_mean).abs().max() > 1e-2
    assert seen == {"median", "drop"}


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


def test_a_checkpoint_with_python_objects_is_refused_with_a_hint(tmp_path, tiny_vit):
    """Lightning's argparse.Namespace of hyper-parameters is read (a plain container); any other class
    (here a pathlib.Path inside the Namespace, as a trainer's output folder argument) is refused, never
    run, with the same hint through --checkpoint and senclip convert (one reader)."""
    import argparse
    from pathlib import PurePosixPath

    from senclip.models.checkpoint import load_image_tower
    from senclip.models.factory import convert_file

    state = random_encoder({"D": 128, "F": 16, "P": 10, "T": 12, "L": 1, "heads": 4})
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {"learner.TS_ViT." + k: v for k, v in state.items()},
                "hyper_parameters": argparse.Namespace(lr=1e-4, channels=["B4", "B3"])}, path)
    model = copy.deepcopy(tiny_vit)
    load_image_tower(model, path)
    assert model.image_tower.tower_kind == "timesen-reference"
    torch.save({"state_dict": {"learner.TS_ViT." + k: v for k, v in state.items()},
                "hyper_parameters": argparse.Namespace(lr=1e-4, out_dir=PurePosixPath("/runs/a"))}, path)
    hint = r"objects other than plain tensors.*keep its tensors alone.*\['state_dict'\]"
    with pytest.raises(SenclipError, match=hint):
        load_image_tower(copy.deepcopy(tiny_vit), path)
    with pytest.raises(SenclipError, match=hint):
        convert_file(path, tmp_path / "tower.safetensors")
    assert not (tmp_path / "tower.safetensors").exists()


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
    kept = [len(draw_augment(("random-ts",), torch.Generator().manual_seed(s), 12, 10, 1.0).months)
            for s in range(80)]
    assert max(kept) == 11 and min(kept) >= 1
    kept12 = [len(draw_augment(("random-ts",), torch.Generator().manual_seed(s), 12, 10, 1.0, 12).months)
              for s in range(80)]
    assert max(kept12) == 12
