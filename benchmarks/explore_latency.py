"""Latency of ``senclip explore``: map tiles of a 10,000² class-map COG, text queries over 100,000 tiles.

Builds (once, cached in ``--work``) a ``size`` x ``size`` uint8 class-map COG with a colour table
(``senclip.testing.rasters.class_map_cog``: 10 random classes in 32-px squares, as ``senclip map
--resolution input --stride 32`` writes, deflate, 512-px blocks, nearest overviews) and a
GeoParquet file in ``senclip embed``'s layout with ``tiles`` random unit embeddings of ``--dim``
(512, ViT-B-32's) on a 400-column tile grid. Then, in one process:

(a) **tiles**: 256-px PNG tiles of random web-mercator tiles on the map, ``--per-zoom`` at every
    zoom from the COG's overview zoom to its native zoom, requested one after the other
    (1) from the library (:meth:`Explorer.tile`: rio-tiler read + warp + PNG) and (2) over HTTP
    from the real server (uvicorn on 127.0.0.1, one keep-alive httpx client); p50 / p95 per zoom
    and over all, and the bare read of the same tiles (rio-tiler ``tile()`` without the PNG) to
    show where the time goes;
(b) **text queries**: ``--queries`` distinct phrases, each a first (uncached) query through
    ``/api/search`` over HTTP and through the library, p50 / p95, split into the text tower, the
    cosine scores (a 100,000 x 512 matrix-vector product, also given as GB/s against the read
    bandwidth this machine reaches in ``numpy.sum`` over the same array: the fraction of the
    memory peak), the heat grid and the in-memory GeoTIFF; the repeat of a query (kept result) and
    a heat-map tile after a query; the load time of the embeddings file.

The text tower is ViT-B-32's, randomly initialised (no weights are downloaded here): its cost is
that of the published weights, its scores are not. Torch takes one thread per core unless
``OMP_NUM_THREADS`` says otherwise (as ``senclip explore`` does); on a machine shared with other
work, ``OMP_NUM_THREADS=1`` keeps torch's spinning threads from fighting the other processes.

Example::

    python benchmarks/explore_latency.py --work /tmp/explore-bench
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def p50_p95(ms: list[float]) -> str:
    return "{:.1f} / {:.1f}".format(*np.percentile(ms, [50, 95]))


def embeddings_file(path: Path, n: int, dim: int, cols: int = 400, seed: int = 0) -> Path:
    """``n`` random unit embeddings in ``senclip embed``'s GeoParquet layout (64-px tiles, 10 m)."""
    import geopandas as gpd
    import pyarrow.parquet as pq
    import shapely
    from affine import Affine

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rows, colidx = np.divmod(np.arange(n), cols)
    tile, transform = 64, Affine(10, 0, 500_000, 0, -10, 5_600_000)
    x0, y0 = 500_000 + colidx * tile * 10.0, 5_600_000 - rows * tile * 10.0
    gdf = gpd.GeoDataFrame({"row": rows.astype(np.int32), "col": colidx.astype(np.int32),
                            "valid_fraction": np.ones(n, np.float32), "embedding": list(emb)},
                           geometry=shapely.box(x0, y0 - tile * 10, x0 + tile * 10, y0), crs="EPSG:32632")
    tmp = path.with_name(path.name + ".partial")
    gdf.to_parquet(tmp, index=False)
    table = pq.read_table(tmp)
    meta = {"source": "synthetic", "model": {"model": "ViT-B-32", "pretrained": None, "checkpoint": None},
            "bands": ["B04", "B03", "B02"], "transform": list(transform)[:6], "width": cols * tile,
            "height": (int(rows.max()) + 1) * tile, "tile": tile, "stride": tile,
            "crs": gdf.crs.to_wkt()}
    table = table.replace_schema_metadata({**table.schema.metadata, b"senclip": json.dumps(meta)})
    pq.write_table(table, path)
    tmp.unlink()
    return path


