"""Published SenCLIP checkpoint layouts: detection, QuickGELU, conversion, refusals.

Fake checkpoints are written the way the publishers wrote theirs, from random
open_clip QuickGELU models (the tiny ``senclip-tiny-*-quickgelu`` twins):

* pallavijainpj/SenCLIP: ``torch.save(clip.state_dict(), "SenCLIP_….ckpt")`` with OpenAI's key names;
* MVRL/senclip-*: ``model.safetensors`` with the same keys under ``clip.`` and a ``config.json``.

senclip's embeddings must equal open_clip's for the same weights and the same input.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from senclip.cli import main
from senclip.errors import SenclipError, SenclipNote
from senclip.models import create_model, read_metadata
from senclip.models.convert import read_weights

ARCHS = {"vit": "senclip-tiny-vit", "rn": "senclip-tiny-rn"}
TEXTS = ["a photo of a wheat field", "a satellite image of a river", "pasture"]


def _publish(key: str, root) -> dict:
    """A random QuickGELU CLIP and its two published layouts under ``root``."""
    gelu = ARCHS[key]
    torch.manual_seed(7)
    clip = open_clip.create_model(f"{gelu}-quickgelu").eval()
    ckpt = root / f"SenCLIP_AvgPool_{key}.ckpt"
    torch.save(clip.state_dict(), ckpt)
    mvrl = root / "mvrl"
    mvrl.mkdir()
    prefixed = {f"clip.{k}": v.contiguous() for k, v in clip.state_dict().items()}
    save_file(prefixed, str(mvrl / "model.safetensors"))
    (mvrl / "config.json").write_text(json.dumps({
        "architecture": gelu, "device": 0, "embed_dim": 1024, "pool_out": "mean", "pooling": "avgpool",
        "queue_data": None, "queue_size": 256, "trainable_layers": ["visual"]}))
    return {"arch": gelu, "clip": clip, "ckpt": ckpt, "safetensors": mvrl / "model.safetensors",
            "folder": mvrl, "root": root}


@pytest.fixture(scope="module", params=sorted(ARCHS))
def published(request, tmp_path_factory):
    """Both tiny architectures (ViT: QuickGELU in both towers; ResNet: in the text tower)."""
    return _publish(request.param, tmp_path_factory.mktemp(f"published-{request.param}"))


@pytest.fixture(scope="module")
def published_vit(tmp_path_factory):
    """The ViT only, for the command-level checks."""
    return _publish("vit", tmp_path_factory.mktemp("published-vit-cli"))


def _images(n=6, size=64, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _compare(model, clip, report: str) -> None:
    """Image and text embeddings of ``model`` against open_clip's ``clip`` on the same input."""
    x = _images()
    tokenizer = open_clip.get_tokenizer(model.name)
    with torch.no_grad():
        want_img = clip.encode_image(model.preprocess(x), normalize=True)
        want_txt = clip.encode_text(tokenizer(TEXTS), normalize=True)
    got_img, got_txt = model.encode_image(x), model.encode_text(TEXTS)
    for got, want, what in ((got_img, want_img, "image"), (got_txt, want_txt, "text")):
        cos = F.cosine_similarity(got, want, dim=-1).min().item()
        diff = (got - want).abs().max().item()
        print(f"{report} {what}: min cosine {cos:.7f}, max abs diff {diff:.2e}")
        assert cos >= 0.9999
        assert diff < 1e-5


@pytest.mark.parametrize("which", ["ckpt", "safetensors"])
def test_layouts_are_detected(published, which):
    weights = read_weights(published[which])
    assert weights.layout == ("openai" if which == "ckpt" else "clip-prefixed")
    assert set(weights.state) == set(published["clip"].state_dict())
    if which == "safetensors":
        assert weights.architecture_hint == published["arch"] and weights.is_senclip_release


