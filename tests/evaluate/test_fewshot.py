"""Few-shot logistic regression and linear probe on frozen embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from senclip.cli import main
from senclip.evaluate.fewshot import LinearClassifier, run_fewshot, sample_k_shot


def test_k_shot_sampling_is_balanced_seeded_and_without_replacement():
    labels = np.repeat(np.arange(4), 10)
    a = sample_k_shot(labels, 3, seed=0, n_classes=4)
    assert len(a) == 12 and len(set(a)) == 12
    assert np.bincount(labels[a]).tolist() == [3, 3, 3, 3]
    assert (sample_k_shot(labels, 3, seed=0, n_classes=4) == a).all()
    assert not (sample_k_shot(labels, 3, seed=1, n_classes=4) == a).all()


def test_linear_probe_on_separable_embeddings_and_classifier_file(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8, dtype=np.float32)
    def draw(n):
        y = np.repeat(np.arange(3), n)
        x = centres[y] + 0.05 * rng.standard_normal((len(y), 8)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True), y
    xtr, ytr = draw(30)
    xte, yte = draw(20)
    res, clf = run_fewshot(xtr, ytr, xte, yte, ["a", "b", "c"], [1, 5, "all"], seeds=3, progress=False)
    assert [r["k"] for r in res] == [1, 5, "all"]
    assert all(r["mean"] > 0.9 for r in res)
    assert len(res[0]["per_seed"]) == 3 and res[-1]["C"] in (0.1, 1.0, 10.0, 100.0, 1000.0)
    path = clf.save(tmp_path / "clf.safetensors")
    loaded = LinearClassifier.load(path)
    assert loaded.classes == ["a", "b", "c"]
    assert (loaded.predict(xte) == clf.predict(xte)).all()
    np.testing.assert_allclose(loaded.predict_proba(xte).sum(1), 1, rtol=1e-5)


def test_classifier_file_keeps_fortran_ordered_weights(tmp_path):
    """scikit-learn's coef_ can be Fortran-ordered; safetensors 0.8 would store its memory as C order."""
    coef = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    clf = LinearClassifier(["a", "b", "c"], coef, np.zeros(3, np.float32))
    loaded = LinearClassifier.load(clf.save(tmp_path / "f.safetensors"))
    np.testing.assert_array_equal(loaded.coef_, coef)


def test_cli_end_to_end_on_real_eurosat(eurosat_rgb, tmp_path, capsys, make_tree):
    train = make_tree(eurosat_rgb / "train", tmp_path / "train", per_class=15)
    test = make_tree(eurosat_rgb / "valid", tmp_path / "test", per_class=10)
    out = tmp_path / "fs.json"
    status = main(["fewshot", "--model", "senclip-tiny-rn", "--data", str(train), "--eval-data", str(test),
                   "--shots", "1,5,all", "--seeds", "2", "--out", str(out), "--workers", "0", "--no-progress",
                   "--save-classifier", str(tmp_path / "clf.safetensors")])
    assert status == 0
    r = json.loads(out.read_text())
    assert r["n"] == 100 and r["n_train_pool"] == 150 and r["seeds"] == 2
    assert [s["k"] for s in r["shots"]] == [1, 5, "all"]
    for s in r["shots"]:
        assert 0.0 <= s["mean"] <= 1.0
        assert s["mean"] == pytest.approx(np.mean(s["per_seed"]))
        assert s["std"] == pytest.approx(np.std(s["per_seed"]))
    assert out.with_name("fs_curve.png").stat().st_size > 1000
    assert LinearClassifier.load(tmp_path / "clf.safetensors").info["k"] == "all"


@pytest.mark.parametrize("shots,msg", [("0", "neither"), ("abc", "neither"), ("50", "fewer than k=50")])
def test_bad_shots_fail_cleanly(eurosat_rgb, tmp_path, capsys, make_tree, shots, msg):
    data = make_tree(eurosat_rgb / "valid", tmp_path / "d", per_class=3)
    out = tmp_path / "fs.json"
    status = main(["fewshot", "--model", "senclip-tiny-rn", "--data", str(data), "--eval-data", str(data),
                   "--shots", shots, "--out", str(out), "--workers", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and msg in err and "Traceback" not in err
    assert not out.exists()
