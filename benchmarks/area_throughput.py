"""Time split, throughput and memory of the area pipeline (``composite``, ``map --bbox``), local catalogue.

Builds once (cached in ``--work``) a local STAC catalogue with :func:`senclip.testing.areas.benchmark_area`:
one Sentinel-2 tile covering an area of ``--km`` x ``--km`` km, 6 dates (baselines before and from
04.00), 10 bands + SCL as deflate COGs on local disk (asset hrefs are file paths, so the figures are
the pipeline's, not a loopback HTTP server's), served by ``rustac serve``. Each measured run is a fresh
subprocess, so its peak RSS is its own. Reports:

(a) the time split of ``map --bbox`` with the default SenCLIP architecture (ViT-B-32-quickgelu, the
    ``senclip`` preprocessing; seeded random weights, since the published ones cannot be downloaded
    here: the same compute): search (catalogue + radiometry decisions), load (odc-stac), harmonise +
    mask + fuse + composite, composite COG write, inference (map blocks: window reads, tiles, model),
    class-map write; with the tiles/s, GFLOP/s and the fraction of the bf16 matmul peak measured here;
(b) composite megapixels/s (area pixels per second of load + composite) and the load's ratio to a bare
    rasterio read of the same windows (every block, every item reaching it, every band and SCL on the
    10 m grid, and at native resolution, on the same number of threads); the load as senclip does it
    (windowed reads of the items on the area's grid, odc-stac for the others) and with odc-stac alone;
(c) peak RSS of ``composite`` for two block sizes, and for 1x and 4x the area (``--km`` and twice it).

Example::

    python benchmarks/area_throughput.py --km 20 --blocks 512 1024 --work /tmp/area_bench
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def build(work: Path, km: float) -> None:
    """Write the local catalogue of ``km`` x ``km`` (in its own process: see :func:`catalogue`)."""
    from senclip.testing.areas import area_items, benchmark_area, write_area_assets
    from senclip.testing.catalogues import write_collections

    area = benchmark_area(km)
    root = work / f"km{km:g}"
    t = time.perf_counter()
    write_area_assets(root / "assets", area)
    write_collections(root / "stac", area_items(str(root / "assets"), area, ("earth-search",)))
    (root / "done").write_text(f"{time.perf_counter() - t:.1f}")


def catalogue(work: Path, km: float):
    """``(area, server)``: the cached local catalogue of ``km`` x ``km``, served by ``rustac serve``.

    It is built in a subprocess, so that this process stays small: a child inherits its parent's
    resident size at fork, and the children's peak RSS is what is measured.
    """
    from senclip.testing import StacServer
    from senclip.testing.areas import benchmark_area

    area = benchmark_area(km)
    root = work / f"km{km:g}"
    done = root / "done"
    if not done.is_file():
        subprocess.run(
            [sys.executable, __file__, "--build", str(km), "--work", str(work)],
            check=True,
            env={"PYTHONPATH": str(SRC), **_env()},
        )
        print(f"built the {km:g} km catalogue in {done.read_text()} s", file=sys.stderr)
    files = [root / "stac" / "earth-search.collection.json", root / "stac" / "earth-search.items.json"]
    return area, StacServer(files).start()


def warm(work: Path, km: float) -> None:
    """Read every asset once (page cache), so cold disk reads favour no run."""
    for p in (work / f"km{km:g}" / "assets").rglob("*.tif"):
        p.read_bytes()


def child(args) -> None:
    """One measured run in this process; prints a JSON line."""
    sys.path.insert(0, str(SRC))
    import odc.stac  # noqa: F401  (imported before the baseline is taken)
    import torch

    import senclip.areas.composites as composites
    from senclip.acquire.area import parse_bbox
    from senclip.acquire.area_items import CompositeSpec, parse_time
    from senclip.areas.composites import build_composite
    from senclip.areas.maps import map_area
    from senclip.areas.plan import AreaRequest, plan_area
    from senclip.data.series.io import S2_BANDS
    from senclip.net import RetryPolicy

    base_rss = peak_rss_mb()
    blocks_rss = []
    assemble = composites.write_composite

    def measured(*a, **kw):  # the peak of the block phase, before the assembly starts
        blocks_rss.append(peak_rss_mb())
        return assemble(*a, **kw)

    composites.write_composite = measured
    if args.odc_only:  # every item through odc-stac, as before the windowed reads of on-grid items
        import senclip.acquire.area_read as area_read

        area_read.on_grid = lambda scene, grid: False
    bbox = parse_bbox(args.bbox)
    start, end = parse_time("2022-01-01/2022-12-31")
    bands = tuple(S2_BANDS) if args.child == "composite" else ("B04", "B03", "B02")
    spec = CompositeSpec(bands=bands, threads=args.threads)
    req = AreaRequest(
        args.url,
        bbox,
        start,
        end,
        spec,
        "earth-search",
        block_size=args.block,
        policy=RetryPolicy(),
        max_cloud=100.0,
    )
    out = Path(args.out)
    t = time.perf_counter()
    plan = plan_area(req, max_area_km2=1e9)
    search = time.perf_counter() - t
    res = {
        "mode": args.child,
        "block": args.block,
        "px": plan.grid.width * plan.grid.height,
        "scenes": len(plan.scenes),
        "search_s": search,
    }
    if args.child == "composite":
        summary = build_composite(plan, out, out.with_name(out.name + ".blocks"), progress=False)
        res |= _blocks(out.with_name(out.name + ".blocks")) | {
            "composite_write_s": summary["seconds"]["assemble"],
            "blocks_s": summary["seconds"]["blocks"],
        }
    else:
        from senclip.commands.common import configure_runtime
        from senclip.mapping.mapper import MapOptions
        from senclip.mapping.scenes import ClassifierSpec, MapJob, ModelSpec, build_job
        from senclip.models.precision import resolve_precision

        configure_runtime()
        precision, _ = resolve_precision("auto", torch.device("cpu"))
        torch.manual_seed(0)
        job = MapJob(
            ModelSpec("ViT-B-32-quickgelu", None, None, None, "cpu", "senclip", precision),
            ClassifierSpec("eurosat", "all"),
            MapOptions(batch_size=64, progress=False, quicklook=False),
        )
        t = time.perf_counter()
        model, _ = build_job(job)
        res["model_build_s"] = time.perf_counter() - t
        cache = out.with_name(out.stem + "_composites")
        summary = map_area(plan, job, out, cache, progress=False)
        comp = summary["composite_summary"]
        res |= _blocks(cache / "composite.blocks") | {
            "composite_write_s": comp["seconds"]["assemble"],
            "blocks_s": comp["seconds"]["blocks"],
            "inference_s": summary["seconds"]["blocks"],
            "map_write_s": summary["seconds"]["assemble"],
            "precision": precision,
            "tile": model.image_tower.image_size,
            "tiles": summary["tiles"],
        }
        res |= _machine(model, precision)
    res["peak_rss_mb"] = peak_rss_mb()
    res["base_rss_mb"] = base_rss
    res["blocks_rss_mb"] = blocks_rss[0] if blocks_rss else None
    res["reader"] = "odc-stac only" if args.odc_only else "windowed reads + odc-stac"
    print(json.dumps(res))


def peak_rss_mb() -> float:
    """This process's own peak resident size (``VmHWM``; ``ru_maxrss`` would include the parent's at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _blocks(folder: Path) -> dict:
    recs = [json.loads(ln) for ln in (folder / "blocks.jsonl").read_text().splitlines()]
    return {
        "load_s": sum(r.get("seconds", {}).get("load", 0) for r in recs),
        "composite_s": sum(r.get("seconds", {}).get("composite", 0) for r in recs),
        "n_blocks": len(recs),
    }