@pytest.mark.parametrize("which", ["ckpt", "safetensors", "folder"])
def test_create_model_equals_open_clip_with_quickgelu(published, which):
    path, arch = str(published[which]), published["arch"]
    with pytest.warns(SenclipNote, match=rf"QuickGELU: built as {arch}-quickgelu, not {arch}"):
        model = create_model(arch, pretrained=path)  # the GELU name: corrected, with a note
    assert model.name == f"{arch}-quickgelu"
    _compare(model, published["clip"], f"{published['arch']} {which}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SenclipNote)  # no architecture asked: nothing to correct
        inferred = create_model(None, pretrained=path)  # shapes (and config.json) give the architecture
    assert inferred.name == f"{arch}-quickgelu"
    x = _images()
    torch.testing.assert_close(inferred.encode_image(x), model.encode_image(x), rtol=0, atol=0)
    # the MVRL config.json marks a SenCLIP run: its evaluation preprocessing comes with it
    want = None if which == "ckpt" else "senclip"
    assert model.image_tower.preprocess.profile == want


def test_gelu_weights_differ_from_quickgelu(published):
    """The correction matters: the same tensors in the GELU architecture embed differently
    (text for both; images for the ViT, the ResNet trunk uses ReLU)."""
    gelu = open_clip.create_model(published["arch"]).eval()
    gelu.load_state_dict(published["clip"].state_dict())
    tokens = open_clip.get_tokenizer(published["arch"])(TEXTS)
    quick = published["clip"]
    with torch.no_grad():
        pairs = [(gelu.encode_text(tokens, normalize=True), quick.encode_text(tokens, normalize=True))]
        if published["arch"].endswith("vit"):
            x = _images()
            pairs.append((gelu.encode_image(x, normalize=True), quick.encode_image(x, normalize=True)))
    for a, b in pairs:
        assert (a - b).abs().max() > 1e-4


def test_convert_command_writes_senclip_format(published_vit, tmp_path, capsys):
    published = published_vit
    for which in ("ckpt", "safetensors"):
        out = tmp_path / f"{which}.safetensors"
        assert main(["convert", str(published[which]), "--out", str(out), "--model", published["arch"]]) == 0
        err = capsys.readouterr().err
        assert err.count("note:") == 1 and "QuickGELU" in err
        meta = read_metadata(out)
        assert meta["kind"] == "full" and meta["arch"] == f"{published['arch']}-quickgelu"
        model = create_model(None, pretrained=str(out))
        _compare(model, published["clip"], f"{published['arch']} convert {which}")
    assert meta["extra"]["converted"]["config.json"]["pooling"] == "avgpool"
    assert meta["preprocess"]["name"] == "senclip"


def test_a_downloaded_hub_folder_loads_as_it_is(published_vit, tmp_path, capsys):
    """`--pretrained DIR` / `senclip convert DIR` for a local copy of an MVRL/senclip-* repository."""
    published = published_vit
    folder = published["folder"]
    weights = read_weights(folder)
    assert weights.layout == "clip-prefixed" and weights.config["pooling"] == "avgpool"
    out = tmp_path / "folder.safetensors"
    assert main(["convert", str(folder), "--out", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["extra"]["converted"]["config.json"]["pooling"] == "avgpool"
    assert meta["extra"]["converted"]["source"] == str((folder / "model.safetensors").resolve())
    _compare(create_model(None, pretrained=str(out)), published["clip"], "convert folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("x")
    with pytest.raises(SenclipError, match=r"a folder without model\.safetensors .* it holds README\.md"):
        create_model(None, pretrained=str(empty))


def test_convert_layout_open_clip_keeps_gelu(published_vit, tmp_path):
    """The escape for a GELU state dict pickled like OpenAI's: --layout open_clip builds it as named."""
    published = published_vit
    out = tmp_path / "gelu.safetensors"
    assert main(["convert", str(published["ckpt"]), "--layout", "open_clip", "--model", published["arch"],
                 "--out", str(out)]) == 0
    assert read_metadata(out)["arch"] == published["arch"]


@pytest.fixture(scope="module")
def eurosat_small(tmp_path_factory, eurosat_rgb):
    """Three validation images per class."""
    root = tmp_path_factory.mktemp("eurosat_small")
    for class_dir in sorted((eurosat_rgb / "valid").iterdir()):
        (root / class_dir.name).mkdir()
        for img in sorted(class_dir.glob("*.jpg"))[:3]:
            (root / class_dir.name / img.name).symlink_to(img)
    return root


@pytest.mark.parametrize("which", ["ckpt", "safetensors", "folder"])
def test_zeroshot_pretrained_path_equals_open_clip(published_vit, which, eurosat_small, tmp_path, capsys):
    from senclip.data import get_dataset

    published = published_vit
    cache = tmp_path / "cache"
    out = tmp_path / "zs.json"
    argv = ["zeroshot", "--model", published["arch"], "--pretrained", str(published[which]),
            "--dataset", "eurosat", "--data", str(eurosat_small), "--prompts", "generic", "--out", str(out),
            "--cache-dir", str(cache), "--workers", "0", "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("note:") == 1
    result = json.loads(out.read_text())
    assert result["model"]["model"] == f"{published['arch']}-quickgelu"
    got = torch.from_numpy(np.load(next(cache.glob("*.npy"))))
    # open_clip on the same preprocessed pixels (the profile the command used: senclip for MVRL files)
    model = create_model(f"{published['arch']}-quickgelu", pretrained=str(published[which]))
    ds = get_dataset("eurosat", eurosat_small)
    x = torch.stack([ds[i]["image"] for i in range(len(ds))])
    with torch.no_grad():
        want = published["clip"].encode_image(model.preprocess(x), normalize=True)
    cos = F.cosine_similarity(got, want, dim=-1).min().item()
    print(f"zeroshot {published['arch']} {which}: {len(ds)} images, min cosine {cos:.7f}, "
          f"max abs diff {(got - want).abs().max().item():.2e}")
    assert got.shape == want.shape and cos >= 0.9999


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED",))


def _bad_inputs(published, tmp_path) -> dict:
    other = "senclip-tiny-rn" if published["arch"] == "senclip-tiny-vit" else "senclip-tiny-vit"
    torch.manual_seed(0)
    wrong = tmp_path / "other_arch.ckpt"
    torch.save(open_clip.create_model(f"{other}-quickgelu").state_dict(), wrong)
    truncated = tmp_path / "truncated.ckpt"
    blob = published["ckpt"].read_bytes()
    truncated.write_bytes(blob[: len(blob) // 2])
    evil = tmp_path / "evil.ckpt"
    with open(evil, "wb") as f:
        pickle.dump({"visual.proj": _Exploit()}, f)
    return {"another architecture": (wrong, r"holds a (ViT|ResNet) .*, not senclip-tiny-"),
            "truncated": (truncated, "not a readable checkpoint"),
            "code": (evil, "refused to load .*objects other than plain tensors")}


@pytest.mark.parametrize("command", ["zeroshot", "convert", "create_model"])
def test_bad_checkpoints_are_refused_in_one_line(published_vit, command, tmp_path, eurosat_small, capsys,
                                                 monkeypatch):
    published = published_vit
    monkeypatch.chdir(tmp_path)
    for what, (path, message) in _bad_inputs(published, tmp_path).items():
        out = tmp_path / "out" / f"{command}.json"
        if command == "create_model":
            with pytest.raises(SenclipError, match=message):
                create_model(published["arch"], pretrained=str(path))
            continue
        if command == "zeroshot":
            argv = ["zeroshot", "--model", published["arch"], "--pretrained", str(path),
                    "--dataset", "eurosat", "--data", str(eurosat_small), "--out", str(out),
                    "--no-cache", "--workers", "0"]
        else:
            out = out.with_suffix(".safetensors")
            argv = ["convert", str(path), "--model", published["arch"], "--out", str(out)]
        assert main(argv) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: "), (what, err)
        assert re.search(message, err), (what, err)
        written = list((tmp_path / "out").rglob("*"))
        assert not (tmp_path / "out").exists(), f"{what}: {command} wrote {written}"
    assert not (tmp_path / "EXPLOITED").exists()
