"""Pretrained registry: packaged entries, --pretrained NAME via loopback, cache, offline, corrupt files."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile

import open_clip
import pytest
import torch

from senclip.cli import main
from senclip.errors import SenclipError
from senclip.models import create_model
from senclip.models import registry as reg

ARCH = "senclip-tiny-vit"


@pytest.fixture(scope="module")
def tiny_state():
    """A tiny open_clip model's weights, saved as a plain .pt state dict (bytes)."""
    torch.manual_seed(1)
    clip = open_clip.create_model(ARCH)
    buf = io.BytesIO()
    torch.save(clip.state_dict(), buf)
    return clip.state_dict(), buf.getvalue()


def write_registry(tmp_path, monkeypatch, entries: dict) -> None:
    import yaml

    path = tmp_path / "user_registry.yaml"
    path.write_text(yaml.safe_dump({"models": entries}))
    monkeypatch.setenv("SENCLIP_REGISTRY", str(path))


def test_packaged_registry_is_complete_and_consistent():
    entries = reg.load_registry()
    assert {"clip-rn50-openai", "clip-vit-b-32-openai", "remoteclip-vit-b-32", "georsclip-vit-b-32",
            "skyclip-vit-b-32"} <= set(entries)
    archs = set(open_clip.list_models())
    for e in entries.values():
        assert e.arch in archs, e.name
        if e.tower:  # a satellite tower: `arch` names its base CLIP; no image preprocessing
            assert e.base_pretrained and not e.preprocess, e.name
            continue
        size = open_clip.get_model_config(e.arch)["vision_cfg"]["image_size"]
        assert e.preprocess["image_size"] == size, e.name
        assert len(e.preprocess["mean"]) == 3 and len(e.preprocess["std"]) == 3
        if e.source == "hf_hub":
            pinned = re.fullmatch(r"[0-9a-f]{40}", e.revision)
            assert pinned or any(u.startswith("revision") for u in e.unverified), f"{e.name}: pin a commit"
            assert e.download_url.startswith("https://huggingface.co/")
        if e.source == "open_clip":
            assert open_clip.get_pretrained_cfg(e.arch, e.tag), e.name
        if e.eurosat_zeroshot:
            assert e.eurosat_zeroshot.get("source"), f"{e.name}: figure without source"
    assert entries["clip-vit-b-32-openai"].eurosat_zeroshot["generic"] == 47.3
    # the SenCLIP releases of both publishers: OpenAI-layout weights, hence QuickGELU, senclip preprocessing
    senclip = {n: e for n, e in entries.items() if e.pooling}
    assert {e.repo for e in senclip.values()} == {
        "pallavijainpj/SenCLIP", "MVRL/senclip-ViT-B-32-avgpool", "MVRL/senclip-RN50-avgpool",
        "MVRL/senclip-ViT-B-32-attpool-perimage"}
    assert len(senclip) == 7
    for e in senclip.values():
        assert e.arch.endswith("-quickgelu") and e.layout in ("openai", "clip-prefixed"), e.name
        assert e.preprocess["profile"] == "senclip"
        assert (e.preprocess["mean"], e.preprocess["std"]) == ([0.347, 0.376, 0.296], [0.269, 0.261, 0.276])
    assert entries["senclip-vit-b-32-avgpool"].filename == "SenCLIP_AvgPool_ViTB32.ckpt"
    assert "filename" in entries["senclip-rn50-attpool"].unverified  # named from the pattern only
    # TimeSenCLIP: the tower entries (the file names of both README versions), paired with the base the
    # published code embeds prompts with
    from senclip.models.timesen_reference import PUBLISHED_BASE

    towers = [e for e in entries.values() if e.tower]
    assert [(e.name, e.tower, e.repo, e.filename) for e in towers] == [
        ("timesenclip-1x1", "timesen-reference", "pallavijainpj/TimeSenCLIP", "TimeSenCLIP_1x1.ckpt"),
        ("timesenclip-1x1-pt", "timesen-reference", "pallavijainpj/TimeSenCLIP", "TimeSenCLIP_1x1.pt")]
    assert all((t.arch, t.base_pretrained) == PUBLISHED_BASE for t in towers)


