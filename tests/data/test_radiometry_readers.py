"""The datasets' readers (training chips, series stacks) honour GDAL per-band scale/offset."""

from __future__ import annotations

import datetime as dt

import numpy as np
import rasterio
from rasterio.transform import from_origin

from senclip.data.paired import read_chip
from senclip.data.series.rasters import StackSource, write_stack

BANDS = ("B04", "B03", "B02")


def _chip(path, data, scales=None, offsets=None):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=3,
                       dtype=data.dtype.name, crs="EPSG:32633", nodata=0,
                       transform=from_origin(500000, 5200000, 10, 10)) as dst:
        dst.write(data)
        for i, b in enumerate(BANDS, 1):
            dst.set_band_description(i, b)
        if scales is not None:
            dst.scales, dst.offsets = scales, offsets
    return str(path)


def test_raw_and_harmonised_chips_give_the_same_image(tmp_path):
    dn = np.random.default_rng(0).integers(100, 3000, (3, 16, 16)).astype(np.uint16)
    dn[:, 0, 0] = 0  # nodata
    harmonised = _chip(tmp_path / "h.tif", dn, (1e-4,) * 3, (0.0,) * 3)
    shifted = np.where(dn > 0, dn + 1000, 0).astype(np.uint16)
    raw = _chip(tmp_path / "r.tif", shifted, (1e-4,) * 3, (-0.1,) * 3)
    old = _chip(tmp_path / "o.tif", dn)  # no metadata: as before (DN x 1e-4)
    for bands in (BANDS, ("B02", "B03", "B04")):
        a, b, c = (read_chip(p, bands)["image"] for p in (harmonised, raw, old))
        assert np.array_equal(a.numpy(), b.numpy()) and np.array_equal(a.numpy(), c.numpy())
    # a raw pixel below the offset (negative reflectance) reads as nodata, not as a dark value
    low = np.where(dn > 0, dn + 1000, 0).astype(np.uint16)
    low[:, 5, 5] = 900
    img = read_chip(_chip(tmp_path / "l.tif", low, (1e-4,) * 3, (-0.1,) * 3), ("B02", "B03", "B04"))["image"]
    assert (img[:, 5, 5] == 0).all()


def test_series_stack_with_offset_reads_in_harmonised_units(tmp_path):
    dates = [dt.date(2022, 1, 15), dt.date(2022, 2, 15)]
    plain = np.full((2, 2, 4, 4), 500.0, np.float32)
    t = from_origin(500000, 5200000, 10, 10)
    a = write_stack(tmp_path / "a.tif", plain, dates, ["B04", "B08"], crs="EPSG:32633", transform=t)
    b = write_stack(tmp_path / "b.tif", plain + 1000, dates, ["B04", "B08"], crs="EPSG:32633", transform=t,
                    scaling=([1e-4, 1e-4], [-0.1, -0.1]))
    (da, va), (db, vb) = StackSource(a).read(slice(0, 4)), StackSource(b).read(slice(0, 4))
    assert np.array_equal(da, db) and np.array_equal(va, vb) and va.all()


def test_bigearthnet_band_with_offset_metadata_reads_like_the_original(bigearthnet_root, tmp_path):
    import shutil

    from senclip.data import get_dataset

    patch = sorted(p for p in bigearthnet_root.iterdir() if p.is_dir())[0]
    shutil.copytree(patch, tmp_path / patch.name)
    band = tmp_path / patch.name / f"{patch.name}_B04.tif"
    with rasterio.open(band) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(band, "w", **profile) as dst:  # raw DN of a baseline >= 04.00 product, with metadata
        dst.write(np.where(data > 0, data + 1000, 0).astype(data.dtype))
        dst.scales, dst.offsets = (1e-4,), (-0.1,)
    ours = get_dataset("bigearthnet", tmp_path, transforms=None)[0]["image"]
    ref = get_dataset("bigearthnet", bigearthnet_root, transforms=None)
    index = [str(p) for p in ref.paths].index(str(patch))
    assert np.array_equal(ours.numpy(), ref[index]["image"].numpy())