def sample_tiles(layer, per_zoom: int, seed: int = 0) -> dict[int, list[tuple[int, int, int]]]:
    """``per_zoom`` random tiles on the map at each zoom from the overview zoom to the native one."""
    from rio_tiler.constants import WEB_MERCATOR_TMS

    rng = np.random.default_rng(seed)
    out = {}
    for z in range(layer.minzoom, layer.maxzoom + 1):
        w, s, e, n = layer.mercator
        ul = WEB_MERCATOR_TMS.tile(*_lonlat(w, n), z)
        lr = WEB_MERCATOR_TMS.tile(*_lonlat(e, s), z)
        xs, ys = np.arange(ul.x, lr.x + 1), np.arange(ul.y, lr.y + 1)
        tiles = [(z, int(x), int(y)) for x in xs for y in ys if layer.covers(z, int(x), int(y))]
        picks = rng.choice(len(tiles), size=min(per_zoom, len(tiles)), replace=False)
        out[z] = [tiles[i] for i in picks]
    return out


def _lonlat(x: float, y: float) -> tuple[float, float]:
    from rasterio.warp import transform

    lon, lat = transform("EPSG:3857", "EPSG:4326", [x], [y])
    return lon[0], lat[0]


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - t) * 1000, out


def bench_tiles(args, work: Path) -> list[str]:
    import httpx

    from senclip.explore import Explorer, resolve_files
    from senclip.explore.app import LOOPBACK_HOSTS, create_app
    from senclip.explore.server import ServerThread
    from senclip.testing.rasters import class_map_cog

    cog = work / f"classes_{args.size}.tif"
    if not cog.exists():
        t, _ = timed(class_map_cog, cog, args.size)
        print(f"built {cog} in {t / 1000:.1f} s")
    t_open, explorer = timed(Explorer, resolve_files(cog))
    layer = explorer.classes
    tiles = sample_tiles(layer, args.per_zoom)
    server = ServerThread(create_app(explorer, LOOPBACK_HOSTS))
    lines = [f"class-map COG {args.size}x{args.size} ({cog.stat().st_size / 1e6:.1f} MB), zooms "
             f"{layer.minzoom}-{layer.maxzoom}; explorer ready in {t_open / 1000:.2f} s (legend areas read "
             "from the whole map)", "",
             "| zoom | tiles | bare read p50 / p95 ms | library (read + PNG) p50 / p95 ms "
             "| HTTP p50 / p95 ms |",
             "|---|---|---|---|---|"]
    every = {"bare": [], "lib": [], "http": []}
    with httpx.Client(base_url=server.url.rstrip("/"), timeout=60) as client:
        for z, zt in tiles.items():
            for x in zt[:3]:  # warm up GDAL's block cache and the connection at this zoom
                client.get(f"/tiles/classes/{x[0]}/{x[1]}/{x[2]}.png")
            bare = [timed(layer.read_tile, *t, indexes=1)[0] for t in zt]
            lib = [timed(explorer.tile, "classes", *t)[0] for t in zt]
            http = []
            for t in zt:
                ms, r = timed(client.get, f"/tiles/classes/{t[0]}/{t[1]}/{t[2]}.png")
                assert r.status_code == 200, r.text
                http.append(ms)
            for key, ms in (("bare", bare), ("lib", lib), ("http", http)):
                every[key] += ms
            lines.append(f"| {z} | {len(zt)} | {p50_p95(bare)} | {p50_p95(lib)} | {p50_p95(http)} |")
    server.stop()
    lines.append(f"| all | {len(every['lib'])} | {p50_p95(every['bare'])} | {p50_p95(every['lib'])} | "
                 f"{p50_p95(every['http'])} |")
    return lines


def read_bandwidth_gbs(a: np.ndarray, repeats: int = 5) -> float:
    """Best GB/s of ``a.sum()`` (a read of every byte with SIMD adds): the memory read peak here."""
    best = min(timed(np.sum, a)[0] for _ in range(repeats))
    return a.nbytes / best / 1e6


