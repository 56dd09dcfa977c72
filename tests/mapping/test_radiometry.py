"""Readers honour the file's GDAL scale/offset: float32 reflectance and uint16 DN + metadata map alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from mapping_helpers import write_raster

from senclip.cli import main
from senclip.mapping.source import RasterSource, SourceOptions

RGB = ["B04", "B03", "B02"]


@pytest.fixture(scope="module")
def pair(mosaic, tmp_path_factory):
    """The mosaic as reflectance k/10000 (float32) and as DN = k + 1000 (uint16, scale 1e-4, offset -0.1)."""
    tmp = tmp_path_factory.mktemp("radiometry")
    k = np.round(mosaic["data"].astype(np.float64) / 255 * 2500 + 50).astype(np.int64)  # 0.005-0.255
    k[:, :8, :8] = -30  # a dark corner: reflectance -0.003 (DN 970), masked in both files
    refl = write_raster(tmp / "refl.tif", (k / 10000).astype(np.float32), RGB)
    dn = write_raster(tmp / "dn.tif", (k + 1000).astype(np.uint16), RGB, nodata=0)
    with rasterio.open(dn, "r+") as dst:
        dst.scales, dst.offsets = (1e-4,) * 3, (-0.1,) * 3
    return refl, dn


def test_same_values_and_mask_from_both_files(pair):
    (a, va), (b, vb) = (RasterSource(str(p), tuple(RGB)).read_strip(0, 256, 256) for p in pair)
    assert np.array_equal(va, vb) and not va[:8, :8].any() and va[8:, 8:].all()  # <= 0 is masked
    assert np.array_equal(a, b)  # the float64 computation gives the float32 reflectance exactly


def test_map_outputs_are_identical(pair, tiny_vit_file, tmp_path, capsys):
    import shutil

    outs = []
    scene = tmp_path / "scene.tif"  # one input path for both encodings: the map records its input's path
    for path in pair:
        shutil.copyfile(path, scene)
        out = tmp_path / f"{path.stem}_map.tif"
        rc = main(["map", str(scene), str(out), "--model", "senclip-tiny-vit", "--pretrained", str(tiny_vit_file),
                   "--stride", "32", "--batch-size", "4", "--workers", "1", "--no-progress", "--device", "cpu",
                   "--prompts", "generic", "--no-quicklook", "--resolution", "input"])
        assert rc == 0
        json.loads(capsys.readouterr().out.splitlines()[-1])
        outs.append(out)
    with rasterio.open(outs[0]) as a, rasterio.open(outs[1]) as b:
        classes_a, classes_b = a.read(), b.read()
        assert a.profile == b.profile and a.transform == b.transform
    assert np.array_equal(classes_a, classes_b)
    assert outs[0].read_bytes() == outs[1].read_bytes()  # the whole file: pixels, tags, overviews
    assert (classes_a[0, :8, :8] == 255).all()  # the dark corner is nodata in both maps
    assert len(np.unique(classes_a)) > 2  # a real map, not one class


def test_options_override_metadata_with_a_note(pair, capsys):
    dn = str(pair[1])
    src = RasterSource(dn, tuple(RGB), SourceOptions(offset=0.0))
    assert "override the file's GDAL scale/offset (0.0001, -0.1)" in capsys.readouterr().err
    assert src.offset == 0.0 and src.scale == 1e-4
    src = RasterSource(dn, tuple(RGB), SourceOptions(scale=1e-4, offset=-0.1))  # agreeing: no note
    assert capsys.readouterr().err == "" and src.gain == 1.0  # an explicit --scale turns the stretch off
