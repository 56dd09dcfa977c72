"""Manifests with series_path: SeriesPairedDataset, and `senclip train` of the timesen tower from a config."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin, xy
from rasterio.warp import transform as warp

from senclip.data.ground_cache import CacheWriter, GroundCache
from senclip.data.manifest import read_manifest
from senclip.errors import SenclipError
from senclip.data.series.paired import SeriesPairedDataset
from senclip.data.series.rasters import write_stack

BANDS = ["B04", "B08"]
MONTHS = [dt.date(2018, m, 15) for m in range(1, 13)]
UTM33 = CRS.from_epsg(32633)
DIM, VIEWS = 16, 5


def _stack(path, seed: int, size: int, valid: np.ndarray) -> tuple[np.ndarray, object]:
    """A 12-month stack like `acquire series` writes (CLM band), UTM 33N near Ljubljana."""
    data = np.random.default_rng(seed).uniform(100, 4000, (12, len(BANDS), size, size)).astype(np.float32)
    data[np.broadcast_to(~valid[:, None], data.shape)] = np.nan
    transform = from_origin(460_000 + 1000 * seed, 5_100_000, 10, 10)
    write_stack(path, data, MONTHS, BANDS, valid=valid, crs=UTM33, transform=transform)
    return data, transform


def _lonlat(transform, row: int, col: int) -> tuple[float, float]:
    x, y = xy(transform, [row], [col])
    lon, lat = warp(UTM33, "EPSG:4326", x, y)
    return lon[0], lat[0]


@pytest.fixture
def series_manifest(tmp_path):
    """Two per-point stacks (pixel by lat/lon), one shared stack (two points by row/col), a cloudy point."""
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8), (90, 120, 60)).save(photo)
    ok = np.ones((12, 5, 5), bool)
    ok[[0, 1, 11]] = False  # winter months missing everywhere
    rows, expect = [], {}
    for i in range(2):
        data, tr = _stack(tmp_path / f"p{i}.tif", i, 5, ok)
        lon, lat = _lonlat(tr, 2, 2)
        rows.append({"point_id": f"p{i}", "lat": lat, "lon": lon, "series_path": f"p{i}.tif"})
        expect[f"p{i}"] = data[:, :, 2, 2]
    data, tr = _stack(tmp_path / "shared.tif", 7, 6, np.ones((12, 6, 6), bool))
    for pid, (r, c) in {"s1": (0, 5), "s2": (4, 1)}.items():
        lon, lat = _lonlat(tr, r, c)
        rows.append({"point_id": pid, "lat": lat, "lon": lon, "series_path": "shared.tif",
                     "row": r, "col": c})
        expect[pid] = data[:, :, r, c]
    _, tr = _stack(tmp_path / "cloudy.tif", 9, 3, np.zeros((12, 3, 3), bool))
    lon, lat = _lonlat(tr, 1, 1)
    rows.append({"point_id": "cloudy", "lat": lat, "lon": lon, "series_path": "cloudy.tif"})
    df = pd.DataFrame(rows).assign(photo_P="photo.jpg", label=[0, 1, 0, 1, 0])
    df.to_csv(tmp_path / "series.csv", index=False)
    ids = df["point_id"].tolist()[::-1]  # the cache may hold points in any order
    emb = np.random.default_rng(0).standard_normal((len(ids), VIEWS, DIM)).astype(np.float32)
    writer = CacheWriter(tmp_path / "cache", {"model": "t", "views": list("NESWP"), "dim": DIM}, ids)
    writer.write(0, emb, np.ones((len(ids), VIEWS), bool))
    writer.finish()
    return tmp_path / "series.csv", tmp_path / "cache", expect, dict(zip(ids, emb, strict=True))


def test_series_pairs_read_each_points_pixel(series_manifest):
    manifest, cache, expect, emb = series_manifest
    df = read_manifest(manifest)
    with pytest.raises(SenclipError, match=r"cloudy\.tif: .*no clear observation.*data\.skip_bad"):
        SeriesPairedDataset(df, GroundCache.open(cache), BANDS, progress=False)
    ds = SeriesPairedDataset(df, GroundCache.open(cache), BANDS, skip_bad=True, progress=False)
    assert ds.point_ids == ["p0", "p1", "s1", "s2"]  # manifest order, the cloudy point dropped
    for i, pid in enumerate(ds.point_ids):
        s = ds[i]
        assert s["image"].shape == (12, 2) and s["point_id"] == pid
        np.testing.assert_allclose(s["image"].numpy(), expect[pid], equal_nan=True)
        np.testing.assert_array_equal(s["ground"].numpy(), emb[pid])
    assert torch.isnan(ds[0]["image"][[0, 1, 11]]).all() and not torch.isnan(ds[0]["image"][2:11]).any()
    assert ds[3]["label"].item() == 1
    only_b08 = SeriesPairedDataset(df, GroundCache.open(cache), ["B08"], skip_bad=True, progress=False)
    np.testing.assert_allclose(only_b08[2]["image"][:, 0].numpy(), expect["s1"][:, 1])


def test_manifest_checks_series_columns(series_manifest, tmp_path):
    manifest, cache, _, _ = series_manifest
    df = pd.read_csv(manifest)
    df.loc[1, "series_path"] = "missing.tif"
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SenclipError, match="series_path not found"):
        read_manifest(tmp_path / "bad.csv")
    df.drop(columns="series_path").to_csv(tmp_path / "none.csv", index=False)
    with pytest.raises(SenclipError, match=r"lacks column.*sat_path or series_path"):
        read_manifest(tmp_path / "none.csv")
    from senclip.data.paired import PairedDataset

    with pytest.raises(SenclipError, match=r"no sat_path chip.*timesen"):
        PairedDataset(read_manifest(manifest), GroundCache.open(cache))


def test_train_timesen_from_a_config_alone(series_manifest, tmp_path, capsys):
    from senclip.cli import main
    from senclip.models import create_model, read_metadata

    manifest, cache, expect, _ = series_manifest
    config = tmp_path / "ts.yaml"
    config.write_text(f"""
