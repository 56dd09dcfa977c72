"""map-pixels end to end on the real EOPatch: COG, colour table, nodata, resume, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from senclip.cli import main
from senclip.data.series.dataset import LULC_CLASSES


@pytest.fixture(scope="module")
def ndvi_checkpoint(tmp_path_factory, tiny_vit, ndvi_tower_config):
    from senclip.models import save_model
    from senclip.models.timesen import build_timesen_model

    torch.manual_seed(3)
    model = build_timesen_model(tiny_vit, ndvi_tower_config)
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "timesen.safetensors")


@pytest.fixture(scope="module")
def cloudy_stack(tmp_path_factory, eopatch_root):
    """The EOPatch as a GeoTIFF stack, with a 5x7 block clouded on every date."""
    from senclip.data.series.io import EOPatchSource
    from senclip.data.series.rasters import write_stack

    src = EOPatchSource(eopatch_root)
    data, valid = src.read(slice(0, src.height))
    valid[:, 10:15, 20:27] = False
    return write_stack(tmp_path_factory.mktemp("stack") / "stack.tif", data, src.dates, src.bands, valid,
                       src.crs, src.transform)


def _args(stack, out, ckpt, *extra):
    return ["map-pixels", str(stack), str(out), "--model", "senclip-tiny-vit", "--checkpoint", str(ckpt),
            "--block-rows", "16", "--no-progress", *extra]


def test_map_pixels_writes_a_cog_with_classes_and_nodata(tmp_path, cloudy_stack, ndvi_checkpoint):
    out = tmp_path / "map.tif"
    assert main(_args(cloudy_stack, out, ndvi_checkpoint, "--prompts", "ground")) == 0
    with rasterio.open(out) as m, rasterio.open(cloudy_stack) as s:
        assert m.driver == "GTiff" and m.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert (m.height, m.width, m.crs, m.transform) == (s.height, s.width, s.crs, s.transform)
        values = m.read(1)
        assert m.nodata == 255 and json.loads(m.tags()["classes"]) == list(LULC_CLASSES)
        cmap = m.colormap(1)
        assert cmap[1] == (34, 139, 34, 255)  # forest
    assert (values[10:15, 20:27] == 255).all()
    rest = np.ones(values.shape, bool)
    rest[10:15, 20:27] = False
    assert (values[rest] < len(LULC_CLASSES)).all()
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("*.progress.json"))


def test_resume_after_interruption_gives_identical_file(tmp_path, eopatch_root, ndvi_checkpoint):
    from senclip.data.series.io import ArraySource
    from senclip.data.sources import open_series
    from senclip.mapping.pixels import PixelMapOptions, PixelMapper, lulc_prompts
    from senclip.mapping.store import STATE
    from senclip.models import create_model

    model = create_model("senclip-tiny-vit", checkpoint=ndvi_checkpoint)
    full = open_series(eopatch_root)
    data, valid = full.read(slice(0, 40))  # a 40-row strip of the real patch keeps the test fast
    source = ArraySource(data, full.dates, full.bands, valid, full.crs, full.transform, name="strip")
    prompts = lulc_prompts("generic", ["forest", "grassland", "shrubland", "artificial surface"])
    mapper = PixelMapper(model, prompts, PixelMapOptions(block_rows=8, batch_size=4096))

    whole = mapper.run(source, tmp_path / "whole.tif", progress=False)
    assert whole["resumed_blocks"] == 0 and sum(whole["counts_this_run"].values()) == 40 * 100

    def stop_after_three(done, total):
        if done == 3:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.tif"
    with pytest.raises(KeyboardInterrupt):
        mapper.run(source, out, progress=False, on_block=stop_after_three)
    assert not out.exists()
    assert (tmp_path / "resumed.tif.partial" / "labels.bin").exists()
    assert json.loads((tmp_path / "resumed.tif.partial" / STATE).read_text())["rows_done"] == 3 * 8
    second = mapper.run(source, out, progress=False)
    assert second["resumed_blocks"] == 3
    assert sum(second["counts_this_run"].values()) == (40 - 24) * 100
    assert out.read_bytes() == (tmp_path / "whole.tif").read_bytes()

    # a partial run made with other prompts is not resumed: the map starts over
    other = tmp_path / "other.tif"
    with pytest.raises(KeyboardInterrupt):
        mapper.run(source, other, progress=False, on_block=stop_after_three)
    changed = PixelMapper(model, lulc_prompts("ground", list(prompts)), PixelMapOptions(8, 4096))
    assert changed.run(source, other, progress=False)["resumed_blocks"] == 0


def test_map_pixels_refuses_an_image_model(tmp_path, eopatch_root, capsys):
    out = tmp_path / "m.tif"
    status = main(["map-pixels", str(eopatch_root), str(out), "--model", "senclip-tiny-vit", "--no-progress"])
    assert status == 2 and not out.exists()
    assert "error:" in capsys.readouterr().err


def test_time_steps_give_another_map_from_the_same_tower(tmp_path, cloudy_stack, ndvi_checkpoint):
    maps = {}
    for steps in ("12", "4", "1"):
        out = tmp_path / f"map{steps}.tif"
        assert main(_args(cloudy_stack, out, ndvi_checkpoint, "--time-steps", steps)) == 0
        with rasterio.open(out) as m:
            maps[steps] = m.read(1)
        assert (maps[steps][10:15, 20:27] == 255).all()
    assert not np.array_equal(maps["12"], maps["1"]) or not np.array_equal(maps["12"], maps["4"])
