"""Training end to end on tiny data: fit, validation metrics, export, kill -9 resume."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from train_helpers import tiny_config

from senclip.train.run import fit


def _weights(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def short_run(tiny_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(tiny_pairs, out, **{"trainer.val_every_n_steps": 3})
    return cfg, fit(cfg, resume="none", progress=False)


def test_fit_trains_validates_and_checkpoints(short_run, tiny_pairs):
    cfg, summary = short_run
    out = cfg.trainer.out
    assert summary["global_step"] == 6
    assert os.path.isfile(f"{out}/checkpoints/last.ckpt") and os.path.isfile(f"{out}/config.yaml")
    metrics = summary["metrics"]
    for key in ("val/s2g_R@1", "val/g2s_R@5", "val/loss", "train/loss"):
        assert key in metrics
    assert 0.0 <= metrics["val/s2g_R@1"] <= metrics["val/s2g_R@5"] <= 1.0
    module = summary["module"]
    assert module.queue.is_full  # 6 steps x 8 targets > 16
    text = open(f"{out}/logs/version_0/metrics.csv").read()
    assert "val/g2s_R@5" in text and "train/temperature" in text


def test_export_matches_module_embeddings(short_run, tiny_pairs, tmp_path, eurosat_rgb):
    from senclip.cli import main
    from senclip.data import get_dataset
    from senclip.models import create_model, read_metadata

    cfg, summary = short_run
    out = tmp_path / "model.safetensors"
    last = f"{cfg.trainer.out}/checkpoints/last.ckpt"
    assert main(["export", "--checkpoint", last, "--out", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["kind"] == "image" and meta["head"]["dim_out"] == 128
    assert meta["base_pretrained"] == tiny_pairs["base"]
    assert meta["extra"]["training"]["global_step"] == 6
    ds = get_dataset("eurosat", eurosat_rgb / "valid")
    images = torch.stack([ds[i]["image"] for i in range(0, 4000, 500)])
    module = summary["module"].eval()
    with torch.no_grad():
        expected = module(images)
    for model in (create_model("senclip-tiny-vit", pretrained=tiny_pairs["base"], checkpoint=str(out)),
                  create_model("senclip-tiny-vit", pretrained=str(out))):
        got = model.encode_image(images)
        assert torch.allclose(got, expected, atol=1e-5)
        # paired with the original frozen text tower
        base = create_model("senclip-tiny-vit", pretrained=tiny_pairs["base"])
        text = ["a photo of a forest"]
        assert torch.allclose(model.encode_text(text), base.encode_text(text))


def test_export_errors(tmp_path, capsys):
    from senclip.cli import main

    dest = str(tmp_path / "m.safetensors")
    assert main(["export", "--checkpoint", str(tmp_path / "nope.ckpt"), "--out", dest]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "not a readable training checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from lightning.pytorch.callbacks import Callback
    from train_helpers import tiny_config
    from senclip.train.run import fit

    class KillAt(Callback):
        seen = 0

        def on_train_batch_end(self, trainer, *args):
            # the accumulate-th batch end at step 5: right after the step, or mid-accumulation of step 6
            if trainer.global_step == 5:
                self.seen += 1
                if self.seen == {accumulate}:
                    os.kill(os.getpid(), signal.SIGKILL)

    fit(tiny_config({pairs!r}, {out!r}, **{overrides!r}), progress=False, callbacks=[KillAt()])
""")


def _val_steps(metrics_csv) -> list[int]:
    """The ``step`` column of the validation rows of a Lightning CSV log."""
    import pandas as pd

    df = pd.read_csv(metrics_csv)
    return df.loc[df["val/loss"].notna(), "step"].astype(int).tolist()


# 32 training points, batch 8: 4 batches per epoch. accumulate=1 resumes from step 4 (an epoch end);
# accumulate=2 from step 3 = batch 6, in the middle of the second epoch, killed mid-accumulation,
# and validates every 2 optimizer steps (= 4 batches).
@pytest.mark.parametrize(("accumulate", "ckpt_every", "max_steps", "resume_step", "val_every"),
                         [(1, 2, 8, 4, 0), (2, 3, 6, 3, 2)], ids=["accumulate1", "accumulate2"])
def test_resume_after_kill_9_matches_uninterrupted_run(tiny_pairs, tmp_path, accumulate, ckpt_every,
                                                       max_steps, resume_step, val_every):
    tests = os.path.dirname(__file__)
    out = tmp_path / "killed"
    overrides = {"trainer.max_steps": max_steps, "trainer.accumulate": accumulate,
                 "trainer.ckpt_every_n_steps": ckpt_every, "trainer.val_every_n_steps": val_every}
    script = KILL_SCRIPT.format(tests=tests, pairs=tiny_pairs, out=str(out), overrides=overrides,
                                accumulate=accumulate)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == resume_step

    resumed = fit(tiny_config(tiny_pairs, out, **overrides), resume="auto", progress=False)
    assert resumed["resumed_from"].endswith("last.ckpt")
    reference = fit(tiny_config(tiny_pairs, tmp_path / "ref", **overrides), resume="none", progress=False)
    assert resumed["global_step"] == reference["global_step"] == max_steps
    a, b = _weights(resumed["module"]), _weights(reference["module"])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    assert torch.equal(a["queue.items"], b["queue.items"])
    if val_every:  # validation every val_every optimizer steps, not batches
        steps = _val_steps(tmp_path / "ref" / "logs" / "version_0" / "metrics.csv")
        assert len(steps) == max_steps // val_every, steps
        assert all(y - x == val_every for x, y in itertools.pairwise(steps)), steps
