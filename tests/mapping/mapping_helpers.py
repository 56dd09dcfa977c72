"""Helpers for mapping tests: rasters built from ../shared/data, block embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

BLOCK = 64
GRID = 4
ORIGIN = (500_000.0, 5_600_000.0)  # UTM 32N, 10 m pixels
CRS = "EPSG:32632"


def eurosat_blocks(eurosat_rgb: Path, n: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` EuroSAT validation images (64x64x3 uint8) cycling through the classes."""
    classes = sorted(p.name for p in (eurosat_rgb / "valid").iterdir() if p.is_dir())
    images, labels = [], []
    for i in range(n):
        cls = classes[(i * 3) % len(classes)]
        files = sorted((eurosat_rgb / "valid" / cls).glob("*.jpg"))
        images.append(np.asarray(Image.open(files[i // len(classes)]).convert("RGB")))
        labels.append(cls)
    return images, labels


def write_raster(path: Path, data: np.ndarray, descriptions=None, crs=CRS, nodata=None,
                 transform=None, **extra) -> Path:
    """Write a (C, H, W) array as a tiled GeoTIFF georeferenced in UTM."""
    count, height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": str(data.dtype),
               "transform": transform or from_origin(*ORIGIN, 10.0, 10.0), "nodata": nodata,
               "tiled": True, "blockxsize": 64, "blockysize": 64, **extra}
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return path


def encode_blocks(model, images: list[np.ndarray]):
    """Embeddings of 64x64x3 uint8 blocks as the map sees them (x 1/255)."""
    import torch

    x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255)
    with torch.no_grad():
        return model.encode_image(x)
