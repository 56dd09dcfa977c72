"""The TimeSenCLIP reference's training recipe as a config, its CosineAnnealingLR schedule, and the
published encoder's conventions in configs/timesen-reference.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from senclip.cli import main
from senclip.errors import SenclipError
from senclip.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_recipe_config_holds_the_reference_recipe(capsys):
    cfg = load_config(CONFIGS / "timesen-reference-recipe.yaml")
    m, lc, o, t = cfg.model, cfg.loss, cfg.optim, cfg.trainer
    assert (m.name, m.pretrained, m.tower, m.head) == \
        ("ViT-B-32-quickgelu", "openai", "timesen-reference", False)
    assert (m.pooling, m.pool_out, sorted(m.ground_views)) == \
        ("attpool_perimage", "sum", ["E", "N", "S", "W"])
    assert (lc.name, lc.temperature, lc.learn_temperature, lc.queue_size, lc.queue_init) == \
        ("queue-ce", 0.07, True, 2048, "random")
    assert (o.lr, o.weight_decay, o.decay_all, o.betas, o.eps, o.grad_clip) == \
        (1e-4, 1e-4, True, [0.9, 0.999], 1e-8, 0.0)
    assert (o.scheduler, o.t_max, o.step_unit, o.warmup_steps) == ("annealing", 10, "epoch", 0)
    assert (cfg.data.batch_size, t.accumulate, t.max_epochs, t.precision) == (64, 8, 400, "16-mixed")
    tower = m.tower_options
    assert (tower["norm"], tower["positions"], tower["augment"], tower["random_ts_max"],
            tower["dropout"]) == ("reference-clamped", "calendar", ["tsmixaug"], 11, 0.2)
    assert main(["train", "--config", str(CONFIGS / "timesen-reference-recipe.yaml"), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "# model.tower timesen-reference: 8,169,472 parameters" in out
    assert yaml.safe_load(out)["optim"]["scheduler"] == "annealing"


def test_recipe_config_builds_the_reference_recipe():
    """The module built from the recipe (on the tiny base, a narrow encoder) has the reference's loss, a
    full queue of 2,048 random unit vectors, AdamW on every parameter and CosineAnnealingLR(T_max=10)
    stepped per epoch."""
    from senclip.losses import QueueCELoss
    from senclip.train.module import SenclipModule

    recipe = load_config(CONFIGS / "timesen-reference-recipe.yaml")
    narrow = recipe.model.tower_options | {"width": 128, "layers": 1}
    cfg = load_config(CONFIGS / "timesen-reference-recipe.yaml", {
        "model.name": "senclip-tiny-vit", "model.pretrained": None, "model.tower_options": narrow,
        "trainer.precision": "32-true"})
    module = SenclipModule(cfg.to_dict())
    assert isinstance(module.loss_fn, QueueCELoss) and module.loss_fn.log_scale.requires_grad
    assert module.queue.is_full and module.queue.negatives().shape == (2048, 128)
    torch.testing.assert_close(module.queue.negatives().norm(dim=-1), torch.ones(2048))
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert isinstance(opt, torch.optim.AdamW)
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(
        p.numel() for p in module.parameters() if p.requires_grad)
    assert isinstance(sched["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    assert (sched["scheduler"].T_max, sched["interval"]) == (10, "epoch")


def test_reference_config_follows_the_newest_encoder():
    tower = load_config(CONFIGS / "timesen-reference.yaml").model.tower_options
    assert (tower["norm"], tower["positions"], tower["single_position"], tower["random_ts_max"]) == \
        ("reference-clamped", "calendar", "first", 11)


def test_annealing_is_cosine_annealing_lr_per_epoch():
    from senclip.train.module import SenclipModule

    cfg = load_config(None, {"model.name": "senclip-tiny-vit", "optim.scheduler": "annealing",
                             "optim.t_max": 10, "optim.warmup_steps": 0, "optim.lr": 1e-4})
    torch.manual_seed(0)
    conf = SenclipModule(cfg.to_dict()).configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert isinstance(sched["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    assert sched["interval"] == "epoch" and sched["scheduler"].T_max == 10
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched["scheduler"].step()
    assert lrs[0] == pytest.approx(1e-4) and lrs[5] == pytest.approx(5e-5)
    assert lrs[10] == pytest.approx(0, abs=1e-12)
    assert lrs[20] == pytest.approx(1e-4)  # T_max=10 over 300-400 epochs: down and up again every 20 epochs
    with pytest.raises(SenclipError, match=r"warmup_steps: 0 with optim\.scheduler: annealing"):
        SenclipModule(load_config(None, {"model.name": "senclip-tiny-vit", "optim.scheduler": "annealing"}
                                  ).to_dict())
