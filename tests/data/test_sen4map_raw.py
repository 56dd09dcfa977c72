"""Sen4Map's raw layout (per-band datasets, SCL, Image_ID), written here: its monthly composite
equals the TimeSenCLIP rule computed independently with torch, the 1x1 and raw layouts give the
same samples, bad raw groups are named, and a Sen4Map file is a series source for
proxy-pairs -> train -> zeroshot."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import torch

h5py = pytest.importorskip("h5py")

from senclip.cli import main  # noqa: E402
from senclip.data.sen4map import RAW_BANDS, Sen4Map, Sen4MapSource  # noqa: E402
from senclip.data.series.sampling import sample_points  # noqa: E402
from senclip.data.sources import open_series  # noqa: E402
from senclip.errors import SenclipError  # noqa: E402

# (date, SCL at the centre pixel): March has a clear and a cloudy date, May three dates (even
# clear count after masking is not needed: the cloudy one enters as 0), July only a cirrus date,
# December 2017 lies outside the year; every other month has no acquisition at all.
DATES = [
    (dt.date(2017, 12, 20), 4),
    (dt.date(2018, 1, 10), 4),
    (dt.date(2018, 3, 2), 5),
    (dt.date(2018, 3, 17), 9),    # cloud, high probability
    (dt.date(2018, 5, 1), 4),
    (dt.date(2018, 5, 11), 8),    # cloud, medium probability: below 9, so clear for the rule
    (dt.date(2018, 5, 21), 4),
    (dt.date(2018, 5, 28), 5),
    (dt.date(2018, 7, 5), 10),    # thin cirrus: July has no clear date
    (dt.date(2018, 9, 14), 6),
]


def _image_ids(dates) -> np.ndarray:
    return np.array([f"{d:%Y%m%d}T103019_{d:%Y%m%d}T103421_T32UNE".encode() for d in dates])


def _raw_point(rng, dates_scl, size=3):
    """Band stacks ``(T, size, size)`` uint16 and SCL; cloudy per ``dates_scl`` at the centre pixel
    only (the rest of the patch is cloudy everywhere, so reading another pixel changes the result)."""
    t = len(dates_scl)
    bands = {b: rng.integers(100, 5000, size=(t, size, size)).astype(np.uint16) for b in RAW_BANDS}
    scl = np.full((t, size, size), 9, dtype=np.uint8)
    scl[:, size // 2, size // 2] = [s for _, s in dates_scl]
    return bands, scl


def _write_raw(f, name, bands, scl, ids, attrs):
    g = f.create_group(name)
    for b, v in bands.items():
        g.create_dataset(b, data=v)
    g.create_dataset("SCL", data=scl)
    if ids is not None:
        g.attrs["Image_ID"] = ids
    g.attrs.update(attrs)
    return g


def expected_composite(bands, scl, ids) -> np.ndarray:
    """The reference's rule, written with torch as published: SCL < 9 clear, cloudy values 0, each
    month ``2018MM`` the torch.median of its acquisitions (all of them when it has none), plus 1."""
    c = scl.shape[1] // 2
    image = torch.stack([torch.tensor(np.where(scl < 9, bands[b], 0)[:, c, c], dtype=torch.float32)
                         for b in RAW_BANDS])                                        # (C, T)
    names = [i.decode() for i in ids]
    months = []
    for m in range(1, 13):
        idx = [i for i, n in enumerate(names) if f"2018{m:02d}" in n] or range(image.shape[1])
        months.append(torch.median(torch.stack([image[:, i] for i in idx]), dim=0)[0])
    return (torch.stack(months) + 1).numpy()                                        # (12, C)


LABELS = {"lc1": "C21", "lu1": "U120", "nuts0": "DE", "lc1_label": "broadleaved woodland",
          "Coordinates": np.array([10.0, 50.0]), "bioregion_class_code": 6, "EUNIS_L2": 0}


@pytest.fixture
def raw_file(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "sen4map_raw.h5"
    bands, scl = _raw_point(rng, DATES)
    ids = _image_ids([d for d, _ in DATES])
    expected = expected_composite(bands, scl, ids)
    with h5py.File(path, "w") as f:
        _write_raw(f, "Lucas_Point_201", bands, scl, ids, LABELS)
        one = f.create_group("Lucas_Point_202")                   # the same point, 1x1 layout
        one.create_dataset("image", data=expected[:, :, None, None])
        one.attrs.update(LABELS)
        broken = {k: v for k, v in bands.items() if k != "B8A"}
        _write_raw(f, "Lucas_Point_903", broken, scl, ids, LABELS)                  # no B8A
        g = _write_raw(f, "Lucas_Point_904", bands, scl, ids, LABELS)
        del g["SCL"]                                                                # no SCL
        _write_raw(f, "Lucas_Point_905", bands, scl, None, LABELS)                  # no dates
        _write_raw(f, "Lucas_Point_906", bands, scl, ids[:-1], LABELS)              # 9 dates, 10 steps
    return path, expected


def test_raw_layout_composite_matches_the_reference_rule(raw_file, capsys):
    path, expected = raw_file
    # the expectation has the rule's marks: July (cirrus only) is 0 + 1, February (no date) the
    # median of all ten acquisitions, cloudy ones as 0
    assert (expected[6] == 1).all() and not np.allclose(expected[1], expected[0])
    with pytest.raises(SenclipError, match=r"group Lucas_Point_903: raw layout without dataset\(s\) B8A"):
        Sen4Map(path)
    ds = Sen4Map(path, skip_bad=True)
    err = capsys.readouterr().err
    assert ds.bad == ["Lucas_Point_903", "Lucas_Point_904", "Lucas_Point_905", "Lucas_Point_906"]
    assert "Lucas_Point_904: raw layout without dataset(s) SCL" in err
    assert "Lucas_Point_905: raw layout without Image_ID" in err
    assert "Lucas_Point_906: 9 Image_ID dates for 10 acquisitions" in err
    assert ds.paths == ["Lucas_Point_201", "Lucas_Point_202"] and ds.classes[ds.labels[0]] == "Woodland"
    raw, filled = ds[0], ds[1]
    np.testing.assert_array_equal(raw["image"].numpy(), expected)
    torch.testing.assert_close(raw["image"], filled["image"])  # both layouts, one sample
    assert raw["label"] == filled["label"]

    # a series source: open_series reads the file as a 1 x N grid of monthly steps
    src = open_series(path)
    assert isinstance(src, Sen4MapSource) and (src.height, src.width) == (1, 6)
    got = sample_points(src, pd.DataFrame({"point_id": ds.paths, "row": ds.rows, "col": ds.cols}))
    np.testing.assert_array_equal(got["series"], ds.series)
    assert sorted(src.errors) == ds.bad
    with pytest.raises(SenclipError, match=r"1 point\(s\) are not the group at their col.*file changed"):
        sample_points(src, pd.DataFrame({"point_id": ds.paths, "row": 0, "col": [0, 2]}))


def _class_point(rng, letter, raw):
    """A point of class ``letter`` (A/C/E) whose bands sit at a class-specific level."""
    level = {"A": 800, "C": 2000, "E": 3500}[letter]
    if not raw:
        return rng.normal(level, 150, size=(12, 10, 1, 1)).astype(np.float32)
    t = 14
    dates = [dt.date(2018, 1 + (i * 12) // t, 5 + i % 3) for i in range(t)]
    scl = rng.choice([4, 5, 9], size=(t, 1, 1), p=[0.5, 0.3, 0.2]).astype(np.uint8)
    bands = {b: rng.normal(level, 150, size=(t, 1, 1)).clip(1).astype(np.uint16) for b in RAW_BANDS}
    return bands, scl, _image_ids(dates)


def test_sen4map_as_series_source_proxy_train_zeroshot(tmp_path):
    rng = np.random.default_rng(5)
    h5 = tmp_path / "points.h5"
    codes = {"A": "A11", "C": "C10", "E": "E20"}
    with h5py.File(h5, "w") as f:
        for i in range(24):
            letter = "ACE"[i % 3]
            attrs = LABELS | {"lc1": codes[letter]}
            name = f"Lucas_Point_{3000 + i}"
            if i % 2:
                _write_raw(f, name, *_class_point(rng, letter, raw=True), attrs)
            else:
                g = f.create_group(name)
                g.create_dataset("image", data=_class_point(rng, letter, raw=False))
                g.attrs.update(attrs)
        f.create_group("Lucas_Point_9999").attrs["lc1"] = "A11"  # neither layout: skipped
    base, proxy = tmp_path / "base.safetensors", tmp_path / "proxy"
    assert main(["export", "--base", "senclip-tiny-vit", "--seed", "0", "--out", str(base)]) == 0
    assert main(["proxy-pairs", "--series", str(h5), "--labels", "lc1", "--model", "senclip-tiny-vit",
                 "--pretrained", str(base), "--out", str(tmp_path / "strict"), "--no-progress"]) == 2
    assert main(["proxy-pairs", "--series", f"{h5}:skip-bad", "--labels", "lc1",
                 "--model", "senclip-tiny-vit", "--pretrained", str(base), "--out", str(proxy),
                 "--no-progress"]) == 0
    manifest = pd.read_csv(proxy / "manifest.csv")
    points = Sen4Map(h5, skip_bad=True)
    assert manifest["point_id"].tolist() == points.paths and len(manifest) == 24
    assert manifest["label"].tolist() == points.labels.tolist() and (manifest["row"] == 0).all()
    assert set(manifest["series_path"]) == {str(h5)}

    out = tmp_path / "run"
    tower = {"image_size": 1, "width": 128, "layers": 1, "heads": 4, "mlp_dim": 32, "dropout": 0.1,
             "norm": "reference", "fill": "median", "single_position": "first", "positions": "calendar"}
    assert main(["train", "--config", "configs/timesen-reference.yaml", "--model.name", "senclip-tiny-vit",
                 "--model.pretrained", str(base), "--model.tower_options", json.dumps(tower),
                 "--data.manifest", str(proxy / "manifest.csv"), "--data.cache", str(proxy / "ground_cache"),
                 "--data.batch_size", "8", "--data.val_fraction", "0", "--loss.queue_size", "0",
                 "--trainer.out", str(out), "--trainer.max_steps", "3", "--trainer.ckpt_every_n_steps", "3",
                 "--optim.warmup_steps", "1", "--no-progress"]) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["global_step"] == 3
    model_file = tmp_path / "ts.safetensors"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(model_file)]) == 0
    zs = tmp_path / "zs.json"
    assert main(["zeroshot", "--model", "senclip-tiny-vit", "--pretrained", str(model_file),
                 "--dataset", "sen4map", "--data", str(h5), "--labels", "lc1", "--skip-bad",
                 "--prompts", "ground", "--out", str(zs),
                 "--no-cache", "--workers", "0", "--no-progress", "--device", "cpu"]) == 0
    res = json.loads(zs.read_text())
    assert res["n"] == 24 and 0 <= res["top1"] <= 1
