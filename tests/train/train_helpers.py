"""Helpers shared by the training tests and the kill -9 child process."""

from __future__ import annotations

from pathlib import Path


def tiny_config(pairs: dict, out: Path, **overrides):
    """A config that trains the tiny ViT for a few steps on ``pairs``."""
    from senclip.train.config import load_config

    opts = {
        "model.name": "senclip-tiny-vit", "model.pretrained": pairs["base"], "model.head_dropout": 0.1,
        "data.manifest": pairs["manifest"], "data.cache": pairs["cache"], "data.val_fraction": 0.2,
        "data.batch_size": 8, "data.workers": 0, "data.augment": True,
        "loss.queue_size": 16, "optim.lr": 1e-3, "optim.warmup_steps": 2,
        "trainer.out": str(out), "trainer.max_steps": 6, "trainer.ckpt_every_n_steps": 2,
        "trainer.log_every_n_steps": 1, "trainer.accelerator": "cpu", "trainer.devices": "1",
        "trainer.deterministic": True,
    }
    opts.update(overrides)
    return load_config(None, opts)
