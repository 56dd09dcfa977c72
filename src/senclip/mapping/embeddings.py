"""Tile embeddings as GeoParquet, and text search over them.

:func:`embed_scene` writes one row per tile: ``row``, ``col`` (tile indexes),
``valid_fraction``, ``embedding`` (list of float32, L2-normalised) and the
tile polygon (``geometry``, in the input CRS). The file is GeoParquet
(geopandas ``to_parquet``); its schema metadata ``senclip`` records the grid
(transform, tile, stride, size), the CRS and the model, which lets
:func:`search_tiles` rebuild the map grid and, by default, the same model.
Tiles with less than ``min_valid`` valid pixels are left out.

:func:`search_tiles` scores every tile by the cosine similarity of its
embedding with a text query and writes a float32 GeoTIFF heat map on the
map-cell grid (cells covered by several tiles get the mean), plus a PNG.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

from senclip.errors import SenclipError
from senclip.mapping.engine import StripTiles, run_tiles
from senclip.mapping.grid import TileGrid
from senclip.mapping.mapper import MapOptions, open_scene, progress_bar, run_identity, tile_encoder
from senclip.mapping.store import RowStore, check_writable
from senclip.mapping.writers import tiff_profile, write_cog, write_heat_png

META_KEY = b"senclip"


def _embed_dim(model) -> int:
    with torch.inference_mode():
        x = torch.zeros(1, len(model.image_tower.bands), model.image_tower.image_size,
                        model.image_tower.image_size, device=model.device)
        return int(model.encode_image(x).shape[-1])


def embed_scene(model, input_path: str, output: str | Path, options: MapOptions) -> dict:
    """Embed every tile of a scene into a GeoParquet file (resumable like ``map``)."""
    output = Path(output)
    check_writable(output)
    source, grid = open_scene(model, input_path, options)
    dim = _embed_dim(model)
    config = run_identity(model, source, grid, options, "embed")
    store = RowStore(output, config, {"emb": ((grid.tiles_y, grid.tiles_x, dim), "float32"),
                                      "frac": ((grid.tiles_y, grid.tiles_x), "float32")})

    def sink(row: int, values: np.ndarray, strip: StripTiles) -> None:
        store.write_row(row, emb=values, frac=strip.valid_fraction)

    t0 = time.perf_counter()
    try:
        if not store.complete:
            with progress_bar(grid.n_tiles, options.progress, f"embed {Path(input_path).name}") as bar, \
                    rasterio.Env(GDAL_CACHEMAX=source.cache_bytes()):
                run_tiles(source, grid, tile_encoder(model), sink, dim, start_row=store.rows_done,
                          batch_size=options.batch_size, min_valid=options.min_valid,
                          workers=options.workers, progress=bar)
        seconds = time.perf_counter() - t0
        n = _write_geoparquet(store, grid, source.crs, output, model, input_path)
    except Exception:  # an error leaves no partial state; Ctrl-C and kill keep it for a rerun to resume
        store.remove()
        raise
    finally:
        source.close()
    store.remove()
    return {"input": input_path, "output": str(output), "tiles": grid.n_tiles, "rows": n, "seconds": seconds}


def _write_geoparquet(store: RowStore, grid: TileGrid, crs, output: Path, model, input_path: str) -> int:
    import geopandas as gpd
    import pyarrow.parquet as pq
    import shapely

    emb, frac = store.arrays["emb"], store.arrays["frac"]
    rows, cols = np.nonzero(~np.isnan(emb[:, :, 0]))
    if rows.size == 0:
        raise SenclipError(f"{input_path}: every tile is nodata (or masked); nothing to embed")
    bounds = grid.tile_bounds(rows, cols)
    gdf = gpd.GeoDataFrame(
        {"row": rows.astype(np.int32), "col": cols.astype(np.int32),
         "valid_fraction": frac[rows, cols].astype(np.float32),
         "embedding": list(np.asarray(emb[rows, cols], dtype=np.float32))},
        geometry=shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3]),
        crs=crs,
    )
    meta = {"source": input_path, "model": model.describe(), "bands": list(model.image_tower.bands),
            "transform": list(grid.transform)[:6], "width": grid.width, "height": grid.height,
            "tile": grid.tile, "stride": grid.stride, "crs": crs.to_wkt() if crs else None}
    tmp = store.work_path("tiles.parquet")
    gdf.to_parquet(tmp, index=False)
    table = pq.read_table(tmp)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta)})
    final = store.work_path("final.parquet")
    pq.write_table(table, final)
    os.replace(final, output)
    return int(rows.size)


def read_tiles(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """``(rows, cols, embeddings (N, D), senclip metadata)`` of an ``embed`` GeoParquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise SenclipError(f"tiles file not found: {path}; write it with `senclip embed`")
    try:
        table = pq.read_table(path, columns=["row", "col", "embedding"])
        meta = json.loads((table.schema.metadata or {})[META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        raise SenclipError(f"{path}: not a `senclip embed` GeoParquet file ({exc})") from exc
    if table.num_rows == 0:
        raise SenclipError(f"{path}: holds no tiles; embed a scene with valid pixels (`senclip embed`)")
    return table.column("row").to_numpy(), table.column("col").to_numpy(), _embedding_block(table, path), meta


def _embedding_block(table, path: Path) -> np.ndarray:
    """The ``embedding`` column as one ``(N, D)`` float32 block, from a list or fixed-size-list column.

    One block from the flat values instead of a copy per row (100,000 x 512: 1.26 s -> 0.01 s).
    """
    import pyarrow as pa

    lists = table.column("embedding").combine_chunks()
    if isinstance(lists, pa.FixedSizeListArray):  # e.g. written by another tool as a fixed-size list
        width = lists.type.list_size
    elif isinstance(lists, pa.ListArray | pa.LargeListArray):
        sizes = np.diff(lists.offsets.to_numpy())
        if (sizes != sizes[0]).any():
            raise SenclipError(f"{path}: embeddings of different lengths; write it with `senclip embed`")
        width = int(sizes[0])
    else:
        raise SenclipError(f"{path}: its embedding column is {lists.type}, not a list of numbers; "
                           "write the file with `senclip embed`")
    flat = lists.flatten()
    if lists.null_count or flat.null_count or width == 0 or not pa.types.is_floating(flat.type):
        raise SenclipError(f"{path}: missing embeddings, or not floating-point numbers ({lists.type})")
    return flat.to_numpy().reshape(len(lists), width).astype(np.float32, copy=False)


def search_tiles(model, tiles: str | Path, query: str, output: str | Path, png: bool = True) -> dict:
    """Cosine similarity of ``query`` with every tile, as a GeoTIFF heat map (+ PNG).

    Raises:
        SenclipError: unreadable tiles file, empty query, unwritable output,
            embeddings of another size than the model's.
    """
    check_query(query)
    output = Path(output)
    check_writable(output)
    rows, cols, emb, meta = read_tiles(tiles)
    sim = tile_similarity(model, unit_rows(emb), query, tiles)
    grid, crs = tiles_grid(meta)
    heat = cell_mean(grid, rows, cols, sim)
    profile = tiff_profile(grid.cells_x, grid.cells_y, 1, "float32", crs, grid.cell_transform, float("nan"))
    work = output.with_name(output.name + ".partial")
    work.mkdir(exist_ok=True)
    try:
        write_cog(output, work, iter([(0, heat[None])]), profile, "average",
                  lambda dst: dst.update_tags(QUERY=query, SOURCE=str(tiles)))
        if png:
            write_heat_png(output.with_suffix(".png"), heat, f"senclip search: {query!r}")
    finally:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    best = int(np.argmax(sim))
    return {"output": str(output), "tiles": int(sim.size), "max": float(sim.max()),
            "best_tile": [int(rows[best]), int(cols[best])]}


def check_query(query: str) -> None:
    """Refuse an empty (or blank) text query."""
    if not query.strip():
        raise SenclipError("empty search query; give a text such as 'solar park'")


def unit_rows(emb: np.ndarray) -> np.ndarray:
    """Tile embeddings scaled to unit length (what the cosine similarity is taken against)."""
    return emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)


def tile_similarity(model, unit_emb: np.ndarray, query: str, tiles: str | Path = "the tiles file",
                    ) -> np.ndarray:
    """Cosine similarity ``(N,)`` of each unit tile embedding with the text embedding of ``query``.

    The one scoring rule of ``senclip search`` and ``senclip explore``: the model's text tower
    (fp32 output) against :func:`unit_rows` embeddings.
    """
    text = model.encode_text([query]).float().cpu()
    if text.shape[-1] != unit_emb.shape[1]:
        raise SenclipError(f"{tiles} holds {unit_emb.shape[1]}-d embeddings but the model gives "
                           f"{text.shape[-1]}-d; use the model that wrote the file")
    return unit_emb @ text.numpy()[0]


def tiles_grid(meta: dict) -> tuple[TileGrid, rasterio.crs.CRS | None]:
    """The tile grid and CRS an ``embed`` file records (its heat maps are on the grid's cells)."""
    grid = TileGrid(meta["width"], meta["height"], meta["tile"], meta["stride"], Affine(*meta["transform"]))
    return grid, (rasterio.crs.CRS.from_wkt(meta["crs"]) if meta.get("crs") else None)


def cell_mean(grid: TileGrid, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-cell mean of the values of the tiles covering each cell (NaN where none).

    One ``bincount`` per tile offset (a tile covers ``k x k`` cells, each once): the same float64
    additions in the same order as ``np.add.at``, so the same bits, 10 to 20 times faster (100,000
    tiles: 13.6 -> 1.4 ms with k = 1, 53.9 -> 2.7 ms with k = 2).
    """
    n = grid.cells_y * grid.cells_x
    flat = rows.astype(np.int64) * grid.cells_x + cols
    sums, counts = np.zeros(n), np.zeros(n)
    for di in range(grid.k):
        for dj in range(grid.k):
            at = flat + (di * grid.cells_x + dj)
            sums += np.bincount(at, weights=values, minlength=n)
            counts += np.bincount(at, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(np.float32).reshape(grid.cells_y, grid.cells_x)
