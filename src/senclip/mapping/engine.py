"""The tile pipeline: read strips, cut tiles, batch, encode, hand rows on.

Reading runs in a small thread pool a few tile rows ahead of inference
(rasterio/GDAL release the GIL while decoding), inference runs in the
calling thread, and each finished tile row goes to a ``sink`` callback, which
stores it at once. Memory is bounded by ``prefetch`` strips and one batch,
whatever the scene size.

Batches are fixed slices of the row-major tile sequence (tiles ``[i*B,
(i+1)*B)``), also when a run resumes in the middle of a scene: a resumed run
restarts at the batch boundary before the first row it needs, so every tile
is encoded in exactly the same batch as in an uninterrupted run and the
results are bit-identical.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from senclip.mapping.grid import TileGrid
from senclip.mapping.source import RasterSource


@dataclass
class StripTiles:
    """The tiles of one tile row.

    Attributes:
        row: tile-row index.
        tiles: float32 ``(tiles_x, C, tile, tile)``.
        valid_fraction: ``(tiles_x,)`` share of valid pixels per tile.
        cell_valid: ``(k, cells_x)`` share of valid pixels per cell of the
            strip (cell rows ``row .. row + k - 1``).
    """

    row: int
    tiles: np.ndarray
    valid_fraction: np.ndarray
    cell_valid: np.ndarray


def read_tile_row(source: RasterSource, grid: TileGrid, row: int) -> StripTiles:
    """Read the strip of tile row ``row`` and cut it into tiles."""
    y0, y1 = grid.strip_rows(row)
    data, valid = source.read_strip(y0, y1, grid.padded_width)
    t, s, k, nx = grid.tile, grid.stride, grid.k, grid.tiles_x
    view = np.lib.stride_tricks.sliding_window_view(data, (t,), axis=2)[:, :, ::s][:, :, :nx]
    tiles = np.ascontiguousarray(view.transpose(2, 0, 1, 3))  # (nx, C, T, T)
    cells = valid.reshape(k, s, grid.cells_x, s).mean(axis=(1, 3), dtype=np.float32)
    cum = np.concatenate([np.zeros((k, 1), np.float32), np.cumsum(cells, axis=1)], axis=1)
    tile_frac = (cum[:, k:k + nx] - cum[:, :nx]).sum(axis=0) / (k * k)
    return StripTiles(row, tiles, tile_frac.astype(np.float32), cells)


def prefetch(read: Callable, items: Iterable, workers: int = 1, depth: int = 2) -> Iterator:
    """``read(item)`` for each item in order, up to ``depth`` items ahead on ``workers`` threads.

    Reading (tile rows here, series blocks in :mod:`senclip.mapping.pixels`) overlaps inference.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="senclip-read") as pool:
        pending: deque = deque()
        items = iter(items)
        try:
            while True:
                for item in items:
                    pending.append(pool.submit(read, item))
                    if len(pending) >= depth:
                        break
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()


@dataclass
class _Row:
    strip: StripTiles
    out: np.ndarray
    left: int = 0


def run_tiles(
    source: RasterSource,
    grid: TileGrid,
    encode: Callable[[torch.Tensor], np.ndarray],
    sink: Callable[[int, np.ndarray, StripTiles], None],
    n_values: int,
    start_row: int = 0,
    batch_size: int = 64,
    min_valid: float = 0.5,
    workers: int = 2,
    progress=None,
) -> None:
    """Encode every tile from tile row ``start_row`` on and pass rows to ``sink``.

    Args:
        source: the scene.
        grid: its tile grid.
        encode: ``(N, C, T, T)`` float tensor → ``(N, V)`` float array
            (embedding, class probabilities, …).
        sink: called as ``sink(row, values, strip)`` for each tile row in
            order; ``values`` is ``(tiles_x, V)`` float32 with NaN rows for
            tiles with less than ``min_valid`` valid pixels.
        n_values: ``V``, the length of each tile's value vector.
        start_row: first tile row passed to ``sink``.
        batch_size: tiles per forward pass.
        min_valid: share of valid pixels a tile needs to be encoded.
        workers: reading threads.
        progress: optional tqdm-like bar, advanced by tiles.
    """
    nx = grid.tiles_x
    first_flat = (start_row * nx // batch_size) * batch_size
    row0, col0 = divmod(first_flat, nx)
    if progress is not None:
        progress.update(start_row * nx)
    rows: deque[_Row] = deque()
    batch: list[tuple[_Row, int]] = []

    def flush() -> None:
        keep = [(r, c) for r, c in batch if r.strip.valid_fraction[c] >= min_valid]
        if keep:
            x = torch.from_numpy(np.stack([r.strip.tiles[c] for r, c in keep]))
            values = encode(x)
            for (r, c), v in zip(keep, values, strict=True):
                r.out[c] = v
        for r, _ in batch:
            r.left -= 1
        batch.clear()
        while rows and rows[0].left == 0:
            done = rows.popleft()
            if done.strip.row >= start_row:
                sink(done.strip.row, done.out, done.strip)
                if progress is not None:
                    progress.update(nx)

    read = partial(read_tile_row, source, grid)
    for strip in prefetch(read, range(row0, grid.tiles_y), workers, depth=max(2, workers + 1)):
        entry = _Row(strip, np.full((nx, n_values), np.nan, dtype=np.float32))
        cols = range(col0 if strip.row == row0 else 0, nx)
        entry.left = len(cols)
        rows.append(entry)
        for c in cols:
            batch.append((entry, c))
            if len(batch) == batch_size:
                flush()
    if batch:
        flush()
