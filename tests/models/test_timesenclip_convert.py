"""TimeSenCLIP checkpoints as published: `senclip convert` to a senclip tower file, the registry
entry `timesenclip-1x1` as `--checkpoint NAME`, and bad input refused in one line.

Fake checkpoints are written from the published key table (timesen_published.py, not senclip's
module): `torch.save(encoder.state_dict())` (TimeSenCLIP_1x1.ckpt on Hugging Face
pallavijainpj/TimeSenCLIP) or a Lightning checkpoint whose `state_dict` keys carry
`learner.ts_encoder.`. The encoder is random at width 128 (the tiny base's text width); its positions
and class token are random too, so that they matter.
"""

from __future__ import annotations

import os
import re

import open_clip
import pytest
import torch

from senclip.cli import main
from senclip.errors import SenclipError
from senclip.models import create_model, read_metadata
from senclip.models.convert import TowerWeights
from senclip.models.timesen_reference import PUBLISHED_BASE, reduce_time_steps
from timesen_published import random_encoder, write_published

BASE = "senclip-tiny-vit"  # 128-d text embeddings
DIMS = {"D": 128, "F": 64, "P": 10, "T": 12, "L": 2, "heads": 8}
LIGHTNING_PREFIX = "learner.ts_encoder."


def _encoder_state(seed: int = 0) -> dict[str, torch.Tensor]:
    return random_encoder(DIMS, seed=seed)


def _publish(path, layout: str, state: dict | None = None, seed: int = 0) -> None:
    """A published-layout file: the bare state dict, or a Lightning checkpoint of the newest trainer."""
    form = "bare" if layout == "bare" else "lightning-learner.ts_encoder"
    write_published(path, f"{form}/time_token", DIMS, seed=seed)


