"""Sen4Map: an HDF5 file in the published layout, written here, read with each label set and
classified end to end by `senclip zeroshot --dataset sen4map` with a TimeSenCLIP-layout checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from senclip.cli import main  # noqa: E402
from senclip.data import get_dataset  # noqa: E402
from senclip.data.sen4map import CROP_CLASSES, Sen4Map, label_classes  # noqa: E402
from senclip.errors import SenclipError  # noqa: E402

GOOD = [  # (id, lc1, lu1, cloudy months)
    (101, "B16", "U111", [0, 1, 11]),
    (102, "C21", "U120", []),
    (103, "E20", "U111", [5]),
    (104, "A11", "U370", [6, 7]),
    (105, "B82", "U111", []),
    (106, "G11", "U420", [2]),
]


def _filled_year(rng, cloudy):
    """A year of one 1x1 pixel, its clouded months filled with the median of the clear ones
    (the published data fills clouded acquisitions with the year's median)."""
    image = rng.uniform(200, 4000, size=(12, 10, 1, 1)).astype(np.float32)
    clear = [m for m in range(12) if m not in cloudy]
    image[cloudy] = np.median(image[clear], axis=0)
    return image


@pytest.fixture(scope="module")
def sen4map_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("sen4map") / "test_with_eunis.h5"
    with h5py.File(path, "w") as f:
        for pid, lc1, lu1, cloudy in GOOD:
            g = f.create_group(f"Lucas_Point_{pid}")
            g.create_dataset("image", data=_filled_year(rng, cloudy))
            g.attrs.update({"lc1": lc1, "lu1": lu1, "nuts0": "DE", "lc1_label": CROP_CLASSES.get(lc1, lc1),
                            "Coordinates": np.array([10.0 + pid / 100, 50.0]), "bioregion_class_code": 6,
                            "EUNIS_L2": 0})
        f.create_group("Lucas_Point_900").attrs["lc1"] = "B11"                      # no image
        f.create_group("Lucas_Point_901").create_dataset("image", data=np.zeros((12, 3, 1, 1)))  # bad shape
        bad = f.create_group("Lucas_Point_902")
        bad.create_dataset("image", data=_filled_year(rng, []))
        bad.attrs.update({"lc1": "Z99", "lu1": "U999"})                             # unknown codes
    return path


def test_label_sets_and_bad_groups(sen4map_file, capsys):
    sets = ("lc1", "lu1", "crop", "eunis", "bioregion")
    assert [len(label_classes(s)) for s in sets] == [8, 16, 40, 44, 12]
    with pytest.raises(SenclipError, match="group Lucas_Point_900: no 'image' dataset"):
        Sen4Map(sen4map_file)
    lc = Sen4Map(sen4map_file, skip_bad=True)
    err = capsys.readouterr().err.splitlines()
    assert [line.split("group ")[1].split(":")[0] for line in err] == [
        "Lucas_Point_900", "Lucas_Point_901", "Lucas_Point_902"]
    assert "unknown lc1 code 'Z99'" in err[2] and "shape (12, 3, 1, 1)" in err[1]
    assert len(lc) == len(GOOD) and lc.bad == ["Lucas_Point_900", "Lucas_Point_901", "Lucas_Point_902"]
    assert [lc.classes[i] for i in lc.labels] == ["Cropland", "Woodland", "Grassland", "Artificial Land",
                                                  "Cropland", "Water"]
    sample = lc[0]
    assert sample["image"].shape == (12, 10) and torch.isfinite(sample["image"]).all()
    lu = Sen4Map(f"{sen4map_file}:lu1:skip-bad")
    assert lu.labels_name == "lu1" and [lu.classes[i] for i in lu.labels] == [
        "Agriculture", "Forestry", "Agriculture", "Residential", "Agriculture",
        "Semi-natural and natural areas not in use"]
    crop = Sen4Map(sen4map_file, labels="crop", skip_bad=True)
    assert [crop.classes[i] for i in crop.labels] == ["Maize", "Vineyards"] and crop.skipped == 4
    assert lc.fingerprint() != lu.fingerprint()
    with pytest.raises(SenclipError, match="unknown Sen4Map label set"):
        Sen4Map(sen4map_file, labels="lc2")
    ds = get_dataset("sen4map", f"{sen4map_file}:skip-bad", bands=["B04", "B03", "B02"])
    assert ds[0]["image"].shape == (12, 3)


def test_zeroshot_on_sen4map_with_a_timesenclip_checkpoint(tmp_path, sen4map_file):
    from senclip.models.timesen_reference import TimeSenRefConfig, TimeSenReferenceTower

    torch.manual_seed(0)  # a reference-layout encoder as wide as the tiny text tower
    tower = TimeSenReferenceTower(TimeSenRefConfig(width=128, layers=1, heads=4, mlp_dim=32))
    with torch.no_grad():
        tower.time_pos_encoding.normal_()
    ckpt = tmp_path / "TimeSenCLIP_1x1.ckpt"
    torch.save(tower.state_dict(), ckpt)
    out = tmp_path / "lc1.json"
    args = ["zeroshot", "--model", "senclip-tiny-vit", "--checkpoint", str(ckpt), "--dataset", "sen4map",
            "--data", f"{sen4map_file}:lc1:skip-bad", "--prompts", "generic,ground", "--out", str(out),
            "--no-cache", "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "sen4map" and result["n"] == len(GOOD) and len(result["classes"]) == 8
    assert set(result["runs"]) == {"generic", "ground"}
    # without --skip-bad: one line naming the group, exit 2, nothing written
    out2 = tmp_path / "strict.json"
    strict = [str(sen4map_file) if a.endswith(":lc1:skip-bad") else str(out2) if a == str(out) else a
              for a in args]
    assert main(strict) == 2
    assert not out2.exists()


def test_timesenclip_protocol_and_time_steps_on_sen4map(tmp_path, sen4map_file):
    from senclip.evaluate.timesenclip_protocol import timesenclip_logits
    from senclip.models.timesen_reference import TimeSenRefConfig, TimeSenReferenceTower

    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]])
    raw, divided = timesenclip_logits(emb, np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(raw, [[1.5, 1.0], [1.3, 1.4], [1.0, 1.5]])
    np.testing.assert_allclose(divided, raw / (raw.mean(0) + 1e-6))

    torch.manual_seed(1)
    tower = TimeSenReferenceTower(TimeSenRefConfig(width=128, layers=1, heads=4, mlp_dim=32))
    ckpt = tmp_path / "TimeSenCLIP_1x1.ckpt"
    torch.save({"state_dict": {f"learner.TS_ViT.{k}": v for k, v in tower.state_dict().items()}}, ckpt)
    results = {}
    for steps in ("12", "4"):
        out = tmp_path / f"lu1_{steps}.json"
        assert main(["zeroshot", "--model", "senclip-tiny-vit", "--checkpoint", str(ckpt),
                     "--dataset", "sen4map", "--data", str(sen4map_file), "--labels", "lu1", "--skip-bad",
                     "--time-steps", steps,
                     "--protocol", "timesenclip", "--out", str(out), "--no-progress", "--device", "cpu",
                     "--cache-dir", str(tmp_path / "cache")]) == 0
        results[steps] = json.loads(out.read_text())
    for r in results.values():
        block = r["timesenclip_protocol"]
        assert r["n"] == block["n"] == len(GOOD) and len(r["classes"]) == 16
        assert block["transductive"] is True and block["prompts"]["template"] == "{}"
        assert {"top1", "top5", "mean_class_accuracy", "raw"} <= set(block)
    # 4 seasonal steps are other embeddings: the cache holds two entries, not one reused
    cached = [np.load(p) for p in sorted((tmp_path / "cache").glob("*.npy"))]
    assert len(cached) == 2 and not np.allclose(cached[0], cached[1])
    assert main(["zeroshot", "--model", "senclip-tiny-vit", "--dataset", "eurosat", "--data", str(tmp_path),
                 "--labels", "lc1", "--out", str(tmp_path / "x.json")]) == 2
