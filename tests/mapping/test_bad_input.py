"""Bad input: one-line error, exit status 2, no output and no leftovers."""

from __future__ import annotations

import numpy as np
import pytest
from mapping_helpers import write_raster

from senclip.cli import main


def _run(capsys, src, out, *extra, model_file):
    status = main(["map", str(src), str(out), "--model", "senclip-tiny-vit", "--pretrained", str(model_file),
                   "--no-progress", "--prompts", "generic", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    return status, err


@pytest.fixture
def scene(mosaic):
    return mosaic["data"]


def _truncated(tmp_path, mosaic, scene):
    """A COG (directory first, pixels after) cut in half: it opens, its pixels do not read."""
    import rasterio.shutil

    cog = tmp_path / "full.tif"
    rasterio.shutil.copy(mosaic["path"], cog, driver="COG", compress="DEFLATE", blocksize=64)
    path = tmp_path / "trunc.tif"
    path.write_bytes(cog.read_bytes()[: cog.stat().st_size // 2])
    return path, []


def _truncated_directory(tmp_path, mosaic, scene):
    """A GeoTIFF with its directory at the end, cut in half: it does not even open."""
    path = tmp_path / "trunc.tif"
    path.write_bytes(mosaic["path"].read_bytes()[: mosaic["path"].stat().st_size // 2])
    return path, []


def _garbage(tmp_path, mosaic, scene):
    path = tmp_path / "garbage.tif"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    return path, []


def _no_crs(tmp_path, mosaic, scene):
    return write_raster(tmp_path / "nocrs.tif", scene, ["B04", "B03", "B02"], crs=None), []


def _one_band(tmp_path, mosaic, scene):
    return write_raster(tmp_path / "one.tif", scene[:1], ["B04"]), []


def _names_missing(tmp_path, mosaic, scene):
    return write_raster(tmp_path / "nodesc.tif", scene), ["--input-bands", "B04,B03,B02"]


def _descriptions_differ(tmp_path, mosaic, scene):
    return write_raster(tmp_path / "b8.tif", scene, ["B08", "B03", "B02"]), []


def _all_nodata(tmp_path, mosaic, scene):
    return write_raster(tmp_path / "empty.tif", np.zeros_like(scene), ["B04", "B03", "B02"], nodata=0), []


def _tile_too_big(tmp_path, mosaic, scene):
    return mosaic["path"], ["--tile", "512"]


CASES = {
    "truncated": (_truncated, "corrupt or truncated"),
    "truncated directory": (_truncated_directory, "truncated"),
    "not a tiff": (_garbage, "cannot open"),
    "missing crs": (_no_crs, "no CRS"),
    "too few bands": (_one_band, "model needs 3"),
    "band names not found": (_names_missing, "not found"),
    "descriptions differ": (_descriptions_differ, "B04 not found"),
    "all nodata": (_all_nodata, "every tile is nodata"),
    "tile larger than scene": (_tile_too_big, "larger than the scene"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_error(case, capsys, tmp_path, mosaic, scene, tiny_vit_file):
    make, message = CASES[case]
    src, extra = make(tmp_path, mosaic, scene)
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    status, err = _run(capsys, src, out, *extra, model_file=tiny_vit_file)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert list(out.parent.iterdir()) == []  # no output, no sidecars, no .partial


def test_unwritable_output(capsys, tmp_path, mosaic, tiny_vit_file):
    (tmp_path / "afile").write_text("x")
    status, err = _run(capsys, mosaic["path"], tmp_path / "afile" / "map.tif", model_file=tiny_vit_file)
    assert status == 2 and "is not a folder" in err[0] and len(err) == 1
    (tmp_path / "adir").mkdir()
    status, err = _run(capsys, mosaic["path"], tmp_path / "adir", model_file=tiny_vit_file)
    assert status == 2 and "is a folder" in err[0]


def test_allow_no_crs(capsys, tmp_path, scene, tiny_vit_file):
    src = write_raster(tmp_path / "nocrs.tif", scene, ["B04", "B03", "B02"], crs=None)
    out = tmp_path / "map.tif"
    status, _ = _run(capsys, src, out, "--allow-no-crs", "--no-quicklook", model_file=tiny_vit_file)
    assert status == 0 and out.is_file()