def _machine(model, precision: str) -> dict:
    """FLOPs of one tile through the image tower and the matmul peak of this machine in ``precision``."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from machine import flops_of, matmul_gflops

    x = torch.zeros(2, 3, 224, 224)
    flops = flops_of(lambda: model.encode_image(x), 2)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return {"tile_gflops": flops / 1e9, "peak_gflops": matmul_gflops(dtype)}


def run_child(
    mode: str, url: str, bbox: str, block: int, out: Path, threads: int, odc_only: bool = False
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--url",
        url,
        "--bbox",
        bbox,
        "--block",
        str(block),
        "--out",
        str(out),
        "--threads",
        str(threads),
        *(["--odc-only"] if odc_only else []),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env={"PYTHONPATH": str(SRC), **_env()})
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def bare_read(area, km: float, work: Path, block: int, threads: int, native: bool) -> tuple[float, int]:
    """Seconds to read, with rasterio alone, the windows the composite's blocks load; and the pixels read.

    ``native``: each band at its own resolution (20 m bands: a quarter of the pixels); else every band
    on the 10 m grid (``out_shape``, nearest), the pixels odc-stac delivers.
    """
    from concurrent.futures import ThreadPoolExecutor

    import rasterio
    from rasterio.windows import from_bounds

    from senclip.acquire.area import area_grid, parse_bbox
    from senclip.testing.areas import BANDS, asset_path

    grid = area_grid(parse_bbox(",".join(map(str, area.bbox))))
    tile = area.tiles[0]
    files = [
        work / f"km{km:g}" / "assets" / asset_path(tile, s, "plain", b)  # what Earth Search items point at
        for s in area.scenes
        for b in (*BANDS, "SCL")
    ]

    def read(args):
        path, b = args
        t = grid.window_transform(b)
        bounds = (t.c, t.f - b.height * 10, t.c + b.width * 10, t.f)
        with rasterio.open(path) as src:
            window = from_bounds(*bounds, transform=src.transform)
            shape = None if native else (b.height, b.width)
            return src.read(1, window=window, out_shape=shape).size

    jobs = [(f, b) for b in grid.blocks(block) for f in files]
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        n = sum(pool.map(read, jobs))
    return time.perf_counter() - t, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--km", type=float, default=20.0, help="side of the area in km (default 20)")
    p.add_argument("--blocks", type=int, nargs=2, default=[512, 1024], help="two block sizes in pixels")
    p.add_argument("--threads", type=int, default=4, help="read threads per block (default 4)")
    p.add_argument("--work", default="/tmp/senclip_area_bench")
    p.add_argument("--no-map", action="store_true", help="skip the map --bbox run")
    p.add_argument("--no-scale", action="store_true", help="skip the 4x area run")
    p.add_argument("--child", choices=("composite", "map"))
    p.add_argument("--build", type=float, help=argparse.SUPPRESS)
    p.add_argument("--odc-only", action="store_true", help="child: every item through odc-stac")
    p.add_argument("--url")
    p.add_argument("--bbox")
    p.add_argument("--block", type=int)
    p.add_argument("--out")
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.build:
        sys.path.insert(0, str(SRC))
        return build(Path(args.work), args.build)
    sys.path.insert(0, str(SRC))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    area, stac = catalogue(work, args.km)
    bbox = ",".join(map(str, area.bbox))
    rows = []
    try:
        warm(work, args.km)
        for block in args.blocks:
            out = work / "runs" / f"composite_{args.km:g}_{block}" / "c.tif"
            _fresh(out.parent)
            r = run_child("composite", stac.url, bbox, block, out, args.threads)
            r["bare_read_s"], r["bare_px"] = bare_read(area, args.km, work, block, args.threads, False)
            r["native_read_s"], r["native_px"] = bare_read(area, args.km, work, block, args.threads, True)
            rows.append(r)
        out = work / "runs" / f"composite_{args.km:g}_{args.blocks[1]}_odc" / "c.tif"
        _fresh(out.parent)
        r = run_child("composite", stac.url, bbox, args.blocks[1], out, args.threads, odc_only=True)
        rows.append(r)
        if not args.no_map:
            out = work / "runs" / f"map_{args.km:g}" / "landuse.tif"
            _fresh(out.parent)
            rows.append(run_child("map", stac.url, bbox, args.blocks[1], out, args.threads))
    finally:
        stac.stop()
    if not args.no_scale:
        big, stac = catalogue(work, args.km * 2)
        try:
            warm(work, args.km * 2)
            out = work / "runs" / f"composite_{args.km * 2:g}_{args.blocks[1]}" / "c.tif"
            _fresh(out.parent)
            r = run_child(
                "composite", stac.url, ",".join(map(str, big.bbox)), args.blocks[1], out, args.threads
            )
            r["km"] = args.km * 2
            rows.append(r)
        finally:
            stac.stop()
    report(rows, args)


def _fresh(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def report(rows: list[dict], args) -> None:
    print(json.dumps(rows, indent=1), file=sys.stderr)
    print(
        f"\narea {args.km:g} x {args.km:g} km, 6 dates, {args.threads} read threads; "
        f"composite = 10 bands, map = B04,B03,B02"
    )
    print(
        "| run | reader | block px | blocks | area Mpx | search s | load s | mask+composite s | "
        "composite write s | inference s | map write s | composite Mpx/s | load / bare read | "
        "peak RSS MB: blocks, all (imports) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mpx = r["px"] / 1e6
        rate = mpx / (r["load_s"] + r["composite_s"])
        bare = next((b["bare_read_s"] for b in rows if "bare_read_s" in b and b["block"] == r["block"]), None)
        ratio = f"{r['load_s'] / bare:.2f}" if bare and r["mode"] == "composite" and "km" not in r else ""
        name = r["mode"] + (f" ({r['km']:g} km)" if "km" in r else "")
        print(
            f"| {name} | {r['reader']} | {r['block']} | {r['n_blocks']} | {mpx:.2f} | {r['search_s']:.2f} | "
            f"{r['load_s']:.1f} | "
            f"{r['composite_s']:.1f} | {r['composite_write_s']:.1f} | {r.get('inference_s', 0):.1f} | "
            f"{r.get('map_write_s', 0):.1f} | {rate:.2f} | {ratio} | {r['blocks_rss_mb'] or 0:.0f}, "
            f"{r['peak_rss_mb']:.0f} ({r['base_rss_mb']:.0f}) |"
        )
    for r in rows:
        if "bare_read_s" in r:
            print(
                f"bare rasterio read, block {r['block']}: every band on the 10 m grid "
                f"{r['bare_px'] / 1e6:.0f} Mpx "
                f"in {r['bare_read_s']:.1f} s ({r['bare_px'] / 1e6 / r['bare_read_s']:.1f} Mpx/s); at native "
                f"resolution {r['native_px'] / 1e6:.0f} Mpx in {r['native_read_s']:.1f} s; the load "
                f"{r['load_s']:.1f} s = {r['load_s'] / r['native_read_s']:.2f} x the native read"
            )
        if "tiles" in r:
            gflops = r["tiles"] * r["tile_gflops"] / r["inference_s"]
            print(
                f"inference: {r['tiles']} tiles of {r['tile']} px in {r['inference_s']:.1f} s "
                f"({r['tiles'] / r['inference_s']:.2f} tiles/s, {r['tile_gflops']:.2f} GFLOP/tile, "
                f"{gflops:.0f} GFLOP/s = {gflops / r['peak_gflops']:.1%} of the {r['precision']} matmul peak "
                f"{r['peak_gflops']:.0f} GFLOP/s measured here)"
            )


if __name__ == "__main__":
    main()
