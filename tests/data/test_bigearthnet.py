"""BigEarthNet-S2 v1: exact labels of the 6 example patches, band stacking, RGB order, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from senclip.data import DATASETS, BigEarthNet, get_dataset
from senclip.data.bigearthnet import class_names, encode_labels, label_table
from senclip.errors import DatasetNotFoundError, SenclipError

CLASSES_19 = [
    "Urban fabric", "Industrial or commercial units", "Arable land", "Permanent crops", "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest", "Mixed forest",
    "Natural grassland and sparsely vegetated areas", "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub", "Beaches, dunes, sands", "Inland wetlands", "Coastal wetlands",
    "Inland waters", "Marine waters",
]
AGRI_NATURAL = "Land principally occupied by agriculture, with significant areas of natural vegetation"

# Read by hand from each <patch>_labels_metadata.json in /work/shared/data/bigearthnet_s2_example.
EXPECTED_43 = {
    "S2A_MSIL2A_20170613T101031_87_48": ["Non-irrigated arable land", AGRI_NATURAL],
    "S2A_MSIL2A_20170617T113321_36_85": ["Non-irrigated arable land", "Pastures"],
    "S2A_MSIL2A_20170617T113321_4_55": ["Pastures"],
    "S2A_MSIL2A_20171221T112501_56_35": ["Complex cultivation patterns", AGRI_NATURAL, "Broad-leaved forest",
                                         "Transitional woodland/shrub"],
    "S2B_MSIL2A_20170924T93020_69_24": ["Coniferous forest", "Mixed forest", "Transitional woodland/shrub",
                                        "Peatbogs", "Water bodies"],
    "S2B_MSIL2A_20180204T94161_57_38": ["Non-irrigated arable land", "Coniferous forest", "Mixed forest"],
}
# The same patches in the 19-class nomenclature (Sumbul et al. 2021).
EXPECTED_19 = {
    "S2A_MSIL2A_20170613T101031_87_48": ["Arable land", AGRI_NATURAL],
    "S2A_MSIL2A_20170617T113321_36_85": ["Arable land", "Pastures"],
    "S2A_MSIL2A_20170617T113321_4_55": ["Pastures"],
    "S2A_MSIL2A_20171221T112501_56_35": ["Complex cultivation patterns", AGRI_NATURAL, "Broad-leaved forest",
                                         "Transitional woodland, shrub"],
    "S2B_MSIL2A_20170924T93020_69_24": ["Coniferous forest", "Mixed forest", "Transitional woodland, shrub",
                                        "Inland wetlands", "Inland waters"],
    "S2B_MSIL2A_20180204T94161_57_38": ["Arable land", "Coniferous forest", "Mixed forest"],
}
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def _read(folder, band):
    with rasterio.open(folder / f"{folder.name}_{band}.tif") as src:
        return src.read(1).astype(np.float32)


@pytest.fixture(scope="module")
def ben19(bigearthnet_root):
    return get_dataset("bigearthnet", bigearthnet_root, transforms=None)


def test_nomenclatures():
    assert class_names(19) == CLASSES_19
    labels43 = class_names(43)
    assert len(labels43) == 43 and len(set(labels43)) == 43
    table = label_table()
    merged = [s for sources in table["nomenclature19"].values() for s in sources]
    assert len(merged) == len(set(merged)) == 32  # each original label goes to at most one class
    assert sorted(table["dropped"]) == sorted([
        "Road and rail networks and associated land", "Port areas", "Airports", "Mineral extraction sites",
        "Dump sites", "Construction sites", "Green urban areas", "Sport and leisure facilities", "Bare rock",
        "Burnt areas", "Intertidal flats"])
    assert set(merged) | set(table["dropped"]) == set(labels43)
    # a few merges spelled out
    assert table["nomenclature19"]["Permanent crops"] == [
        "Vineyards", "Fruit trees and berry plantations", "Olive groves",
        "Annual crops associated with permanent crops"]
    assert table["nomenclature19"]["Marine waters"] == ["Coastal lagoons", "Estuaries", "Sea and ocean"]
    assert encode_labels(["Port areas"]).sum() == 0  # dropped label: empty 19-class target


@pytest.mark.parametrize("nomenclature,expected", [(19, EXPECTED_19), (43, EXPECTED_43)])
def test_exact_labels_of_the_six_patches(bigearthnet_root, nomenclature, expected):
    ds = BigEarthNet(bigearthnet_root, nomenclature=nomenclature)
    assert DATASETS["bigearthnet"] is BigEarthNet and ds.multilabel
    names = [p.rsplit("/", 1)[-1] for p in ds.paths]
    assert names == sorted(expected)
    assert ds.labels.dtype == np.uint8 and ds.labels.shape == (6, nomenclature)
    for i, name in enumerate(names):
        assert sorted(ds.label_names(i)) == sorted(expected[name]), name
        hot = np.zeros(nomenclature, dtype=np.uint8)
        hot[[ds.classes.index(c) for c in expected[name]]] = 1
        np.testing.assert_array_equal(ds.labels[i], hot)


def test_sample_contract_and_band_stack(ben19, bigearthnet_root):
    s = ben19[4]
    folder = bigearthnet_root / "S2B_MSIL2A_20170924T93020_69_24"
    assert s["path"] == str(folder) and s["bands"] == BANDS
    assert s["image"].dtype == torch.float32 and s["image"].shape == (12, 120, 120)
    assert s["label"].dtype == torch.float32 and s["label"].shape == (19,)
    assert s["label"].sum() == 5 and s["label"][CLASSES_19.index("Inland waters")] == 1
    img = s["image"].numpy()
    for band in ("B02", "B03", "B04", "B08"):  # 10 m bands: exactly the stored values
        np.testing.assert_array_equal(img[BANDS.index(band)], _read(folder, band))
    # 20 m and 60 m bands: bilinear, pixel-centre aligned upsampling to 120x120 (within uint16 rounding)
    for band, native in (("B05", 60), ("B8A", 60), ("B12", 60), ("B01", 20), ("B09", 20)):
        low = _read(folder, band)
        assert low.shape == (native, native)
        ref = torch.nn.functional.interpolate(torch.from_numpy(low)[None, None], size=(120, 120),
                                              mode="bilinear", align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(img[BANDS.index(band)], ref, atol=1.0)


def test_rgb_is_b04_b03_b02_not_bgr(bigearthnet_root):
    """The published SenCLIP code fed B02,B03,B04 (BGR) as RGB; we feed red, green, blue."""
    ds = get_dataset("bigearthnet", bigearthnet_root)  # default bands: RGB -> true_colour()
    for i in (0, 3):
        folder = bigearthnet_root / ds.paths[i].rsplit("/", 1)[-1]
        red, green, blue = (_read(folder, b) for b in ("B04", "B03", "B02"))
        expected = np.clip(np.stack([red, green, blue]) * 1e-4 * 3.5, 0, 1)
        got = ds[i]["image"].numpy()
        assert got.shape == (3, 120, 120) and ds[i]["bands"] == ("B04", "B03", "B02")
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        assert not np.allclose(got, expected[::-1], atol=1e-3)  # and it is not BGR


def test_reference_bgr_swaps_red_and_blue_only(bigearthnet_root):
    """``rgb_transforms("reference-bgr")`` feeds B02,B03,B04 (the SenCLIP reference's order) as R,G,B."""
    from senclip.bands import REFERENCE_BGR_BANDS
    from senclip.data.bigearthnet import rgb_transforms

    rgb = get_dataset("bigearthnet", bigearthnet_root)
    bgr = get_dataset("bigearthnet", bigearthnet_root, transforms=rgb_transforms("reference-bgr"))
    assert repr(rgb_transforms("rgb")) == repr(rgb.transforms)  # "rgb" is the default, to the letter
    for i in range(len(rgb)):
        a, b = rgb[i], bgr[i]
        assert b["bands"] == REFERENCE_BGR_BANDS == ("B02", "B03", "B04")
        assert torch.equal(b["image"][0], a["image"][2]) and torch.equal(b["image"][2], a["image"][0])
        assert torch.equal(b["image"][1], a["image"][1])
        assert not torch.equal(b["image"], a["image"])  # blue and red differ on real patches
    with pytest.raises(SenclipError, match="unknown BigEarthNet RGB order 'bgr'"):
        rgb_transforms("bgr")


def test_non_rgb_bands_are_reflectance(bigearthnet_root):
    ds = get_dataset("bigearthnet", bigearthnet_root, bands=("B08", "B04"))
    s = ds[2]
    folder = bigearthnet_root / s["path"].rsplit("/", 1)[-1]
    expected = np.stack([_read(folder, "B08"), _read(folder, "B04")]) * 1e-4
    np.testing.assert_allclose(s["image"].numpy(), expected, rtol=1e-6)


def test_missing_band_file(bigearthnet_copy):
    root = bigearthnet_copy(["S2A_MSIL2A_20170617T113321_4_55", "S2B_MSIL2A_20180204T94161_57_38"])
    (root / "S2A_MSIL2A_20170617T113321_4_55" / "S2A_MSIL2A_20170617T113321_4_55_B8A.tif").unlink()
    ds = BigEarthNet(root)
    assert ds[1]["image"].shape == (12, 120, 120)
    with pytest.raises(SenclipError, match=r"_B8A\.tif missing .*S2A_MSIL2A_20170617T113321_4_55"):
        ds[0]
    with pytest.raises(SenclipError, match=r"_B8A\.tif"):
        ds.fingerprint()


def test_corrupt_band_file_is_named(bigearthnet_copy):
    root = bigearthnet_copy(["S2A_MSIL2A_20170617T113321_4_55"])
    band = root / "S2A_MSIL2A_20170617T113321_4_55" / "S2A_MSIL2A_20170617T113321_4_55_B11.tif"
    band.unlink()
    band.write_bytes(b"not a tiff")
    with pytest.raises(SenclipError, match=r"_B11\.tif"):
        BigEarthNet(root)[0]


def test_label_file_problems(bigearthnet_copy):
    name = "S2A_MSIL2A_20170617T113321_4_55"
    root = bigearthnet_copy([name])
    meta = root / name / f"{name}_labels_metadata.json"
    meta.unlink()
    with pytest.raises(SenclipError, match=r"labels_metadata\.json"):
        BigEarthNet(root)
    meta.write_text(json.dumps({"labels": ["Pastures", "Lava fields"]}))
    with pytest.raises(SenclipError, match="Lava fields"):
        BigEarthNet(root)
    meta.write_text("{broken")
    with pytest.raises(SenclipError, match=r"labels_metadata\.json"):
        BigEarthNet(root)


def test_split_file_selects_patches_in_order(bigearthnet_root, tmp_path):
    split = tmp_path / "val.csv"
    split.write_text("S2B_MSIL2A_20180204T94161_57_38,x\nS2A_MSIL2A_20170617T113321_4_55,y\n")
    ds = BigEarthNet(bigearthnet_root, split_file=split)
    assert [p.rsplit("/", 1)[-1] for p in ds.paths] == ["S2B_MSIL2A_20180204T94161_57_38",
                                                         "S2A_MSIL2A_20170617T113321_4_55"]
    assert ds.label_names(1) == ["Pastures"]
    split.write_text("S2A_MSIL2A_20170617T113321_4_55\nS2A_NOT_A_PATCH_1_1\n")
    with pytest.raises(SenclipError, match="S2A_NOT_A_PATCH_1_1"):
        BigEarthNet(bigearthnet_root, split_file=split)


def test_bad_arguments_and_missing_root(bigearthnet_root, tmp_path):
    with pytest.raises(SenclipError, match="nomenclature must be 19 or 43"):
        BigEarthNet(bigearthnet_root, nomenclature=7)
    with pytest.raises(SenclipError, match="resampling"):
        BigEarthNet(bigearthnet_root, resampling="magic")
    with pytest.raises(SenclipError, match="B10"):
        get_dataset("bigearthnet", bigearthnet_root, bands=("B10",))
    with pytest.raises(DatasetNotFoundError, match=r"labels_metadata\.json"):
        BigEarthNet(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"not found .*download=True"):
        BigEarthNet(tmp_path / "empty")


@pytest.mark.parametrize("name", ["eurosat", "eurosat-ms", "bigearthnet"])
def test_download_fills_an_existing_empty_folder(tmp_path, monkeypatch, name):
    import senclip.data.download as download
    from senclip.data import DATASETS

    calls = []

    def fake_ensure(name, root, **kw):
        calls.append((name, root))
        raise SenclipError("offline")

    monkeypatch.setattr(download, "ensure_dataset", fake_ensure)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SenclipError, match="offline"):
        DATASETS[name](tmp_path / "empty", download=True)
    assert calls == [(name, tmp_path / "empty")]


def test_fingerprint_depends_on_nomenclature(ben19, bigearthnet_root):
    f19 = ben19.fingerprint()
    assert f19 == BigEarthNet(bigearthnet_root).fingerprint()
    assert f19 != BigEarthNet(bigearthnet_root, nomenclature=43).fingerprint()