def test_pretrained_name_downloads_once_and_loads(http_server, tmp_path, monkeypatch, tiny_state):
    state, blob = tiny_state
    http_server.files["/w/tiny.pt"] = blob
    write_registry(tmp_path, monkeypatch, {"tiny-test": {
        "arch": ARCH, "source": "url", "url": http_server.url("/w/tiny.pt"),
        "sha256": hashlib.sha256(blob).hexdigest()}})
    model = create_model(ARCH, pretrained="tiny-test")
    weights = model.image_tower.visual.state_dict()
    key = next(k for k in weights if k.endswith("weight"))
    assert torch.equal(weights[key], state[f"visual.{key}"])
    cached = tmp_path / "cache" / "weights" / "tiny-test" / "tiny.pt"
    assert cached.read_bytes() == blob
    # second use: from the cache, no request; the architecture may be left to the entry
    arch, path = reg.resolve_pretrained("tiny-test", None)
    assert (arch, path) == (ARCH, str(cached))
    assert len(http_server.requests_for("/w/tiny.pt")) == 1
    rows = {r["name"]: r for r in reg.list_entries()}
    assert rows["tiny-test"]["cached"] is True and rows["remoteclip-vit-b-32"]["cached"] is False


def test_hf_hub_entry_via_endpoint_then_offline_from_cache(http_server, tmp_path, monkeypatch, tiny_state):
    _, blob = tiny_state
    rev = "0123456789abcdef0123456789abcdef01234567"
    http_server.files[f"/org/repo/resolve/{rev}/ckpt/tiny.pt"] = blob
    write_registry(tmp_path, monkeypatch, {"tiny-hf": {
        "arch": ARCH, "source": "hf_hub", "repo": "org/repo", "revision": rev, "filename": "ckpt/tiny.pt"}})
    monkeypatch.setenv("HF_ENDPOINT", http_server.url(""))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert main(["models", "--fetch", "tiny-hf", "--no-progress"]) == 0
    # offline with the pre-filled cache: loads, no request
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    http_server.files.clear()
    model = create_model(ARCH, pretrained="tiny-hf")
    assert model.image_tower is not None
    assert len(http_server.log) == 1


def test_offline_empty_cache_fails_fast_with_one_line(tmp_path, monkeypatch, capsys, tiny_state):
    write_registry(tmp_path, monkeypatch, {"tiny-hf": {
        "arch": ARCH, "source": "hf_hub", "repo": "org/repo", "revision": "main", "filename": "tiny.pt"}})
    t0 = time.perf_counter()
    assert main(["models", "--fetch", "tiny-hf"]) == 2  # HF_HUB_OFFLINE=1 from the test guard
    assert time.perf_counter() - t0 < 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HF_HUB_OFFLINE=1" in err
    assert str(tmp_path / "cache" / "weights" / "tiny-hf") in err and "--pretrained /path/to/file" in err


def test_open_clip_tag_offline_fails_fast(monkeypatch):
    monkeypatch.setattr(reg, "_open_clip_cached", lambda arch, tag: None)  # as on a fresh machine
    t0 = time.perf_counter()
    msg = r"could not load ViT-B-32 'openai' weights: not cached in .* HF_HUB_OFFLINE=1"
    with pytest.raises(reg.OfflineError, match=msg):
        create_model("ViT-B-32", pretrained="openai")
    assert time.perf_counter() - t0 < 5


def test_corrupt_checkpoint_checksum_mismatch(http_server, tmp_path, monkeypatch, tiny_state):
    _, blob = tiny_state
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    http_server.files["/w/tiny.pt"] = bytes(bad)
    write_registry(tmp_path, monkeypatch, {"tiny-test": {
        "arch": ARCH, "source": "url", "url": http_server.url("/w/tiny.pt"),
        "sha256": hashlib.sha256(blob).hexdigest()}})
    with pytest.raises(SenclipError, match=r"checksum mismatch for tiny\.pt: sha256"):
        create_model(ARCH, pretrained="tiny-test")
    assert not any((tmp_path / "cache" / "weights" / "tiny-test").iterdir())


