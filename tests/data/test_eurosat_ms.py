"""EuroSAT MS: 13-band GeoTIFF layout, published band order, scaling transforms, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from senclip.data import DATASETS, EuroSATMS, get_dataset
from senclip.errors import DatasetNotFoundError, SenclipError

NESTED = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"
EUROSAT_MS_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")


def test_band_order_is_the_published_one():
    assert DATASETS["eurosat-ms"] is EuroSATMS
    assert EuroSATMS.all_bands == EUROSAT_MS_ORDER
    assert EuroSATMS.all_bands.index("B8A") == 12 and EuroSATMS.all_bands.index("B09") == 8


def test_reads_stored_digital_numbers(eurosat_ms_tree):
    root, arrays = eurosat_ms_tree(per_class=2)
    ds = get_dataset("eurosat-ms", root, transforms=None)
    assert len(ds) == 20 and ds.classes[9] == "SeaLake"
    assert ds.labels.tolist() == [k for k in range(10) for _ in range(2)]
    for i in (0, 7, 19):
        s = ds[i]
        assert s["image"].dtype == torch.float32 and s["image"].shape == (13, 64, 64)
        np.testing.assert_array_equal(s["image"].numpy(), arrays[s["path"]].astype(np.float32))
        assert s["bands"] == EUROSAT_MS_ORDER and int(s["label"]) == i // 2


def test_default_rgb_transform_is_true_colour_of_b04_b03_b02(eurosat_ms_tree):
    root, arrays = eurosat_ms_tree(per_class=1)
    ds = get_dataset("eurosat-ms", root)  # bands default to RGB
    s = ds[3]
    raw = arrays[s["path"]].astype(np.float32)
    expected = np.clip(raw[[3, 2, 1]] * 1e-4 * 3.5, 0.0, 1.0)  # B04, B03, B02 of the published order
    np.testing.assert_allclose(s["image"].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert s["bands"] == ("B04", "B03", "B02")
    assert float(s["image"].max()) <= 1.0


def test_other_bands_select_by_name_and_scale_to_reflectance(eurosat_ms_tree):
    root, arrays = eurosat_ms_tree(per_class=1)
    bands = ("B08", "B8A", "B11", "B02")
    ds = get_dataset("eurosat-ms", root, bands=bands)
    s = ds[5]
    raw = arrays[s["path"]].astype(np.float32)
    expected = raw[[7, 12, 10, 1]] * 1e-4
    np.testing.assert_allclose(s["image"].numpy(), expected, rtol=1e-6)
    assert s["bands"] == bands
    # the fake's band k holds values in [1000k, 1000k+900): B8A (file band 13) is ~1.2-1.29 reflectance
    assert 1.199 <= float(s["image"][1].min()) and float(s["image"][1].max()) < 1.29


def test_all_bands_with_bands_none(eurosat_ms_tree):
    root, arrays = eurosat_ms_tree(per_class=1)
    s = get_dataset("eurosat-ms", root, bands=None)[0]
    np.testing.assert_allclose(s["image"].numpy(), arrays[s["path"]] * 1e-4, rtol=1e-6)


def test_release_nested_root_accepted(eurosat_ms_tree):
    root, _ = eurosat_ms_tree(per_class=1, nested=NESTED)
    ds = EuroSATMS(root)
    assert len(ds) == 10 and ds.root == root / NESTED


def test_missing_root_and_wrong_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"ds/images/remote_sensing"):
        EuroSATMS(tmp_path / "missing")
    (tmp_path / "empty").mkdir()  # an empty folder is "not found" (download=True would fill it)
    with pytest.raises(DatasetNotFoundError, match=r"data not found .*download=True"):
        EuroSATMS(tmp_path / "empty")


def test_empty_class_folder_is_named(eurosat_ms_tree):
    root, _ = eurosat_ms_tree(per_class=1)
    (root / "Pasture" / "Pasture_1.tif").unlink()
    (root / "Pasture" / "notes.txt").write_text("not an image")
    with pytest.raises(SenclipError, match="Pasture"):
        EuroSATMS(root)


def test_corrupt_and_wrong_band_count_files_are_named(eurosat_ms_tree, geotiff_writer):
    root, _ = eurosat_ms_tree(per_class=1)
    (root / "River" / "River_bad.tif").write_bytes(b"II*\x00garbage")
    geotiff_writer(root / "Forest" / "Forest_rgb.tif", np.zeros((3, 64, 64), dtype=np.uint16))
    ds = EuroSATMS(root)
    with pytest.raises(SenclipError, match=r"River_bad\.tif"):
        ds[ds.paths.index(str(root / "River" / "River_bad.tif"))]
    with pytest.raises(SenclipError, match=r"Forest_rgb\.tif has 3 bands, expected 13"):
        ds[ds.paths.index(str(root / "Forest" / "Forest_rgb.tif"))]


def test_unknown_band_is_a_user_error(eurosat_ms_tree):
    root, _ = eurosat_ms_tree(per_class=1)
    with pytest.raises(SenclipError, match="B8B"):
        get_dataset("eurosat-ms", root, bands=("B04", "B8B"))
