"""Real rasters for mapping tests, built from ../shared/data (never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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


@pytest.fixture(scope="session")
def mosaic(tmp_path_factory, eurosat_rgb):
    """4x4 blocks of 64 px EuroSAT tiles (RGB, B04/B03/B02 descriptions) with known classes."""
    images, labels = eurosat_blocks(eurosat_rgb, GRID * GRID)
    data = np.zeros((3, GRID * BLOCK, GRID * BLOCK), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, GRID)
        data[:, r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = img.transpose(2, 0, 1)
    path = write_raster(tmp_path_factory.mktemp("mosaic") / "mosaic.tif", data, ["B04", "B03", "B02"])
    return {"path": path, "images": images, "labels": labels, "data": data}


def encode_blocks(model, images: list[np.ndarray]):
    """Embeddings of 64x64x3 uint8 blocks as the map sees them (x 1/255)."""
    import torch

    x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255)
    with torch.no_grad():
        return model.encode_image(x)


@pytest.fixture(scope="session")
def probe(tiny_vit, mosaic):
    """A few-shot linear classifier fitted to the mosaic blocks' true classes."""
    from sklearn.linear_model import LogisticRegression

    from senclip.evaluate.fewshot import LinearClassifier
    from senclip.mapping.classify import ProbeClassifier

    emb = encode_blocks(tiny_vit, mosaic["images"]).numpy()
    classes = sorted(set(mosaic["labels"]))
    y = np.array([classes.index(lbl) for lbl in mosaic["labels"]])
    lr = LogisticRegression(C=1e4, max_iter=5000).fit(emb, y)
    clf = LinearClassifier(classes, lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32),
                           tiny_vit.describe())
    return ProbeClassifier(clf)


@pytest.fixture(scope="session")
def tiny_vit_file(tmp_path_factory, tiny_vit):
    """The session's tiny ViT saved as a full senclip checkpoint (for subprocess runs)."""
    from senclip.models import save_model

    return save_model(tiny_vit, tmp_path_factory.mktemp("model") / "tiny-vit.safetensors", kind="full")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Mapping tests run with one intra-op thread: reading threads share the 2 CPU cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
