"""senclip embed (GeoParquet) and senclip search (heat map)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from mapping_helpers import BLOCK, GRID, ORIGIN, encode_blocks

from senclip.cli import main
from senclip.mapping.embeddings import embed_scene, search_tiles
from senclip.mapping.mapper import MapOptions


def test_embed_geoparquet_and_search_heat_map(tiny_vit, mosaic, tmp_path):
    tiles = tmp_path / "tiles.parquet"
    res = embed_scene(tiny_vit, str(mosaic["path"]), tiles, MapOptions(progress=False))
    assert res["rows"] == GRID * GRID
    gdf = gpd.read_parquet(tiles)
    with rasterio.open(mosaic["path"]) as src:
        assert gdf.crs == src.crs
    expected = encode_blocks(tiny_vit, mosaic["images"]).numpy()
    for _, rec in gdf.iterrows():
        r, c = int(rec["row"]), int(rec["col"])
        x0, y0 = ORIGIN[0] + c * BLOCK * 10, ORIGIN[1] - r * BLOCK * 10
        assert rec.geometry.equals(shapely.box(x0, y0 - BLOCK * 10, x0 + BLOCK * 10, y0))
        np.testing.assert_allclose(rec["embedding"], expected[r * GRID + c], atol=1e-5)

    heat = tmp_path / "heat.tif"
    out = search_tiles(tiny_vit, tiles, "solar park", heat)
    text = tiny_vit.encode_text(["solar park"]).numpy()[0]
    with rasterio.open(heat) as ds:
        values = ds.read(1)
        assert ds.transform == src.transform @ Affine.scale(BLOCK) and ds.crs == src.crs
        assert ds.tags()["QUERY"] == "solar park"
    np.testing.assert_allclose(values.ravel(), expected @ text, atol=1e-5)
    assert out["best_tile"] == list(divmod(int(np.argmax(expected @ text)), GRID))
    assert heat.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_embed_and_search_cli(capsys, tmp_path, mosaic, tiny_vit_file):
    tiles, heat = tmp_path / "t.parquet", tmp_path / "h.tif"
    model = ["--model", "senclip-tiny-vit", "--pretrained", str(tiny_vit_file)]
    assert main(["embed", str(mosaic["path"]), "--out", str(tiles), *model, "--stride", "32",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 49
    assert main(["search", str(tiles), "a river", "--out", str(heat), "--no-progress"]) == 0  # recorded model
    with rasterio.open(heat) as ds:
        assert ds.shape == (8, 8) and np.isfinite(ds.read(1)).all()
    assert main(["search", str(tmp_path / "missing.parquet"), "x", "--out", str(heat)]) == 2
    assert "not found" in capsys.readouterr().err


def test_map_reads_a_url_over_http(tiny_vit, probe, mosaic, tmp_path):
    """A /vsicurl/ URL (as for a STAC asset) maps like the local file.

    The file is served with HTTP range requests, as object stores do, by a
    server on loopback in a separate process (GDAL holds the GIL while it opens).
    """
    from senclip.mapping.mapper import map_scene
    from senclip.testing import RangeServerProcess

    with RangeServerProcess(mosaic["path"].parent) as server:
        url = f"/vsicurl/{server.url(mosaic['path'].name)}"
        a, b = tmp_path / "url.tif", tmp_path / "local.tif"
        opts = MapOptions(progress=False, quicklook=False)
        map_scene(tiny_vit, probe, url, a, opts)
        map_scene(tiny_vit, probe, str(mosaic["path"]), b, opts)
    with rasterio.open(a) as ua, rasterio.open(b) as lb:
        np.testing.assert_array_equal(ua.read(), lb.read())
        assert ua.transform == lb.transform


def test_cell_mean_of_overlapping_tiles():
    """Each cell is the mean of the tiles covering it (k x k cells per tile), NaN where none does."""
    from senclip.mapping.embeddings import cell_mean
    from senclip.mapping.grid import TileGrid

    grid = TileGrid(64 + 4 * 32, 64 + 3 * 32, 64, 32, Affine.identity())  # 5 x 4 tiles, k = 2
    rng = np.random.default_rng(0)
    rows, cols = np.divmod(np.arange(20), 5)
    keep = np.arange(20) != 7
    rows, cols = rows[keep], cols[keep]
    values = rng.standard_normal(rows.size).astype(np.float32)
    expected = np.full((grid.cells_y, grid.cells_x), np.nan, np.float32)
    for r in range(grid.cells_y):
        for c in range(grid.cells_x):
            cover = values[(rows <= r) & (r <= rows + 1) & (cols <= c) & (c <= cols + 1)]
            if cover.size:
                expected[r, c] = np.mean(cover.astype(np.float64))
    np.testing.assert_allclose(cell_mean(grid, rows, cols, values), expected, rtol=1e-6)


def test_read_tiles_refuses_embeddings_of_different_lengths(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from senclip.errors import SenclipError
    from senclip.mapping.embeddings import META_KEY, read_tiles

    table = pa.table({"row": [0, 0], "col": [0, 1], "embedding": [[1.0, 2.0, 3.0], [1.0, 2.0]]})
    pq.write_table(table.replace_schema_metadata({META_KEY: "{}"}), tmp_path / "t.parquet")
    with pytest.raises(SenclipError, match="different lengths"):
        read_tiles(tmp_path / "t.parquet")


def test_read_tiles_takes_a_fixed_size_list_column_and_refuses_an_empty_file(tmp_path):
    """GeoParquet writers other than ours (and pyarrow from numpy) store fixed-size lists; an empty file
    (no valid tile) is one line, not numpy's reshape error."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from senclip.errors import SenclipError
    from senclip.mapping.embeddings import META_KEY, read_tiles

    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    meta = {META_KEY: '{"tile": 64}'}
    as_lists = pa.table({"row": [0, 0, 1, 1], "col": [0, 1, 0, 1], "embedding": list(emb)})
    fixed = as_lists.set_column(2, "embedding", pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 3))
    assert isinstance(fixed.column("embedding").chunk(0), pa.FixedSizeListArray)
    for name, table in (("lists", as_lists), ("fixed", fixed)):
        pq.write_table(table.replace_schema_metadata(meta), tmp_path / f"{name}.parquet")
        rows, cols, got, recorded = read_tiles(tmp_path / f"{name}.parquet")
        np.testing.assert_array_equal(got, emb)
        assert rows.tolist() == [0, 0, 1, 1] and cols.tolist() == [0, 1, 0, 1] and recorded == {"tile": 64}
    for name, column in (("empty", pa.array([], pa.list_(pa.float32()))),
                         ("empty_fixed", pa.array([], pa.list_(pa.float32(), 3)))):
        no_ints = pa.array([], pa.int32())
        table = pa.table({"row": no_ints, "col": no_ints, "embedding": column})
        pq.write_table(table.replace_schema_metadata(meta), tmp_path / f"{name}.parquet")
        with pytest.raises(SenclipError, match="holds no tiles") as info:
            read_tiles(tmp_path / f"{name}.parquet")
        assert "\n" not in str(info.value)
    pq.write_table(pa.table({"row": [0], "col": [0], "embedding": ["text"]}).replace_schema_metadata(meta),
                   tmp_path / "strings.parquet")
    with pytest.raises(SenclipError, match="not a list of numbers"):
        read_tiles(tmp_path / "strings.parquet")