def _series(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    raw = torch.rand(n, 12, 10, generator=g) * 4000
    raw[0, 3] = float("nan")  # a clouded month
    return raw


def _embed(model, x):
    with torch.no_grad():
        return model.encode_image(x)


@pytest.mark.parametrize("layout", ["bare", "lightning"])
def test_converted_tower_embeds_exactly_as_the_imported_ckpt(tmp_path, capsys, layout):
    ckpt = tmp_path / "TimeSenCLIP_1x1.ckpt"
    _publish(ckpt, layout)
    out = tmp_path / "tower.safetensors"
    assert main(["convert", str(ckpt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "timesen-reference tower checkpoint" in printed and "--pretrained openai" in printed
    meta = read_metadata(out)
    assert meta["kind"] == "image" and meta["tower"] == "timesen-reference"
    assert (meta["arch"], meta["base_pretrained"]) == PUBLISHED_BASE
    assert meta["tower_config"]["width"] == 128 and meta["tower_config"]["layers"] == 2
    expected = "bare / time_token" if layout == "bare" else "lightning learner.ts_encoder. / time_token"
    assert meta["extra"]["converted"] == {"source": str(ckpt.resolve()), "layout": "timesenclip",
                                          "encoder_layout": expected}

    imported = create_model(BASE, checkpoint=str(ckpt))
    converted = create_model(BASE, checkpoint=str(out))
    assert converted.checkpoint == str(out) and imported.checkpoint == str(ckpt)
    x = _series()
    for steps in (12, 4, 1):
        a, b = _embed(imported, reduce_time_steps(x, steps)), _embed(converted, reduce_time_steps(x, steps))
        assert (a - b).abs().max().item() == 0.0, steps
        assert torch.isfinite(a).all() and a.std(dim=0).min() > 0  # distinct embeddings, not a constant
    # another encoder gives other embeddings: the comparison can fail
    other = tmp_path / "other.ckpt"
    _publish(other, layout, seed=1)
    assert (_embed(create_model(BASE, checkpoint=str(other)), x) - _embed(converted, x)).abs().max() > 1e-3


def _truncated(tmp_path):
    full = tmp_path / "full.ckpt"
    _publish(full, "bare")
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return path


class _Exploit:
    def __reduce__(self):
        return (os.mkdir, ("EXPLOITED",))


def _with_code(tmp_path):
    path = tmp_path / "code.ckpt"
    state = {LIGHTNING_PREFIX + k: v for k, v in _encoder_state().items()}
    torch.save({"state_dict": state, "hyper_parameters": _Exploit()}, path)
    return path


def _clip_ckpt(tmp_path):
    """A CLIP state dict with OpenAI's key names, as pallavijainpj/SenCLIP published them."""
    path = tmp_path / "SenCLIP_AvgPool_tiny.ckpt"
    torch.save(open_clip.create_model(f"{BASE}-quickgelu").state_dict(), path)
    return path


def _timesen_ckpt(tmp_path):
    path = tmp_path / "TimeSenCLIP_1x1.ckpt"
    _publish(path, "bare")
    return path


def _run_refused(argv, message, tmp_path, capsys):
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists(), f"{argv} wrote {list((tmp_path / 'out').rglob('*'))}"


def test_bad_tower_files_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "out" / "tower.safetensors")
    truncated, code = _truncated(tmp_path), _with_code(tmp_path)
    clip, timesen = _clip_ckpt(tmp_path), _timesen_ckpt(tmp_path)
    cases = [
        (["convert", str(truncated), "--out", out], "not a readable checkpoint .truncated or corrupt"),
        (["convert", str(code), "--out", out], "refused to load .*objects other than plain tensors"),
        # a CLIP where a TimeSenCLIP encoder is expected, and the other way round
        (["convert", str(clip), "--layout", "timesenclip", "--out", out],
         "not in the timesenclip layout .it looks like openai"),
        (["convert", str(timesen), "--layout", "openai", "--out", out],
         "not in the openai layout .it looks like timesenclip"),
        (["convert", str(timesen), "--model", "ViT-B-32", "--out", out],
         "--model does not apply to .*TimeSenCLIP"),
        (["convert", str(timesen), "--preprocess", "senclip", "--out", out], "--preprocess does not apply"),
    ]
    for argv, message in cases:
        _run_refused(argv, message, tmp_path, capsys)
    # --checkpoint / --pretrained through create_model, as every evaluation command loads them
    for checkpoint, message in [(truncated, "not a readable checkpoint .truncated or corrupt"),
                                (code, "objects other than plain tensors.*keep its tensors alone"),
                                (clip, "not a tower checkpoint .*CLIP weights go to --pretrained")]:
        with pytest.raises(SenclipError, match=message):
            create_model(BASE, checkpoint=str(checkpoint))
    with pytest.raises(TowerWeights,
                       match=r"holds a TimeSenCLIP time-series tower, not CLIP weights: load it with "
                             r"--checkpoint"):
        create_model(BASE, pretrained=str(timesen))
    assert not (tmp_path / "EXPLOITED").exists()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """An empty senclip cache, offline: nothing may be downloaded."""
    monkeypatch.setenv("SENCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SENCLIP_OFFLINE", "1")
    monkeypatch.delenv("SENCLIP_REGISTRY", raising=False)
    return tmp_path / "cache"


def test_registry_entry_is_listed_and_loads_by_name_from_the_cache(cache, tmp_path, capsys):
    import json

    from senclip.models.registry import get_entry

    entry = get_entry("timesenclip-1x1")
    assert entry.tower == "timesen-reference" and (entry.arch, entry.base_pretrained) == PUBLISHED_BASE
    assert entry.download_url.endswith("/pallavijainpj/TimeSenCLIP/resolve/main/TimeSenCLIP_1x1.ckpt")

    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"timesenclip-1x1\s+series-tower\s+ViT-B-32-quickgelu\s+-\s+hf:pallavijainpj/TimeSenCLIP"
                     r"\s+no\s", listing)
    assert re.search(r"clip-vit-b-32-openai\s+clip\s+ViT-B-32\s", listing)

    # not cached and offline: one line naming the cache path and the flag to use instead
    _run_refused(["convert", "timesenclip-1x1", "--out", str(tmp_path / "out" / "t.safetensors")],
                 r"timesenclip-1x1 weights.*SENCLIP_OFFLINE.*--checkpoint /path/to/file", tmp_path, capsys)

    cached = cache / "weights" / "timesenclip-1x1" / "TimeSenCLIP_1x1.ckpt"
    cached.parent.mkdir(parents=True)
    _publish(cached, "bare")
    model = create_model(BASE, checkpoint="timesenclip-1x1")
    assert model.checkpoint == str(cached) and model.image_tower.tower_kind == "timesen-reference"
    x = _series()
    direct = _embed(create_model(BASE, checkpoint=str(cached)), x)
    assert (_embed(model, x) - direct).abs().max().item() == 0.0

    assert main(["models", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "timesenclip-1x1")
    assert row["cached"] and row["path"] == str(cached) and row["tower"] == "timesen-reference"
    assert row["base_pretrained"] == "openai" and row["unverified"]

    out = tmp_path / "named.safetensors"
    assert main(["convert", "timesenclip-1x1", "--out", str(out)]) == 0
    assert read_metadata(out)["extra"]["converted"]["source"] == str(cached.resolve())
    assert (_embed(create_model(BASE, checkpoint=str(out)), x) - direct).abs().max().item() == 0.0

    # the wrong flag for each kind of entry: one line that names the right one
    with pytest.raises(SenclipError,
                       match=r"timesenclip-1x1 holds a TimeSenCLIP .* --checkpoint timesenclip-1x1"):
        create_model(BASE, pretrained="timesenclip-1x1")
    with pytest.raises(SenclipError, match=r"clip-vit-b-32-openai holds CLIP weights.*--pretrained"):
        create_model(BASE, checkpoint="clip-vit-b-32-openai")
