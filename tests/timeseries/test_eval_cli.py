"""senclip zeroshot / fewshot on per-pixel time-series samples through the dataset registry."""

from __future__ import annotations

import json

import pytest
import torch

from senclip.cli import main
from senclip.data.series.dataset import LULC_CLASSES


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_vit, ndvi_tower_config):
    from senclip.models import save_model
    from senclip.models.timesen import build_timesen_model

    torch.manual_seed(5)
    return save_model(build_timesen_model(tiny_vit, ndvi_tower_config),
                      tmp_path_factory.mktemp("ck") / "ts.safetensors")


def test_zeroshot_and_fewshot_on_pixels(tmp_path, eopatch_root, checkpoint):
    model = ["--model", "senclip-tiny-vit", "--checkpoint", str(checkpoint)]
    run = ["--no-cache", "--workers", "0", "--no-progress", "--batch-size", "2048"]
    out = tmp_path / "zs.json"
    assert main(["zeroshot", *model, "--dataset", "timeseries", "--data", f"{eopatch_root}:valid",
                 "--prompts", "ground", "--out", str(out), *run]) == 0  # the built-in LULC set
    res = json.loads(out.read_text())
    assert res["classes"] == list(LULC_CLASSES)
    assert res["prompts"]["spec"] == "ground"
    assert 0.0 <= res["top1"] <= 1.0
    # few-shot needs k pixels of every class in the shots' half: the right half has all the patch's
    # classes, so draw shots there and evaluate on the left half (classes present in the patch)
    few = tmp_path / "fs.json"
    assert main(["fewshot", *model, "--dataset", "timeseries", "--data", f"{eopatch_root}:valid:present",
                 "--eval-data", f"{eopatch_root}:train:present", "--shots", "2", "--seeds", "1",
                 "--out", str(few), *run]) == 0
    text = few.read_text()
    assert json.loads(text)["shots"][0]["n_train"] == 2 * 5  # k=2 shots x the patch's 5 classes


def test_time_steps_on_fewshot(tmp_path, eopatch_root, checkpoint):
    model = ["--model", "senclip-tiny-vit", "--checkpoint", str(checkpoint)]
    run = ["--no-cache", "--workers", "0", "--no-progress", "--batch-size", "2048"]
    outs = {}
    for steps in ("12", "1"):
        outs[steps] = tmp_path / f"fs{steps}.json"
        assert main(["fewshot", *model, "--dataset", "timeseries", "--data", f"{eopatch_root}:valid:present",
                     "--eval-data", f"{eopatch_root}:train:present", "--shots", "2", "--seeds", "1",
                     "--time-steps", steps, "--out", str(outs[steps]), *run]) == 0
    a, b = (json.loads(outs[s].read_text())["shots"][0] for s in ("12", "1"))
    assert a["n_train"] == b["n_train"] == 10
