"""Helpers for mapping tests: the rasters of senclip.testing.rasters, block embeddings."""

from __future__ import annotations

import numpy as np

from senclip.testing.rasters import BLOCK, CRS, GRID, ORIGIN, eurosat_blocks, write_raster

__all__ = ["BLOCK", "CRS", "GRID", "ORIGIN", "encode_blocks", "eurosat_blocks", "write_raster"]


def encode_blocks(model, images: list[np.ndarray]):
    """Embeddings of 64x64x3 uint8 blocks as the map sees them (x 1/255)."""
    import torch

    x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255)
    with torch.no_grad():
        return model.encode_image(x)
