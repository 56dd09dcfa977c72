"""Throughput of ``senclip acquire chips`` against a loopback STAC API and COG server.

Builds larger scenes from the BigEarthNet example patches (each patch
mirror-tiled ``--tile`` x ``--tile`` times into a COG with 256 px blocks, plus
SCL), serves them with the Range-capable loopback server (``--latency``
seconds added to every request, to mimic an object store) and ``rustac
serve``, then cuts ``--points-per-scene`` random chips per scene twice: with
concurrency 1 and with ``--concurrency N`` (after a one-chip warm-up that pays
the imports and GDAL/PROJ initialisation). GDAL's block cache is disabled
(``CPL_VSIL_CURL_NON_CACHED``) so that both runs fetch every byte they use.

Reports chips/s for both runs (and their ratio, measured in the same run),
requests and bytes read per chip, and those bytes as a fraction of the full
assets the chip uses (3 bands + SCL of the chosen scene: range reads must
fetch a small fraction).

Usage:
    python benchmarks/acquire_throughput.py [--tile 12] [--points-per-scene 8]
        [--concurrency 8] [--latency 0.02] [--chip-px 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import pandas as pd

from senclip.acquire.chips import ChipSpec
from senclip.acquire.pipeline import ChipsOptions, acquire_chips
from senclip.acquire.points import read_points
from senclip.net import RetryPolicy
from senclip.testing import RangeServerProcess, SceneSpec, StacServer, build_sample_catalog

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("SENCLIP_TEST_DATA", REPO.parent / "shared" / "data")) / "bigearthnet_s2_example"
)
BANDS = ("B02", "B03", "B04")


def make_points(
    big: Path, scenes: list[SceneSpec], per_scene: int, tile: int, chip_px: int, seed: int
) -> pd.DataFrame:
    """Random points inside each scene, at least half a chip from its edges."""
    import rasterio
    from rasterio.warp import transform

    rng = random.Random(seed)
    rows = []
    for s in scenes:
        with rasterio.open(big / s.patch / f"{s.patch}_B02.tif") as src:
            size, crs, t = src.width * tile, src.crs, src.transform
        for k in range(per_scene):
            r, c = (rng.randrange(chip_px // 2, size - chip_px // 2) for _ in range(2))
            xs, ys = transform(crs, "EPSG:4326", [t.c + (c + 0.5) * 10], [t.f - (r + 0.5) * 10])
            rows.append({"point_id": f"{s.item_id}_{k}", "lat": ys[0], "lon": xs[0], "date": s.datetime[:10]})
    return pd.DataFrame(rows)


def run_once(
    points: pd.DataFrame, out: Path, stac_url: str, cogs: RangeServerProcess, concurrency: int, chip_px: int
) -> dict:
    cogs.reset_stats()
    opts = ChipsOptions(
        stac_url=stac_url,
        window_days=5,
        max_cloud=100.0,
        concurrency=concurrency,
        spec=ChipSpec(bands=BANDS, chip_px=chip_px),
        policy=RetryPolicy(timeout=30),
    )
    t0 = time.perf_counter()
    summary = acquire_chips(points, out, opts, progress=False)
    seconds = time.perf_counter() - t0
    ok = summary.counts.get("ok", 0)
    return {
        "concurrency": concurrency,
        "chips": ok,
        "seconds": round(seconds, 3),
        "chips_per_s": round(ok / seconds, 2),
        "requests": sum(cogs.requests.values()),
        "bytes": sum(cogs.bytes_sent.values()),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BigEarthNet-S2 example folder")
    p.add_argument("--tile", type=int, default=12, help="mirror-tiling factor of each patch (default: 12)")
    p.add_argument("--points-per-scene", type=int, default=8, help="chips per scene (default: 8)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrency of the parallel run (default: 8)")
    p.add_argument("--latency", type=float, default=0.02, help="seconds added per request (default: 0.02)")
    p.add_argument("--chip-px", type=int, default=100, help="chip size (default: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)

    os.environ["CPL_VSIL_CURL_NON_CACHED"] = "/vsicurl/http://127.0.0.1"
    patches = sorted(d.name for d in args.data.iterdir() if d.is_dir())
    scenes = [
        SceneSpec(f"S{i}", patch, f"{patch[11:15]}-{patch[15:17]}-{patch[17:19]}T10:00:00Z", 1.0)
        for i, patch in enumerate(patches)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cat" / "assets").mkdir(parents=True)
        cogs = RangeServerProcess(tmp / "cat" / "assets", latency=args.latency).start()
        t0 = time.perf_counter()
        paths = build_sample_catalog(
            args.data, tmp / "cat", scenes, cogs.url(), tile=args.tile, blocksize=256
        )
        build_s = time.perf_counter() - t0
        points = make_points(args.data, scenes, args.points_per_scene, args.tile, args.chip_px, args.seed)
        points.to_csv(tmp / "points.csv", index=False)
        points = read_points(tmp / "points.csv")
        asset_bytes = sum(
            (paths["assets"] / s.item_id / f"{b}.tif").stat().st_size for s in scenes for b in (*BANDS, "SCL")
        ) / len(scenes)
        with StacServer([paths["collection"], paths["items"]]) as stac:
            run_once(points.iloc[:1], tmp / "warmup", stac.url, cogs, 1, args.chip_px)  # imports, PROJ, GDAL
            serial = run_once(points, tmp / "serial", stac.url, cogs, 1, args.chip_px)
            parallel = run_once(points, tmp / "parallel", stac.url, cogs, args.concurrency, args.chip_px)
        cogs.stop()
    per_chip = serial["bytes"] / max(serial["chips"], 1)
    result = {
        "scenes": len(scenes),
        "scene_px": 120 * args.tile,
        "chip_px": args.chip_px,
        "latency_s": args.latency,
        "catalog_build_s": round(build_s, 2),
        "serial": serial,
        "parallel": parallel,
        "speedup": round(parallel["chips_per_s"] / serial["chips_per_s"], 2),
        "requests_per_chip": round(serial["requests"] / max(serial["chips"], 1), 1),
        "bytes_per_chip": round(per_chip),
        "asset_bytes_per_chip": round(asset_bytes),
        "fraction_read": round(per_chip / asset_bytes, 4),
    }
    print(
        f"scenes: {len(scenes)} of {120 * args.tile}x{120 * args.tile} px (10 m), blocks 256 px; "
        f"chip {args.chip_px} px; bands {','.join(BANDS)} + SCL; latency {args.latency * 1000:.0f} ms/request"
    )
    for r in (serial, parallel):
        print(
            f"concurrency {r['concurrency']:>2}: {r['chips']} chips in {r['seconds']:.2f} s = "
            f"{r['chips_per_s']:.2f} chips/s, {r['requests']} requests, {r['bytes'] / 1e6:.2f} MB"
        )
    print(
        f"speed-up x{result['speedup']}; per chip: {result['requests_per_chip']} requests, "
        f"{per_chip / 1e3:.0f} kB read of {asset_bytes / 1e6:.2f} MB of assets "
        f"({100 * result['fraction_read']:.1f} %)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
