"""Default scaling of Sentinel-2 digital numbers for the tower that reads them."""

from __future__ import annotations

import numpy as np
import pytest
from mapping_helpers import write_raster

from senclip.mapping.source import RasterSource, SourceOptions


@pytest.fixture
def l2a_rgb(tmp_path):
    data = np.stack([np.full((64, 64), v, np.uint16) for v in (1000, 2000, 5000)])
    return write_raster(tmp_path / "rgb.tif", data, descriptions=["B04", "B03", "B02"])


def test_rgb_tower_gets_the_true_colour_stretch(l2a_rgb):
    data, valid = RasterSource(str(l2a_rgb), ("B04", "B03", "B02")).read_strip(0, 64, 64)
    assert valid.all()
    np.testing.assert_allclose(data[:, 0, 0], [0.35, 0.7, 1.0], rtol=1e-6)  # 5000 DN clipped to 1


def test_explicit_scale_and_multispectral_towers_get_reflectance(l2a_rgb):
    data, _ = RasterSource(str(l2a_rgb), ("B04", "B03", "B02"), SourceOptions(scale=1e-4)).read_strip(0, 64, 64)
    np.testing.assert_allclose(data[:, 0, 0], [0.1, 0.2, 0.5], rtol=1e-6)
    data, _ = RasterSource(str(l2a_rgb), ("B02", "B03", "B04")).read_strip(0, 64, 64)
    np.testing.assert_allclose(data[:, 0, 0], [0.5, 0.2, 0.1], rtol=1e-6)
