"""The tile grid of a scene and the cell grid of its map.

A scene of ``width x height`` pixels is cut into square tiles of ``tile``
pixels placed every ``stride`` pixels (``tile`` must be a multiple of
``stride``; ``stride == tile`` means no overlap). The map has one *cell* per
``stride x stride`` block of input pixels, so its transform is the input's
scaled by ``stride`` and every cell edge lies on an input pixel edge. A tile
covers ``k x k`` cells (``k = tile // stride``); a cell's scores are the mean
of the scores of the tiles covering it.

Tiles are laid out so every input pixel is covered: ``ceil(width / stride)``
cells per row and ``cells - k + 1`` tiles per row. The last tiles may reach
past the scene edge by less than ``stride`` pixels; that part is read as
nodata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from affine import Affine

from senclip.errors import SenclipError


@dataclass(frozen=True)
class TileGrid:
    """Tiles and cells of one scene.

    Attributes:
        width: scene width in pixels.
        height: scene height in pixels.
        tile: tile size in pixels.
        stride: distance between tile origins in pixels (= cell size).
        transform: the scene's affine transform (pixel → CRS).
    """

    width: int
    height: int
    tile: int
    stride: int
    transform: Affine = field(default_factory=Affine.identity)

    def __post_init__(self) -> None:
        if self.tile < 1 or self.stride < 1:
            raise SenclipError(f"--tile and --stride must be positive (got {self.tile}, {self.stride})")
        if self.stride > self.tile or self.tile % self.stride:
            raise SenclipError(
                f"--tile {self.tile} must be a multiple of --stride {self.stride} (e.g. stride = tile, "
                "tile/2 or tile/4)"
            )
        if self.tile > min(self.width, self.height):
            raise SenclipError(
                f"tile of {self.tile} px is larger than the scene ({self.width}x{self.height} px); "
                "pass a smaller --tile"
            )

    @property
    def k(self) -> int:
        """Cells per tile side."""
        return self.tile // self.stride

    @property
    def cells_x(self) -> int:
        return math.ceil(self.width / self.stride)

    @property
    def cells_y(self) -> int:
        return math.ceil(self.height / self.stride)

    @property
    def tiles_x(self) -> int:
        return self.cells_x - self.k + 1

    @property
    def tiles_y(self) -> int:
        return self.cells_y - self.k + 1

    @property
    def n_tiles(self) -> int:
        return self.tiles_x * self.tiles_y

    @property
    def cell_transform(self) -> Affine:
        """Transform of the cell grid (the map at tile resolution)."""
        return self.transform @ Affine.scale(self.stride)

    def tile_origin(self, row: int, col: int) -> tuple[int, int]:
        """Pixel ``(y, x)`` of the top-left corner of tile ``(row, col)``."""
        return row * self.stride, col * self.stride

    def tile_bounds(self, rows, cols) -> np.ndarray:
        """``(N, 4)`` ``(minx, miny, maxx, maxy)`` of tiles ``(rows[i], cols[i])`` in the scene CRS."""
        y = np.asarray(rows, dtype=np.float64).reshape(-1) * self.stride
        x = np.asarray(cols, dtype=np.float64).reshape(-1) * self.stride
        a, b, c, d, e, f = tuple(self.transform)[:6]
        corners_x, corners_y = [], []
        for px, py in ((x, y), (x + self.tile, y), (x, y + self.tile), (x + self.tile, y + self.tile)):
            corners_x.append(a * px + b * py + c)
            corners_y.append(d * px + e * py + f)
        cx, cy = np.stack(corners_x), np.stack(corners_y)
        return np.stack([cx.min(0), cy.min(0), cx.max(0), cy.max(0)], axis=1)

    def strip_rows(self, row: int) -> tuple[int, int]:
        """Input rows ``[y0, y1)`` read for tile row ``row`` (``y1`` may pass the scene edge)."""
        y0 = row * self.stride
        return y0, y0 + self.tile

    @property
    def padded_width(self) -> int:
        """Width of a strip including the padding past the right edge."""
        return self.cells_x * self.stride
