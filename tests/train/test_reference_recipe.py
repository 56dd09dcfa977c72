"""The SenCLIP reference's loss, queue, poolings, optimiser and configs, as options (tiny tensors)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from train_helpers import tiny_config

from senclip.cli import main
from senclip.errors import SenclipError
from senclip.losses import MAX_LOGIT_SCALE, QueueCELoss, TargetQueue
from senclip.models.pooling import (
    AvgPooling,
    RefAttnDimPooling,
    RefAttnImagePooling,
    RefAvgPooling,
    build_pooling,
)
from senclip.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REFERENCE_CONFIGS = ["senclip-reference-rn50.yaml", "senclip-reference-vitb32.yaml"]


# ---- loss ------------------------------------------------------------------------------------
def test_queue_ce_matches_hand_computation():
    # T = 0.5 -> scale 2; rows (1,0),(0,1); targets (0.6,0.8),(0.8,0.6); queue [(1,0), (0,-1)]
    sat = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tgt = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    queue = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    # row 0: logits 2*[0.6 | 1, 0]; row 1: 2*[0.6 | 0, -1]; label 0 (the positive) in both
    row0 = math.log(math.exp(1.2) + math.exp(2.0) + math.exp(0.0)) - 1.2
    row1 = math.log(math.exp(1.2) + math.exp(0.0) + math.exp(-2.0)) - 1.2
    loss = QueueCELoss(init_temperature=0.5)(sat, tgt, negatives=queue)
    assert loss.item() == pytest.approx((row0 + row1) / 2, abs=1e-6)


def test_queue_ce_has_no_in_batch_negatives_and_one_direction():
    sat = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    tgt = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    queue = F.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(2)), dim=-1)
    fn = QueueCELoss(init_temperature=0.07)
    expected = torch.stack([
        torch.logsumexp(fn.scale * torch.cat([(sat[i] * tgt[i]).sum().view(1), queue @ sat[i]]), 0)
        - fn.scale * (sat[i] * tgt[i]).sum() for i in range(4)]).mean()
    assert fn(sat, tgt, queue).item() == pytest.approx(expected.item(), abs=1e-5)
    # the other rows' targets never enter a row's loss: a row alone gives its own term
    alone = fn(sat[:1], tgt[:1], queue)
    first = torch.logsumexp(fn.scale * torch.cat([(sat[0] * tgt[0]).sum().view(1), queue @ sat[0]]), 0) \
        - fn.scale * (sat[0] * tgt[0]).sum()
    assert alone.item() == pytest.approx(first.item(), abs=1e-5)
    assert fn(sat, tgt, None).item() == pytest.approx(0.0, abs=1e-7)  # nothing to contrast with


def test_queue_ce_scale_starts_at_1_over_007_and_is_clamped_to_0_ln100():
    fn = QueueCELoss(init_temperature=0.07)
    assert fn.log_scale.item() == pytest.approx(math.log(1 / 0.07))
    sat = F.normalize(torch.randn(3, 4), dim=-1)
    fn(sat, sat.roll(1, 0), sat).backward()
    assert fn.log_scale.grad is not None and fn.log_scale.grad.abs() > 0
    hot = QueueCELoss(init_temperature=1e-4)  # log(1/T) = 9.2 > ln 100
    hot(sat, sat, sat)
    assert hot.log_scale.item() == pytest.approx(math.log(MAX_LOGIT_SCALE))
    cold = QueueCELoss(init_temperature=3.0)  # log(1/T) < 0
    cold(sat, sat, sat)
    assert cold.log_scale.item() == 0.0 and cold.temperature == pytest.approx(1.0)


# ---- queue -----------------------------------------------------------------------------------
def test_queue_random_init_is_full_of_unit_vectors_and_fifo():
    q = TargetQueue(512, 16, init="random", generator=torch.Generator().manual_seed(0))
    assert q.is_full and q.negatives().shape == (512, 16)
    assert torch.allclose(q.items.norm(dim=-1), torch.ones(512), atol=1e-6)
    same = TargetQueue(512, 16, init="random", generator=torch.Generator().manual_seed(0))
    assert torch.equal(q.items, same.items)
    assert TargetQueue(4, 2).negatives().shape == (0, 2)  # the default starts empty
    start = q.items.clone()
    new = torch.ones(32, 16)
    q.enqueue(new)  # replaces the oldest 32 random vectors, like the reference's pointer
    assert torch.equal(q.items[:32], new) and torch.equal(q.items[32:], start[32:])
    assert int(q.ptr) == 32 and q.negatives().shape == (512, 16)
    assert torch.equal(q.negatives()[-32:], new)  # newest last
    with pytest.raises(ValueError, match="queue init"):
        TargetQueue(4, 2, init="zeros")


# ---- poolings ----------------------------------------------------------------------------------
@pytest.fixture()
def raw_views():
    gen = torch.Generator().manual_seed(3)
    views = torch.randn(2, 4, 6, generator=gen) * torch.tensor([1.0, 3.0, 0.5, 2.0]).view(1, 4, 1)
    return views, torch.ones(2, 4, dtype=torch.bool)


@pytest.mark.parametrize(("name", "cls", "shape"), [("attpool_perimage", RefAttnImagePooling, (1, 6)),
                                                    ("attpool_perdim", RefAttnDimPooling, (6, 6))])
def test_reference_attention_pooling_layers(raw_views, name, cls, shape):
    torch.manual_seed(0)
    pool = build_pooling(name, 6, "sum")
    assert isinstance(pool, cls) and pool.out == "sum"
    assert pool.linear.weight.shape == shape and pool.linear.bias is None
    bound = 1 / math.sqrt(6)  # nn.Linear's default init: uniform(-1/sqrt(D), 1/sqrt(D)), not zero
    assert pool.linear.weight.abs().max() <= bound and pool.linear.weight.abs().sum() > 0
    views, mask = raw_views
    out = pool(views, mask)
    assert out.shape == (2, 6) and torch.allclose(out.norm(dim=-1), torch.ones(2))


@pytest.mark.parametrize("out", ["sum", "mean", "max"])
def test_reference_poolings_match_hand_computation(raw_views, out):
    views, mask = raw_views
    reduce = {"sum": lambda x: x.sum(1), "mean": lambda x: x.mean(1), "max": lambda x: x.max(1).values}[out]
    img = RefAttnImagePooling(6, out)
    w = torch.softmax(views @ img.linear.weight.detach().T, dim=1)  # (B, V, 1): one weight per view
    assert torch.allclose(img(views, mask), F.normalize(reduce(views * w), dim=-1), atol=1e-6)
    dim = RefAttnDimPooling(6, out)
    w = torch.softmax(views @ dim.linear.weight.detach().T, dim=1)  # (B, V, D): per view and dimension
    assert torch.allclose(dim(views, mask), F.normalize(reduce(views * w), dim=-1), atol=1e-6)


def test_sum_and_mean_give_the_same_target_and_missing_views_are_left_out(raw_views):
    views, mask = raw_views
    torch.manual_seed(1)
    pool = RefAttnImagePooling(6, "sum")
    mean = RefAttnImagePooling(6, "mean")
    mean.load_state_dict(pool.state_dict())
    assert torch.allclose(pool(views, mask), mean(views, mask), atol=1e-6)
    # a missing view (NaN in the cache) changes nothing against pooling the present views alone
    holed, part = views.clone(), mask.clone()
    holed[0, 2], part[0, 2] = float("nan"), False
    present = views[:1, [0, 1, 3]]
    for out in ("sum", "mean", "max"):
        p = RefAttnDimPooling(6, out)
        assert torch.allclose(p(holed, part)[0], p(present, torch.ones(1, 3, dtype=torch.bool))[0], atol=1e-6)


def test_avgpool_averages_raw_views(raw_views):
    views, mask = raw_views
    assert torch.allclose(RefAvgPooling()(views, mask), F.normalize(views.mean(1), dim=-1), atol=1e-6)
    # senclip's avg normalises each view first: different on raw views, equal on normalised ones
    assert not torch.allclose(RefAvgPooling()(views, mask), AvgPooling()(views, mask), atol=1e-3)
    unit = F.normalize(views, dim=-1)
    assert torch.allclose(RefAvgPooling()(unit, mask), AvgPooling()(unit, mask), atol=1e-6)
    with pytest.raises(ValueError, match="pool_out"):
        build_pooling("attpool_perimage", 6, "median")


# ---- module: views, optimiser, scheduler ---------------------------------------------------------------
def _module(**overrides):
    from senclip.train.module import SenclipModule

    cfg = load_config(None, {"model.name": "senclip-tiny-vit", **overrides})
    torch.manual_seed(0)
    return SenclipModule(cfg.to_dict())


def test_targets_pool_the_chosen_views_raw_when_the_cache_keeps_norms():
    module = _module(**{"model.pooling": "avgpool", "model.ground_views": "N,E,S,W"})
    gen = torch.Generator().manual_seed(0)
    unit = F.normalize(torch.randn(2, 5, 128, generator=gen), dim=-1)
    norms = torch.tensor([[1.0, 2.0, 3.0, 4.0, 9.0], [5.0, 1.0, 1.0, 1.0, 9.0]])
    batch = {"ground": unit, "ground_mask": torch.ones(2, 5, dtype=torch.bool), "ground_norm": norms}
    raw = unit * norms.unsqueeze(-1)
    assert torch.allclose(module.targets(batch), F.normalize(raw[:, :4].mean(1), dim=-1), atol=1e-6)
    del batch["ground_norm"]  # a cache without norms: its views as stored
    assert torch.allclose(module.targets(batch), F.normalize(unit[:, :4].mean(1), dim=-1), atol=1e-6)
    with pytest.raises(SenclipError, match="ground_views"):
        _module(**{"model.ground_views": "N,X"})


def test_reference_optimizer_decays_every_parameter_and_steps_lr_per_epoch():
    module = _module(**{"loss.name": "queue-ce", "loss.queue_size": 8, "loss.queue_init": "random",
                        "optim.lr": 1e-5, "optim.weight_decay": 1e-2, "optim.decay_all": True,
                        "optim.betas": "0.9,0.999", "optim.eps": 1e-8, "optim.scheduler": "step",
                        "optim.warmup_steps": 0})
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["weight_decay"] == 1e-2 and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
    ids = {id(p) for p in group["params"]}
    assert id(module.loss_fn.log_scale) in ids and id(module.image_tower.head.layer_norm.bias) in ids
    assert isinstance(sched["scheduler"], torch.optim.lr_scheduler.StepLR) and sched["interval"] == "epoch"
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched["scheduler"].step()
    assert lrs[0] == lrs[9] == pytest.approx(1e-5)
    assert lrs[10] == lrs[19] == pytest.approx(1e-5 * 0.95)
    assert lrs[20] == pytest.approx(1e-5 * 0.95 ** 2)
    assert module.queue.is_full  # random unit vectors from the start


def test_default_optimizer_keeps_its_groups():
    module = _module()
    groups = module.param_groups()
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    no_decay = {id(p) for p in groups[1]["params"]}
    assert id(module.loss_fn.log_scale) in no_decay


@pytest.mark.parametrize(("overrides", "message"), [
    ({"loss.name": "queue-ce"}, "queue_size > 0"),
    ({"optim.scheduler": "step"}, "warmup_steps: 0"),
    ({"optim.scheduler": "step", "optim.warmup_steps": 0, "optim.step_size": 0}, "step_size"),
])
def test_recipe_errors_are_one_line(overrides, message):
    with pytest.raises(SenclipError, match=message):
        _module(**overrides)


# ---- the reference configs -----------------------------------------------------------------------
@pytest.mark.parametrize("name", REFERENCE_CONFIGS)
def test_reference_configs_hold_the_reference_recipe(name):
    cfg = load_config(CONFIGS / name)
    m, lc, o = cfg.model, cfg.loss, cfg.optim
    assert m.name == ("RN50-quickgelu" if "rn50" in name else "ViT-B-32-quickgelu")
    assert m.pretrained == "openai"
    assert (m.head, m.head_kind, m.head_dropout, m.head_at_inference) == (True, "residual", 0.1, "drop")
    assert (m.pooling, m.pool_out, m.ground_views) == ("attpool_perimage", "sum", ["N", "E", "S", "W"])
    assert (lc.name, lc.temperature, lc.learn_temperature, lc.queue_size, lc.queue_init) == \
        ("queue-ce", 0.07, True, 512, "random")
    assert (o.lr, o.weight_decay, o.decay_all, o.betas, o.eps) == (1e-5, 1e-2, True, [0.9, 0.999], 1e-8)
    assert (o.scheduler, o.step_size, o.step_gamma, o.step_unit, o.warmup_steps, o.grad_clip) == \
        ("step", 10, 0.95, "epoch", 0, 0.0)
    assert cfg.data.batch_size == 32 and cfg.trainer.precision == "32-true"


@pytest.mark.parametrize("name", REFERENCE_CONFIGS)
def test_reference_config_prints_and_trains_two_steps_on_a_tiny_model(name, tiny_pairs, tmp_path, capsys):
    # the tiny base stands in for the CLIP architecture (no weights offline); everything else is the config's
    arch = ["--model.name", "senclip-tiny-vit", "--model.pretrained", tiny_pairs["base"]]
    data = ["--data.manifest", tiny_pairs["manifest"], "--data.cache", tiny_pairs["cache"]]
    assert main(["train", "--config", str(CONFIGS / name), "--print-config", *arch, *data]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["loss"]["name"] == "queue-ce" and printed["model"]["name"] == "senclip-tiny-vit"
    run = ["--data.batch_size", "8", "--data.workers", "0", "--data.val_fraction", "0.2",
           "--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
           "--trainer.out", str(tmp_path / "run"), "--no-progress"]
    assert main(["train", "--config", str(CONFIGS / name), *arch, *data, *run]) == 0
    assert "trained to step 2" in capsys.readouterr().out
    from senclip.train.module import load_module_state

    cfg, state, _ = load_module_state(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert cfg.loss.name == "queue-ce" and state["queue.items"].shape == (512, 128)
    assert int(state["queue.ptr"]) == 16  # 2 steps x 8 targets replaced the oldest random vectors
    assert "pooling.linear.weight" in state and "image_tower.head.projection.weight" in state


def test_tiny_config_default_recipe_is_unchanged(tiny_pairs, tmp_path):
    cfg = tiny_config(tiny_pairs, tmp_path)
    assert (cfg.loss.name, cfg.loss.queue_init, cfg.optim.scheduler, cfg.optim.decay_all) == \
        ("infonce", "empty", "cosine", False)
    assert (cfg.model.pooling, cfg.model.ground_views) == ("avg", ["N", "E", "S", "W", "P"])
