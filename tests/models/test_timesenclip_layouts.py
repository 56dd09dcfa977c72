"""Every published TimeSenCLIP checkpoint layout loads through --checkpoint and `senclip convert`, and
embeds as the newest published `inference()` does (transcribed in timesen_published.py, from the
published facts only), at 12, 4 and 1 time steps; a file that fits no layout is refused in one line.

`TIMESEN_LAYOUT_REPORT=path.json` makes the layout test write its measured max 1 - cos per layout,
route and step count (the table in docs/timeseries.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re

import pytest
import torch

from senclip.cli import main
from senclip.commands.common import load_model_from_args
from senclip.errors import SenclipError
from senclip.models import create_model
from senclip.models.kinds import set_series_normalisation, set_time_steps
from timesen_published import (
    LAYOUTS,
    PUBLISHED_DIMS,
    PUBLISHED_PARAMETERS,
    published_shapes,
    reference_embeddings,
    series,
    write_published,
)

BASE = "senclip-tiny-vit"  # 128-d text embeddings
DIMS = {"D": 128, "F": 64, "P": 10, "T": 12, "L": 2, "heads": 8}
TOLERANCE = 1e-4  # 1 - cos
SUFFIX = {"bare": ".pt", "lightning-learner.TS_ViT": ".ckpt", "lightning-learner.ts_encoder": ".ckpt",
          "prefixed-ts_encoder": ".pt", "prefixed-TS_ViT": ".ckpt"}


def _args(checkpoint, rule=None) -> argparse.Namespace:
    """The options every evaluation command passes to load_model_from_args."""
    return argparse.Namespace(model=BASE, pretrained=None, checkpoint=str(checkpoint), device="cpu",
                              precision="fp32", model_bands=None, preprocess=None, series_normalisation=rule)


def _embed(model, raw, steps):
    set_time_steps(model.image_tower, steps)
    with torch.no_grad():
        return model.encode_image(raw)


def test_the_published_table_is_senclips_encoder():
    from senclip.models.timesen_reference import TimeSenReferenceTower, count_parameters

    shapes = published_shapes(PUBLISHED_DIMS)
    assert sum(torch.Size(s).numel() for s in shapes.values()) == PUBLISHED_PARAMETERS
    tower = TimeSenReferenceTower()
    assert {k: tuple(v.shape) for k, v in tower.state_dict().items()} == shapes
    assert count_parameters(tower) == PUBLISHED_PARAMETERS


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_loads_and_embeds_as_the_published_inference(tmp_path, capsys, layout):
    form, token = layout.split("/")
    path = tmp_path / f"TimeSenCLIP_1x1{SUFFIX[form]}"
    state = write_published(path, layout, DIMS, seed=sum(map(ord, layout)))
    converted = tmp_path / "tower.safetensors"
    assert main(["convert", str(path), "--out", str(converted)]) == 0
    assert "timesen-reference tower checkpoint" in capsys.readouterr().out
    raw = series()
    measured = {}
    copy = None
    if form.startswith("lightning"):
        inner = torch.load(path, weights_only=False)["state_dict"]
        copy = {k[len("TS_ViT."):]: v for k, v in inner.items() if k.startswith("TS_ViT.")}
    for route, file in (("--checkpoint", path), ("convert", converted)):
        model = load_model_from_args(_args(file))
        # the published weights' default rule: clamped, constants in band order
        assert model.image_tower.normalisation == "reference-clamped"
        for steps in (4, 1, 12):
            clamped = reference_embeddings(state, raw, steps, "reference-clamped", DIMS["heads"], token)
            assert float((1 - (_embed(model, raw, steps) * clamped).sum(-1)).max()) <= TOLERANCE, steps
        if copy is not None:  # the learner's encoder loads, not the top-level validation copy
            other = reference_embeddings(copy, raw, 12, "reference-clamped", DIMS["heads"], token)
            assert float((1 - (_embed(model, raw, 12) * other).sum(-1)).max()) > 1e-2
        set_series_normalisation(model.image_tower, "reference-eval")  # --series-normalisation
        for steps in (12, 4, 1):
            ours = _embed(model, raw, steps)
            ref = reference_embeddings(state, raw, steps, "reference-eval", DIMS["heads"], token)
            gap = float((1 - (ours * ref).sum(-1)).max())
            measured[f"{route} T={steps}"] = gap
            assert gap <= TOLERANCE, (layout, route, steps, gap)
            assert ours.std(dim=0).min() > 1e-3  # distinct embeddings, not a constant
        # the comparison can fail: the other rule gives other embeddings
        assert float((1 - (_embed(model, raw, 12) * clamped).sum(-1)).max()) > 1e-3
    report = os.environ.get("TIMESEN_LAYOUT_REPORT")
    if report:
        table = json.loads(open(report).read()) if os.path.exists(report) else {}
        table[layout] = measured
        with open(report, "w") as f:
            json.dump(table, f, indent=1)


def test_single_step_position_is_januarys_and_the_older_mean_is_an_option(tmp_path):
    """The newest inference() interpolates the 12 positions to 1 with mode nearest: index 0."""
    import torch.nn.functional as F

    pos = torch.arange(12.0).view(1, 12, 1)
    picked = F.interpolate(pos.permute(0, 2, 1).unsqueeze(-1), size=(1, 1), mode="nearest")
    assert picked.item() == 0.0
    path = tmp_path / "TimeSenCLIP_1x1.pt"
    state = write_published(path, "bare/time_token", DIMS)
    model = load_model_from_args(_args(path, "reference-eval"))
    raw = series()
    first = _embed(model, raw, 1)
    from dataclasses import replace

    model.image_tower.config = replace(model.image_tower.config, single_position="mean")  # bde6e02
    mean = _embed(model, raw, 1)
    assert float((1 - (first * mean).sum(-1)).max()) > 1e-3
    older = state | {"time_pos_encoding": state["time_pos_encoding"].mean(1, keepdim=True).expand(-1, 12, -1)}
    ref = reference_embeddings(older, raw, 1, "reference-eval", DIMS["heads"])
    assert float((1 - (mean * ref).sum(-1)).max()) <= TOLERANCE


def test_no_layout_fits_one_line_naming_the_closest(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.ckpt"
    write_published(good, "lightning-learner.ts_encoder/time_token", DIMS)
    obj = torch.load(good, weights_only=False)
    for prefix in ("learner.ts_encoder.", "TS_ViT."):  # the trained encoder and its validation copy
        obj["state_dict"].pop(prefix + "mlp_head.1.bias")
        obj["state_dict"][prefix + "mlp_head.2.weight"] = torch.zeros(3)
    bad = tmp_path / "bad.ckpt"
    torch.save(obj, bad)
    message = (r"no published TimeSenCLIP layout fits; closest is lightning learner\.ts_encoder\. / "
               r"time_token with missing learner\.ts_encoder\.mlp_head\.1\.bias; unexpected "
               r"learner\.ts_encoder\.mlp_head\.2\.weight")
    out = tmp_path / "out" / "t.safetensors"
    assert main(["convert", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not out.parent.exists()
    with pytest.raises(SenclipError, match=message):
        create_model(BASE, checkpoint=str(bad))
    # a token of neither name, bare: the closest is the bare layout, missing the newest token's name
    state = torch.load(tmp_path / "good.ckpt", weights_only=False)["state_dict"]
    n = len("learner.ts_encoder.")
    bare = {k[n:]: v for k, v in state.items() if k.startswith("learner.ts_encoder.")}
    bare["cls_token"] = bare.pop("time_token")
    torch.save(bare, tmp_path / "renamed.pt")
    with pytest.raises(SenclipError, match=r"closest is bare / time_token with missing time_token; "
                                           r"unexpected cls_token"):
        create_model(BASE, checkpoint=str(tmp_path / "renamed.pt"))
    # wrong shapes: the layout fits, the tensors do not (strict load)
    wide = {k: v for k, v in bare.items()} | {"time_token": torch.zeros(1, 1, 64)}
    wide.pop("cls_token")
    torch.save(wide, tmp_path / "wide.pt")
    with pytest.raises(SenclipError, match=r"weights do not fit the TimeSenCLIP encoder: .*time_token"):
        create_model(BASE, checkpoint=str(tmp_path / "wide.pt"))


def test_the_newest_readme_file_name_is_a_registry_entry(tmp_path, monkeypatch):
    from senclip.models.registry import get_entry

    monkeypatch.setenv("SENCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SENCLIP_OFFLINE", "1")
    monkeypatch.delenv("SENCLIP_REGISTRY", raising=False)
    entry = get_entry("timesenclip-1x1-pt")
    assert entry.tower == "timesen-reference" and entry.filename == "TimeSenCLIP_1x1.pt"
    assert get_entry("timesenclip-1x1").filename == "TimeSenCLIP_1x1.ckpt"
    cached = tmp_path / "cache" / "weights" / "timesenclip-1x1-pt" / "TimeSenCLIP_1x1.pt"
    cached.parent.mkdir(parents=True)
    state = write_published(cached, "bare/time_token", DIMS)
    model = load_model_from_args(_args("timesenclip-1x1-pt", "reference-eval"))
    ref = reference_embeddings(state, series(), 12, "reference-eval", DIMS["heads"])
    assert float((1 - (_embed(model, series(), 12) * ref).sum(-1)).max()) <= TOLERANCE
