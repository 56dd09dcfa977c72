"""`senclip import-sen2lucas`: Sen2LUCAS chips + frozen embeddings -> manifest and ground cache."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from senclip.data.ground_cache import GroundCache
from senclip.data.manifest import VIEWS, read_manifest
from senclip.testing.sen2lucas import write_sen2lucas


@pytest.fixture
def s2l(tmp_path, jpgs):
    from PIL import Image

    rgb = [np.asarray(Image.open(p).convert("RGB")) for p in jpgs[:12]]
    return write_sen2lucas(tmp_path / "Sen2LUCAS", n=12, dim=128, rgb=rgb)


@pytest.fixture
def cli_all(monkeypatch):
    import senclip.cli

    monkeypatch.setattr(senclip.cli, "COMMANDS", ["senclip.commands.import_sen2lucas",
                                                  "senclip.commands.train", "senclip.commands.retrieval"])
    return senclip.cli.main


def _argv(f, out, *extra):
    return ["import-sen2lucas", "--chips", str(f.chips), "--paths", str(f.paths), "--embeddings",
            str(f.embeddings), "--out", str(out), "--no-progress", *extra]


def _one_error(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_import_fills_nesw_and_reads_bands_as_the_reference(s2l, tmp_path, cli_all):
    from senclip.data.paired import PairedDataset, read_chip

    assert cli_all(_argv(s2l, tmp_path / "out")) == 0
    df = read_manifest(tmp_path / "out" / "manifest.csv")
    assert list(df["point_id"]) == s2l.point_ids
    assert set(df["sat_bands"]) == {"B02,B03,B04"} and df["embedded_views"].all()
    cache = GroundCache.open(tmp_path / "out" / "ground_cache")
    emb, mask = cache.lookup(s2l.point_ids)
    assert mask[:, :4].all() and not mask[:, VIEWS.index("P")].any()
    norms = np.load(tmp_path / "out" / "ground_cache" / "norms.npy")
    for i, pid in enumerate(s2l.point_ids):
        for v in "NESW":
            raw = s2l.vectors[pid + v].reshape(-1).numpy()
            assert np.allclose(emb[i, VIEWS.index(v)], raw / np.linalg.norm(raw), atol=1e-6)
            assert np.isclose(norms[i, VIEWS.index(v)], np.linalg.norm(raw), rtol=1e-5)
    # lat/lon: the chip centre, in Europe (first place: Germany)
    assert 47 < df["lat"][0] < 55 and 5 < df["lon"][0] < 15
    # the RGB tower gets file bands 3, 2, 1 (what the reference reads), i.e. the original R, G, B
    import rasterio

    with rasterio.open(df["sat_path"][0]) as src:
        raw = src.read().astype(np.float32)
    sample = PairedDataset(df, cache)[0]
    by_name = read_chip(df["sat_path"][0], ("B04", "B03", "B02"), ("B04", "B03", "B02"))["image"]
    assert not torch.allclose(sample["image"], by_name)  # the default order is not the file order
    from senclip.data.transforms import true_colour

    expected = true_colour()({"image": torch.from_numpy(raw[[2, 1, 0]]), "bands": ("B04", "B03", "B02")})
    assert torch.equal(sample["image"], expected["image"])


def test_import_then_train_two_steps_and_retrieve(s2l, tmp_path, cli_all, capsys):
    from senclip.train.export import export_base

    base = tmp_path / "base.safetensors"
    export_base("senclip-tiny-vit", base, seed=0)
    np.save(tmp_path / "paths.npy", np.array(Path(s2l.paths).read_text().split()))
    out = tmp_path / "lucas"
    argv = _argv(s2l, out)
    argv[argv.index("--paths") + 1] = str(tmp_path / "paths.npy")  # the list as a .npy array
    assert cli_all(argv) == 0
    config = tmp_path / "train.yaml"
    config.write_text(
        f"model: {{name: senclip-tiny-vit, pretrained: {base}}}\n"
        f"data: {{manifest: {out / 'manifest.csv'}, cache: {out / 'ground_cache'}, batch_size: 4, "
        "workers: 0, val_fraction: 0.25}\n"
        f"trainer: {{out: {tmp_path / 'run'}, max_steps: 2, ckpt_every_n_steps: 1, log_every_n_steps: 1}}\n")
    assert cli_all(["train", "--config", str(config), "--no-progress"]) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    capsys.readouterr()
    assert cli_all(["retrieval", "--model", "senclip-tiny-vit", "--pretrained", str(base), "--manifest",
                    str(out / "manifest.csv"), "--cache", str(out / "ground_cache"), "--out",
                    str(tmp_path / "r.json"), "--workers", "0", "--no-progress"]) == 0
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 12 and 0 <= report["sat_to_ground"]["R@1"] <= report["sat_to_ground"]["R@10"] <= 1


def _break(s2l, what: str) -> str:
    """Damage one row of the files in place; returns the point id it names."""
    row = {"chip": 1, "key": 4, "dim": 7}[what]
    pid = s2l.point_ids[row]
    if what == "chip":
        rel = Path(s2l.paths).read_text().split()[row]
        (s2l.chips / rel).unlink()
    else:
        vectors = dict(s2l.vectors)
        if what == "key":
            del vectors[pid + "E"]
        else:
            vectors[pid + "S"] = torch.zeros(1, 64) + 1.0
        torch.save(vectors, s2l.embeddings)
    return pid


@pytest.mark.parametrize("what", ["chip", "key", "dim"])
def test_bad_row_stops_with_one_line_and_writes_nothing(s2l, tmp_path, cli_all, capsys, what):
    pid = _break(s2l, what)
    out = tmp_path / "out"
    assert cli_all(_argv(s2l, out)) == 2
    line = _one_error(capsys)
    assert pid in line and "--skip-bad" in line and "1 bad row" in line, line
    assert not out.exists() or not any(out.iterdir())


def test_skip_bad_reports_and_leaves_out(s2l, tmp_path, cli_all, capsys):
    bad = [_break(s2l, "chip"), _break(s2l, "key")]
    assert cli_all(_argv(s2l, tmp_path / "out", "--skip-bad")) == 0
    df = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype={"point_id": str})
    assert list(df["point_id"]) == [p for p in s2l.point_ids if p not in bad]
    assert GroundCache.open(tmp_path / "out" / "ground_cache").point_ids == list(df["point_id"])


def test_pickle_with_code_is_refused(s2l, tmp_path, cli_all, capsys):
    torch.save({"AT_1N": argparse.Namespace(x=1)}, s2l.embeddings)
    assert cli_all(_argv(s2l, tmp_path / "out")) == 2
    assert "objects other than tensors" in _one_error(capsys)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_truncated_embeddings_file_is_one_line(s2l, tmp_path, cli_all, capsys):
    data = s2l.embeddings.read_bytes()
    s2l.embeddings.write_bytes(data[: len(data) // 2])
    assert cli_all(_argv(s2l, tmp_path / "out")) == 2
    assert "unreadable embeddings file" in _one_error(capsys)


def test_chips_without_georeferencing_take_lat_lon_from_points(tmp_path, cli_all, capsys):
    f = write_sen2lucas(tmp_path / "raw", n=4, georeferenced=False)
    assert cli_all(_argv(f, tmp_path / "a")) == 2
    assert "no georeferencing" in _one_error(capsys)
    table = pd.DataFrame({"POINT_ID": [p.split("_")[1] for p in f.point_ids],
                          "TH_LAT": [48.0 + i for i in range(4)], "TH_LONG": [11.0 - i for i in range(4)]})
    table.to_csv(tmp_path / "lucas.csv", index=False)
    assert cli_all(_argv(f, tmp_path / "b", "--points", str(tmp_path / "lucas.csv"))) == 0
    df = read_manifest(tmp_path / "b" / "manifest.csv")
    assert list(df["lat"]) == [48.0, 49.0, 50.0, 51.0] and list(df["lon"]) == [11.0, 10.0, 9.0, 8.0]


def test_point_key_follows_the_reference_loader():
    from senclip.data.sen2lucas import point_key

    assert point_key("AT/47862690_2018-06-14_x.tif") == ("AT", "47862690")
    assert point_key("FR/12345678.tif") == ("FR", "12345678")
    assert point_key("noslash.tif") is None