class Payload:
    """An arbitrary object: weights_only loading must refuse to rebuild it."""


@pytest.mark.parametrize("content", ["garbage", "pickled-object"])
def test_unverifiable_bad_file_is_rejected(http_server, tmp_path, monkeypatch, content):
    if content == "garbage":
        blob = b"not a checkpoint at all" * 100
    else:
        buf = io.BytesIO()
        torch.save({"w": torch.zeros(2), "obj": Payload()}, buf)
        blob = buf.getvalue()
    http_server.files["/w/x.pt"] = blob
    write_registry(tmp_path, monkeypatch, {"x": {"arch": ARCH, "source": "url",
                                                 "url": http_server.url("/w/x.pt")}})
    with pytest.raises(SenclipError, match="is not a loadable weights file"):
        reg.resolve_pretrained("x", ARCH)
    assert reg.cached_path(reg.get_entry("x")) is None


def test_zip_member_entry(http_server, tmp_path, monkeypatch, tiny_state):
    state, _ = tiny_state
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Tiny_top50pct/epoch_20.pt", torch_training_ckpt(state))
    http_server.files["/ckpt/Tiny.zip"] = buf.getvalue()
    write_registry(tmp_path, monkeypatch, {"tiny-zip": {
        "arch": ARCH, "source": "url", "url": http_server.url("/ckpt/Tiny.zip"), "archive": "zip",
        "member": "Tiny_top50pct/epoch_20.pt"}})
    model = create_model(ARCH, pretrained="tiny-zip")
    w = model.text_tower.state_dict()
    key = next(k for k in w if "token_embedding" in k)
    assert torch.equal(w[key], state["token_embedding.weight"])
    folder = tmp_path / "cache" / "weights" / "tiny-zip"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_20.pt"]  # zip removed after extraction


def torch_training_ckpt(state) -> bytes:
    """An open_clip training checkpoint: {'epoch', 'name', 'state_dict' with 'module.' keys}."""
    buf = io.BytesIO()
    torch.save({"epoch": 20, "name": "tiny", "state_dict": {f"module.{k}": v for k, v in state.items()}}, buf)
    return buf.getvalue()


def test_architecture_mismatch_and_bad_registry(tmp_path, monkeypatch):
    with pytest.raises(SenclipError, match="holds ViT-B-32 weights, but the architecture is RN50"):
        reg.resolve_pretrained("remoteclip-vit-b-32", "RN50")
    # the QuickGELU variant is the same architecture family: the entry's choice wins
    monkeypatch.setattr(reg, "fetch_weights", lambda entry, progress=True: tmp_path / "w.pt")
    assert reg.resolve_pretrained("georsclip-vit-b-32", "ViT-B-32")[0] == "ViT-B-32-quickgelu"
    write_registry(tmp_path, monkeypatch, {"broken": {"arch": ARCH, "source": "hf_hub", "repo": "a/b"}})
    with pytest.raises(SenclipError, match="needs filename"):
        reg.load_registry()
    write_registry(tmp_path, monkeypatch, {"clip": {"arch": ARCH, "source": "url", "url": "http://x/w.pt",
                                                    "base_pretrained": "openai"}})
    with pytest.raises(SenclipError, match="base_pretrained belongs to tower checkpoints"):
        reg.load_registry()


