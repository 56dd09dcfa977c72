"""Zero-shot evaluation on real EuroSAT / BigEarthNet data with tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from senclip.cli import main
from senclip.data import get_dataset
from senclip.evaluate import embeddings as emb_mod
from senclip.evaluate.zeroshot import evaluate_zeroshot


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_on_full_valid_split_writes_consistent_results(eurosat_rgb, tmp_path, capsys):
    out = tmp_path / "res" / "zs.json"
    status, stdout, _ = _run(["zeroshot", "--model", "senclip-tiny-vit", "--dataset", "eurosat",
                              "--data", str(eurosat_rgb / "valid"), "--prompts", "generic,ground",
                              "--out", str(out), "--workers", "1", "--no-progress"], capsys)
    assert status == 0
    r = json.loads(out.read_text())
    for key in ("top1", "top5", "per_class", "confusion", "n", "model", "prompts", "protocol"):
        assert key in r
    assert r["protocol"] == "inductive" and "transductive" not in r
    assert r["n"] == 4050 and r["model"]["model"] == "senclip-tiny-vit"
    assert r["prompts"]["spec"] == "generic" and set(r["runs"]) == {"generic", "ground"}
    conf = np.array(r["confusion"])
    assert conf.shape == (10, 10) and conf.sum() == r["n"]
    assert r["top1"] == pytest.approx(np.trace(conf) / r["n"])
    per_class = [r["per_class"][c] for c in r["classes"]]
    assert per_class == pytest.approx(list(np.diag(conf) / conf.sum(1)))
    assert np.mean(per_class) == pytest.approx(r["balanced_accuracy"])
    assert r["top5"] >= r["top1"]
    assert (out.with_suffix(".md")).read_text().startswith("# Zero-shot")
    assert out.with_name("zs_confusion.png").stat().st_size > 1000
    assert "| generic |" in stdout


def test_no_evaluation_statistic_leaks_into_predictions(tiny_rn, eurosat_rgb, tmp_path, make_tree):
    # Same images evaluated inside two different sets (one a shuffled subset of the other, different
    # class balance): every image gets the same scores. BatchNorm (RN) must be in eval mode for this.
    full = get_dataset("eurosat", make_tree(eurosat_rgb / "valid", tmp_path / "a", per_class=8))
    sub = make_tree(eurosat_rgb / "valid", tmp_path / "b", per_class=3, start=5)
    (tmp_path / "b" / "Forest" / sorted((tmp_path / "b" / "Forest").iterdir())[0].name).unlink()
    part = get_dataset("eurosat", sub)
    kw = dict(prompts="aerial", workers=0, progress=False, return_logits=True, batch_size=7)
    a = evaluate_zeroshot(tiny_rn, full, **kw)["_logits"]["aerial"]
    b = evaluate_zeroshot(tiny_rn, part, **kw)["_logits"]["aerial"]
    pos = {p.split("/")[-1]: i for i, p in enumerate(full.paths)}
    for j, p in enumerate(part.paths):
        np.testing.assert_allclose(b[j], a[pos[p.split("/")[-1]]], rtol=1e-5, atol=1e-5)


def test_calibration_is_reported_apart_as_transductive(tiny_vit, small_valid):
    ds = get_dataset("eurosat", small_valid)
    r = evaluate_zeroshot(tiny_vit, ds, "generic", workers=0, progress=False, calibrate=True)
    plain = evaluate_zeroshot(tiny_vit, ds, "generic", workers=0, progress=False)
    assert r["protocol"] == "inductive" and r["transductive"]["protocol"] == "transductive"
    assert r["top1"] == plain["top1"], "calibration must not change the zero-shot numbers"
    assert "top1" in r["transductive"]["runs"]["generic"]


def test_second_run_reads_the_embedding_cache(tiny_vit, small_valid, tmp_path, monkeypatch):
    ds = get_dataset("eurosat", small_valid)
    first = evaluate_zeroshot(tiny_vit, ds, "generic", workers=0, progress=False, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.npy"))) == 1

    def no_loading(*a, **k):
        raise AssertionError("images re-encoded despite the cache")

    monkeypatch.setattr(emb_mod, "make_loader", no_loading)
    second = evaluate_zeroshot(tiny_vit, ds, "generic", workers=0, progress=False, cache_dir=tmp_path / "c")
    assert second["top1"] == first["top1"] and second["confusion"] == first["confusion"]
    # different weights -> different key -> no stale hit
    other = type(tiny_vit.image_tower)
    assert isinstance(tiny_vit.image_tower, other)
    monkeypatch.undo()
    torch.manual_seed(5)
    from senclip.models import create_model

    fresh = create_model("senclip-tiny-vit")
    evaluate_zeroshot(fresh, ds, "generic", workers=0, progress=False, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.npy"))) == 2


def test_bigearthnet_multilabel_metrics(tiny_vit, bigearthnet_root):
    ds = get_dataset("bigearthnet", bigearthnet_root)
    r = evaluate_zeroshot(tiny_vit, ds, ["aerial", "all"], workers=0, progress=False)
    assert r["multilabel"] and r["n"] == 6
    for key in ("map_macro", "map_micro", "f1_micro", "f1_macro", "f1_threshold", "per_class_ap"):
        assert key in r
    assert r["f1_threshold"] == pytest.approx(1 / 19)
    present = [v for v in r["per_class_ap"].values() if v is not None]
    assert np.mean(present) == pytest.approx(r["map_macro"])
    assert set(r["runs"]) == {"aerial", "all"}


BAD = "error: "


def _assert_clean_failure(status, err, out):
    assert status == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(BAD), err
    assert "Traceback" not in err
    assert not out.exists() and not out.with_suffix(".md").exists()


def _zs(data, out, prompts="generic", workers="0"):
    return ["zeroshot", "--model", "senclip-tiny-vit", "--dataset", "eurosat", "--data", str(data),
            "--prompts", prompts, "--out", str(out), "--workers", workers, "--no-progress"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--dataset", "eurosat", "--points", "test.csv"],
     "--labels, --points and --skip-bad apply to --dataset sen4map"),
    (["--dataset", "eurosat", "--bigearthnet-split", "s.csv"],
     "--bigearthnet-split applies to --dataset bigearthnet"),
    (["--dataset", "bigearthnet", "--bigearthnet-subset", "random-split"],
     "--bigearthnet-subset applies to --dataset bigearthnet with --protocol senclip"),
    (["--dataset", "eurosat", "--bigearthnet-stretch", "reference-minmax"],
     "--bigearthnet-stretch reference-minmax applies only to --dataset bigearthnet"),
])
def test_flags_of_another_dataset_are_refused_before_the_model_loads(tmp_path, capsys, flags, message):
    """The flags are checked first: the model (here a checkpoint that does not exist) is never read."""
    out = tmp_path / "zs.json"
    status, _, err = _run(["zeroshot", "--model", "senclip-tiny-vit", "--checkpoint",
                           str(tmp_path / "missing.safetensors"), "--data", str(tmp_path), *flags,
                           "--out", str(out)], capsys)
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_missing_data_dir(tmp_path, capsys):
    out = tmp_path / "r.json"
    status, _, err = _run(_zs(tmp_path / "nowhere", out), capsys)
    _assert_clean_failure(status, err, out)


def test_empty_class_folder(small_valid, tmp_path, capsys):
    for f in (small_valid / "River").iterdir():
        f.unlink()
    out = tmp_path / "r.json"
    status, _, err = _run(_zs(small_valid, out), capsys)
    _assert_clean_failure(status, err, out)
    assert "River" in err


@pytest.mark.parametrize("workers", ["0", "1"])
def test_unreadable_image(small_valid, tmp_path, capsys, workers):
    (small_valid / "Forest" / "Forest_broken.jpg").write_bytes(b"not a jpeg at all")
    out = tmp_path / "r.json"
    status, _, err = _run(_zs(small_valid, out, workers=workers), capsys)
    _assert_clean_failure(status, err, out)
    assert "Forest_broken.jpg" in err


def test_prompt_file_with_unknown_or_missing_class(small_valid, tmp_path, capsys, classes):
    CLASSES = classes
    extra = tmp_path / "extra.yaml"
    extra.write_text("classes:\n" + "".join(f"  {c}:\n    aerial: [a view of {c}]\n" for c in CLASSES + ["Glacier"]))
    out = tmp_path / "r.json"
    status, _, err = _run(_zs(small_valid, out, prompts=str(extra)), capsys)
    _assert_clean_failure(status, err, out)
    assert "Glacier" in err
    missing = tmp_path / "missing.yaml"
    missing.write_text("classes:\n" + "".join(f"  {c}:\n    aerial: [a view of {c}]\n" for c in CLASSES[1:]))
    status, _, err = _run(_zs(small_valid, out, prompts=str(missing)), capsys)
    _assert_clean_failure(status, err, out)
    assert "AnnualCrop" in err


def test_multispectral_tower_on_bigearthnet_from_the_cli(bigearthnet_root, tmp_path, capsys):
    # an RGB tower inflated to the 12 L2A bands; samples are matched to it by band name
    out = tmp_path / "ben.json"
    status = main(["zeroshot", "--model", "senclip-tiny-rn", "--bands", "L2A", "--dataset", "bigearthnet",
                   "--data", str(bigearthnet_root), "--prompts", "aerial", "--out", str(out),
                   "--workers", "0", "--no-progress"])
    assert status == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["n"] == 6 and r["multilabel"] and 0.0 <= r["map_macro"] <= 1.0
