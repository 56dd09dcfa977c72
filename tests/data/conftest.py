"""Helpers for the dataset tests: fake Sentinel-2 GeoTIFFs and small class-folder trees."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from senclip.data.base import EUROSAT_CLASSES

EUROSAT_MS_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")


def write_geotiff(path: Path, array: np.ndarray, res: float = 10.0, epsg: int = 32633,
                  origin: tuple[float, float] = (404400.0, 5342400.0)) -> Path:
    """Write a (C, H, W) array as a tiled-off GeoTIFF with a UTM CRS and ``res`` m pixels."""
    import rasterio
    from rasterio.transform import from_origin

    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    profile = {
        "driver": "GTiff", "count": array.shape[0], "height": array.shape[1], "width": array.shape[2],
        "dtype": array.dtype.name, "crs": f"EPSG:{epsg}",
        "transform": from_origin(origin[0], origin[1], res, res),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
    return path


def fake_ms_array(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """13-band uint16 digital numbers; band k lies in [1000 k, 1000 k + 900) so it is identifiable."""
    base = (np.arange(13, dtype=np.uint16) * 1000)[:, None, None]
    return (base + rng.integers(0, 900, size=(13, size, size))).astype(np.uint16)


@pytest.fixture
def eurosat_ms_tree(tmp_path) -> Callable[..., tuple[Path, dict[str, np.ndarray]]]:
    """Build ``<root>/[nested/]<Class>/<Class>_<n>.tif`` with ``per_class`` 13-band 64x64 files.

    Returns a builder ``(per_class=2, nested="", classes=EUROSAT_CLASSES)`` giving
    the root and a dict from file path to the array written there.
    """

    def build(per_class: int = 2, nested: str = "", classes=EUROSAT_CLASSES):
        rng = np.random.default_rng(0)
        root = tmp_path / "eurosat_ms"
        arrays = {}
        for name in classes:
            for n in range(1, per_class + 1):
                path = root / nested / name / f"{name}_{n}.tif"
                arrays[str(path)] = fake_ms_array(rng)
                write_geotiff(path, arrays[str(path)])
        return root, arrays

    return build


@pytest.fixture
def eurosat_rgb_tree(tmp_path, eurosat_rgb) -> Callable[..., Path]:
    """Build a small EuroSAT RGB tree of symlinks to ``per_class`` real validation JPEGs."""

    def build(per_class: int = 2, nested: str = "") -> Path:
        root = tmp_path / "eurosat_rgb" / nested
        for name in EUROSAT_CLASSES:
            (root / name).mkdir(parents=True)
            for f in sorted(os.listdir(eurosat_rgb / "valid" / name))[:per_class]:
                (root / name / f).symlink_to(eurosat_rgb / "valid" / name / f)
        return tmp_path / "eurosat_rgb"

    return build


@pytest.fixture
def bigearthnet_copy(tmp_path, bigearthnet_root) -> Callable[..., Path]:
    """Copy (as symlinks) chosen real BigEarthNet patches into ``tmp_path/ben``; returns the root."""

    def build(patches=None) -> Path:
        root = tmp_path / "ben"
        names = patches or sorted(p.name for p in bigearthnet_root.iterdir() if p.is_dir())
        for name in names:
            (root / name).mkdir(parents=True)
            for f in (bigearthnet_root / name).iterdir():
                (root / name / f.name).symlink_to(f)
        return root

    return build


@pytest.fixture
def geotiff_writer() -> Callable[..., Path]:
    """:func:`write_geotiff` for tests that need odd files."""
    return write_geotiff