def bench_queries(args, work: Path) -> list[str]:
    import httpx
    import torch

    from senclip.commands.common import configure_runtime
    from senclip.explore.app import LOOPBACK_HOSTS, create_app
    from senclip.explore.search import TextSearch
    from senclip.explore.server import ServerThread
    from senclip.mapping.embeddings import cell_mean, tile_similarity
    from senclip.models import create_model

    configure_runtime()
    parquet = embeddings_file(work / f"tiles_{args.tiles}x{args.dim}.parquet", args.tiles, args.dim)
    torch.manual_seed(0)
    model = create_model("ViT-B-32")
    t_load, search = timed(TextSearch, model, parquet)
    phrases = [f"{a} {b}" for a in ("a photo of", "an aerial view of", "a satellite image of", "fields of",
                                    "a patch of") for b in ("vineyards", "a river", "solar panels",
                                                           "a forest", "houses", "a lake")][:args.queries]
    parts = {"text": [], "scores": [], "heat": [], "lib": []}
    for p in phrases:
        parts["text"].append(timed(model.encode_text, [p + " (part)"])[0])
        parts["scores"].append(timed(tile_similarity, model, search.unit, p + " (scores)")[0])
    sims = tile_similarity(model, search.unit, phrases[0])
    parts["heat"] = [timed(cell_mean, search.grid, search.rows, search.cols, sims)[0] for _ in phrases]
    for p in phrases:
        parts["lib"].append(timed(search.result, p + " (lib)")[0])
    vector = np.full(args.dim, 1 / np.sqrt(args.dim), np.float32)
    matvec = [timed(np.dot, search.unit, vector)[0] for _ in range(5)]
    gbs, peak = search.unit.nbytes / min(matvec) / 1e6, read_bandwidth_gbs(search.unit)
    from senclip.explore import Explorer, resolve_files

    cog = work / f"classes_{args.size}.tif"  # the base layer; heat tiles come from the heat grid
    server = ServerThread(create_app(Explorer(resolve_files(cog, embeddings=parquet), model), LOOPBACK_HOSTS))
    http, repeat, heat_tiles = [], [], []
    with httpx.Client(base_url=server.url.rstrip("/"), timeout=120) as client:
        client.get("/api/info")
        for p in phrases:
            ms, r = timed(client.get, "/api/search", params={"q": p})
            assert r.status_code == 200, r.text
            http.append(ms)
            repeat.append(timed(client.get, "/api/search", params={"q": p})[0])
        summary = r.json()
        (s, w), (n, e) = summary["best_bounds"]
        from rio_tiler.constants import WEB_MERCATOR_TMS

        for z in (10, 12, 14):
            t = WEB_MERCATOR_TMS.tile((w + e) / 2, (s + n) / 2, z)
            for _ in range(5):
                ms, r = timed(client.get, f"/tiles/search/{z}/{t.x}/{t.y}.png",
                              params={"q": phrases[-1], "threshold": summary["median"]})
                assert r.status_code == 200, r.text
                heat_tiles.append(ms)
    server.stop()
    size = f"{args.tiles:,} tile embeddings x {args.dim} (float32, {search.unit.nbytes / 1e6:.0f} MB)"
    return [f"{size}: loaded in {t_load / 1000:.2f} s; {len(phrases)} distinct phrases, ViT-B-32 text tower, "
            f"{torch.get_num_threads()} torch threads", "",
            "| step | p50 / p95 ms |", "|---|---|",
            f"| text query over HTTP (`/api/search`, first time) | {p50_p95(http)} |",
            f"| the same in the library (`TextSearch.result`) | {p50_p95(parts['lib'])} |",
            f"| of which: text tower | {p50_p95(parts['text'])} |",
            f"| of which: cosine scores (text tower + matrix-vector product) | {p50_p95(parts['scores'])} |",
            f"| of which: heat grid (cell means) | {p50_p95(parts['heat'])} |",
            f"| repeated query (kept result) over HTTP | {p50_p95(repeat)} |",
            f"| heat-map tile after a query, over HTTP | {p50_p95(heat_tiles)} |", "",
            f"matrix-vector product alone: {min(matvec):.1f} ms = {gbs:.1f} GB/s; `numpy.sum` over the same "
            f"array reads {peak:.1f} GB/s here: {gbs / peak:.2f} of the memory read peak"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/senclip-explore-bench", help="folder for the built files (kept)")
    p.add_argument("--size", type=int, default=10_000, help="class-map COG side in pixels (default 10000)")
    p.add_argument("--per-zoom", type=int, default=60, help="tiles timed per zoom (default 60)")
    p.add_argument("--tiles", type=int, default=100_000, help="tile embeddings (default 100000)")
    p.add_argument("--dim", type=int, default=512, help="embedding size (default 512, ViT-B-32)")
    p.add_argument("--queries", type=int, default=20, help="distinct phrases (default 20)")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    import os

    print(f"{os.cpu_count()} CPUs, load average {open('/proc/loadavg').read().split()[0]} at the start; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    print("\n".join(bench_tiles(args, work)), flush=True)
    print()
    print("\n".join(bench_queries(args, work)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