model: {{name: senclip-tiny-vit, tower: timesen, bands: [B08, B04], target_dim: {DIM},
         tower_options: {{width: 16, layers: 1, heads: 2, mlp_dim: 16, month_dropout: 0.3, scale: [1.0e-4]}}}}
data: {{manifest: {manifest}, cache: {cache}, batch_size: 2, workers: 0, val_fraction: 0, skip_bad: true}}
optim: {{lr: 1.0e-3, warmup_steps: 1}}
trainer: {{out: {tmp_path / "run"}, max_steps: 3, ckpt_every_n_steps: 3}}
""")
    assert main(["train", "--config", str(config), "--no-progress"]) == 0
    assert "trained to step 3" in capsys.readouterr().out
    out = tmp_path / "ts.safetensors"
    last = tmp_path / "run/checkpoints/last.ckpt"
    assert main(["export", "--checkpoint", str(last), "--out", str(out)]) == 0
    assert read_metadata(out)["tower"] == "timesen" and read_metadata(out)["bands"] == ["B08", "B04"]
    model = create_model("senclip-tiny-vit", checkpoint=out)
    x = torch.from_numpy(np.stack([expect["p0"][:, ::-1], expect["s2"][:, ::-1]]).copy())
    with torch.no_grad():
        assert model.encode_image(x).shape == (2, DIM)
    r = tmp_path / "r.json"
    assert main(["retrieval", "--model", "senclip-tiny-vit", "--checkpoint", str(out), "--manifest",
                 str(manifest), "--cache", str(cache), "--out", str(r), "--skip-bad", "--no-progress"]) == 0
    assert json.loads(r.read_text())["n"] == 4  # the cloudy point has no series to embed
    config.write_text(config.read_text().replace("skip_bad: true", "skip_bad: false, augment: true"))
    assert main(["train", "--config", str(config), "--no-progress", "--overwrite"]) == 2
    assert "data.augment flips and rotates chips" in capsys.readouterr().err
