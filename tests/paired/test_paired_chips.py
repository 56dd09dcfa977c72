"""Chip reading for PairedDataset: GeoTIFF band selection and scaling, pickling for workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from senclip.data.manifest import read_manifest
from senclip.data.paired import PairedDataset, read_chip
from senclip.errors import SenclipError


def _tif(path, data, descriptions=None):
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
               "count": data.shape[0], "dtype": data.dtype.name, "crs": "EPSG:32632",
               "transform": Affine(10, 0, 600000, 0, -10, 5300000)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return str(path)


def test_geotiff_chip_bands_by_name(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4000, (4, 16, 16), dtype=np.uint16)
    path = _tif(tmp_path / "c.tif", data, ["B02", "B03", "B04", "B08"])
    rgb = read_chip(path)
    assert rgb["bands"] == ("B04", "B03", "B02")
    expected = np.clip(data[[2, 1, 0]].astype(np.float32) * 3.5e-4, 0, 1)
    np.testing.assert_allclose(rgb["image"].numpy(), expected, rtol=1e-6)
    ms = read_chip(path, ("B08", "B04"))
    np.testing.assert_allclose(ms["image"].numpy(), data[[3, 2]].astype(np.float32) * 1e-4, rtol=1e-6)
    with pytest.raises(SenclipError, match="lack some of"):
        read_chip(path, ("B11", "B04"))


def test_unnamed_geotiffs(tmp_path):
    data8 = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    x = read_chip(_tif(tmp_path / "rgb8.tif", data8))["image"]
    np.testing.assert_allclose(x.numpy(), data8 / 255.0, rtol=1e-6)
    data = np.full((2, 8, 8), 1000, dtype=np.uint16)
    path = _tif(tmp_path / "two.tif", data)
    np.testing.assert_allclose(read_chip(path, ("B08", "B11"))["image"].numpy(), 0.1, rtol=1e-6)
    with pytest.raises(SenclipError, match="2 unnamed bands but the tower expects 3"):
        read_chip(path)
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(SenclipError, match="unreadable chip"):
        read_chip(str(tmp_path / "bad.tif"))


def test_dataset_pickles_without_the_arrays(shared_manifest, photo_cache):
    ds = PairedDataset(read_manifest(shared_manifest), photo_cache)
    ds[0]  # opens the memory maps
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # the (10, 5, 128) float32 array alone is 25,600 bytes
    again = pickle.loads(blob)
    assert torch.equal(again[4]["ground"], ds[4]["ground"])
