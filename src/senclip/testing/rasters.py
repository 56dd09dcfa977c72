"""Small georeferenced rasters for tests and benchmarks: EuroSAT mosaics with known classes, class maps.

Made from the real EuroSAT images in ``../shared/data`` (never copied into the repository) or
synthesised; written with rasterio in UTM 32N with 10 m pixels unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

BLOCK = 64
GRID = 4
ORIGIN = (500_000.0, 5_600_000.0)  # UTM 32N, 10 m pixels
CRS = "EPSG:32632"


def eurosat_blocks(eurosat_rgb: Path, n: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` EuroSAT validation images (64x64x3 uint8) cycling through the classes."""
    from PIL import Image

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


def eurosat_mosaic(eurosat_rgb: Path, path: Path, grid: int = GRID) -> dict:
    """``grid`` x ``grid`` blocks of 64 px EuroSAT images (RGB, B04/B03/B02 descriptions) with known classes.

    Returns ``{"path", "images", "labels", "data"}`` (block ``i`` at row ``i // grid``, column ``i % grid``).
    """
    images, labels = eurosat_blocks(eurosat_rgb, grid * grid)
    data = np.zeros((3, grid * BLOCK, grid * BLOCK), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, grid)
        data[:, r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = img.transpose(2, 0, 1)
    path = write_raster(path, data, ["B04", "B03", "B02"])
    return {"path": path, "images": images, "labels": labels, "data": data}


def class_map_cog(path: Path, size: int, n_classes: int = 10, patch: int = 32, seed: int = 0) -> Path:
    """A ``size`` x ``size`` uint8 class-map COG (255 nodata, colour table, ``CLASSES`` tag) of random
    classes in ``patch``-pixel squares, with nearest overviews: what ``senclip map --resolution input``
    writes for a stride of ``patch``."""
    import json

    import rasterio.shutil

    rng = np.random.default_rng(seed)
    cells = -(-size // patch)
    classes = rng.integers(0, n_classes, (cells, cells), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.tif")
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint8", "crs": CRS,
               "transform": from_origin(*ORIGIN, 10.0, 10.0), "nodata": 255, "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    with rasterio.open(tmp, "w", **profile) as dst:
        for y0 in range(0, size, 512):
            rows = np.arange(y0, min(y0 + 512, size)) // patch
            dst.write(np.repeat(classes[rows], patch, axis=1)[None, :, :size],
                      window=rasterio.windows.Window(0, y0, size, len(rows)))
        cmap = {i: (int(37 * i % 256), int(91 * i % 256), int(173 * i % 256), 255) for i in range(n_classes)}
        dst.write_colormap(1, {**cmap, 255: (0, 0, 0, 0)})
        dst.update_tags(CLASSES=json.dumps([f"class {i}" for i in range(n_classes)]))
    rasterio.shutil.copy(tmp, path, driver="COG", compress="DEFLATE", overview_resampling="nearest",
                         blocksize=512)
    tmp.unlink()
    return path
