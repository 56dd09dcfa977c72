"""Memory is bounded by the strip and the batch, not by the scene height."""

from __future__ import annotations

import tracemalloc

import numpy as np
from mapping_helpers import write_raster

from senclip.mapping.mapper import MapOptions, map_scene


def _peak_bytes(model, clf, path, out) -> int:
    tracemalloc.start()
    try:
        map_scene(model, clf, str(path), out, MapOptions(tile=256, batch_size=8, workers=1, progress=False,
                                                        quicklook=False, resolution="input"))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_scene_height(tiny_vit, probe, mosaic, tmp_path):
    big = np.tile(mosaic["data"], (1, 8, 8))  # 2048 x 2048 px of EuroSAT blocks
    tall = write_raster(tmp_path / "big.tif", big, ["B04", "B03", "B02"])
    short = write_raster(tmp_path / "short.tif", big[:, :512], ["B04", "B03", "B02"])
    peak_short = _peak_bytes(tiny_vit, probe, short, tmp_path / "short_map.tif")
    peak_tall = _peak_bytes(tiny_vit, probe, tall, tmp_path / "big_map.tif")
    scene_float_bytes = big.size * 4
    assert peak_tall < 1.3 * peak_short, (peak_tall, peak_short)
    assert peak_tall < 0.6 * scene_float_bytes, (peak_tall, scene_float_bytes)