def test_models_command_lists_and_json(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"clip-vit-b-32-openai\s+clip\s+ViT-B-32\s+-\s+open_clip\s+(yes|no)\s+47.3/54.9/51.7",
                     out)
    assert re.search(r"remoteclip-vit-b-32\s+clip\s+ViT-B-32\s+-\s+hf:chendelong/RemoteCLIP\s+no\s+-", out)
    assert re.search(r"timesenclip-1x1\s+series-tower\s+ViT-B-32-quickgelu\s+-\s+"
                     r"hf:pallavijainpj/TimeSenCLIP", out)
    for name, arch, pooling, source in [
            ("senclip-vit-b-32-avgpool", "ViT-B-32-quickgelu", "avgpool", "hf:pallavijainpj/SenCLIP"),
            ("senclip-rn50-attpool", "RN50-quickgelu", "attpool", "hf:pallavijainpj/SenCLIP"),
            ("senclip-mvrl-vit-b-32-attpool-perimage", "ViT-B-32-quickgelu", "attpool_perimage",
             "hf:MVRL/senclip-ViT-B-32-attpool-perimage"),
            ("senclip-mvrl-rn50-avgpool", "RN50-quickgelu", "avgpool", "hf:MVRL/senclip-RN50-avgpool")]:
        assert re.search(rf"{name}\s+clip\s+{arch}\s+{pooling}\s+{source}\s+(yes|no)", out), name
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    sky = next(r for r in rows if r["name"] == "skyclip-vit-b-32")
    assert sky["location"].endswith("SkyCLIP_ViT_B32_top50pct.zip") and sky["cached"] is False
    assert main(["models", "--architectures"]) == 0
    assert ARCH in capsys.readouterr().out.split()


@pytest.mark.parametrize("layout", ["openai", "clip-prefixed"])
def test_senclip_release_entries_download_convert_and_preprocess(http_server, tmp_path, monkeypatch, layout):
    """An entry shaped like the SenCLIP releases: fetched once, converted, QuickGELU, `senclip` profile."""
    import warnings

    from safetensors.torch import save

    from senclip.errors import SenclipNote

    torch.manual_seed(3)
    clip = open_clip.create_model("senclip-tiny-vit-quickgelu").eval()
    state = clip.state_dict()
    if layout == "openai":  # as pallavijainpj/SenCLIP: torch.save of the OpenAI state dict
        buf = io.BytesIO()
        torch.save(state, buf)
        blob, filename = buf.getvalue(), "SenCLIP_AvgPool_Tiny.ckpt"
    else:  # as MVRL/senclip-*: PyTorchModelHubMixin safetensors, keys under clip.
        blob, filename = save({f"clip.{k}": v.contiguous() for k, v in state.items()}), "model.safetensors"
    rev = "0123456789abcdef0123456789abcdef01234567"
    http_server.files[f"/org/senclip/resolve/{rev}/{filename}"] = blob
    write_registry(tmp_path, monkeypatch, {"tiny-senclip": {
        "arch": "senclip-tiny-vit-quickgelu", "source": "hf_hub", "repo": "org/senclip", "revision": rev,
        "filename": filename, "layout": layout, "pooling": "avgpool", "preprocess": {"profile": "senclip"}}})
    monkeypatch.setenv("HF_ENDPOINT", http_server.url(""))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SenclipNote)  # the entry names its architecture: nothing to correct
        model = create_model("senclip-tiny-vit", pretrained="tiny-senclip")
    assert model.name == "senclip-tiny-vit-quickgelu"
    pre = model.image_tower.preprocess
    assert pre.profile == "senclip" and pre.interpolation == "bicubic"
    torch.testing.assert_close(pre.mean.flatten(), torch.tensor([0.347, 0.376, 0.296]))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = clip.encode_image(pre(x), normalize=True)
    torch.testing.assert_close(model.encode_image(x), expected, rtol=0, atol=1e-6)
    assert model.describe()["preprocess"]["name"] == "senclip"
    rows = {r["name"]: r for r in reg.list_entries()}
    assert rows["tiny-senclip"]["cached"] and rows["tiny-senclip"]["pooling"] == "avgpool"
    assert rows["tiny-senclip"]["layout"] == layout and rows["tiny-senclip"]["preprocess"] == "senclip"
    assert len(http_server.log) == 1  # downloaded once
    # --preprocess overrides the entry's profile
    plain = create_model(None, pretrained="tiny-senclip", preprocess="openai")
    assert plain.image_tower.preprocess.profile == "openai"
