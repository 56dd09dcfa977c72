"""The flags of an area request, shared by ``composite``, ``map --bbox|--area`` and ``map-pixels --bbox``."""

from __future__ import annotations

import argparse

from senclip.commands.common import add_retry_args, add_stac_args, retry_policy

MAX_AREA_KM2 = 1000.0
"""Default ``--max-area-km2``: about 32 x 32 km, an hour or two of compositing on a laptop."""
BLOCK_SIZE = 1024
"""Default ``--block-size`` in pixels (docs/mapping.md: memory and time per block size)."""
AREA_HELP = """\
area: --bbox W,S,E,N (WGS84 degrees; the grid's whole rectangle is kept) or --area FILE
(GeoJSON, GeoPackage, GeoParquet, Shapefile; polygons unioned, pixels outside them nodata).
The grid: the UTM zone of the area's centre (or --crs), 10 m pixels with edges on multiples
of 10 m, so runs over overlapping areas line up. Work goes block by block (--block-size);
finished blocks are kept, so a rerun of the same command continues where it stopped, and
--dask-scheduler spreads the blocks over a Dask cluster with the same result."""


def _bands(text: str) -> tuple[str, ...]:
    bands = tuple(b.strip().upper() for b in text.split(",") if b.strip())
    if not bands:
        raise argparse.ArgumentTypeError("give band codes separated by commas, e.g. B04,B03,B02")
    return bands


def _classes(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"SCL classes are integers 0-11 separated by commas, not {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one SCL class, e.g. 3,8,9,10")
    return values


def add_area_args(
    p: argparse.ArgumentParser, *, required: bool, time: bool = True, bands: bool = True, dask: bool = True
) -> None:
    """The area, catalogue, compositing, grid and robustness flags (see :data:`AREA_HELP`)."""
    from senclip.acquire.stac import MAX_ITEMS
    from senclip.bands import SCL_UNUSABLE

    g = p.add_argument_group("area", AREA_HELP)
    where = g.add_mutually_exclusive_group(required=required)
    where.add_argument(
        "--bbox", metavar="W,S,E,N", default=None, help="area as a WGS84 bounding box (degrees)"
    )
    where.add_argument(
        "--area",
        metavar="FILE",
        default=None,
        help="area as polygons: GeoJSON, GeoPackage, GeoParquet or Shapefile",
    )
    if time:
        g.add_argument(
            "--time",
            metavar="START/END",
            default=None,
            help="acquisition dates to composite, inclusive (e.g. 2022-04-01/2022-09-30)",
        )
    g.add_argument(
        "--crs",
        default=None,
        metavar="EPSG:N",
        help="projected CRS in metres of the output grid (default: the UTM zone of the area's centre; "
        "needed beyond 84° latitude)",
    )
    g.add_argument(
        "--max-area-km2",
        type=float,
        default=MAX_AREA_KM2,
        help=f"refuse larger areas unless --yes (default: {MAX_AREA_KM2:g})",
    )
    g.add_argument("--yes", action="store_true", help="go ahead with an area above --max-area-km2")
    s = p.add_argument_group("STAC search")
    add_stac_args(s, required=False, note=" (needed with --bbox/--area)")
    s.add_argument(
        "--max-cloud",
        type=float,
        default=80.0,
        help="skip scenes with more scene-wide cloud than this percentage (default: 80)",
    )
    s.add_argument(
        "--max-items",
        type=int,
        default=MAX_ITEMS,
        help=f"refuse a search matching more items than this (default: {MAX_ITEMS}); a season is never "
        "composited from a truncated list",
    )
    c = p.add_argument_group("compositing")
    if bands:
        c.add_argument(
            "--download-bands",
            dest="download_bands",
            type=_bands,
            default=None,
            metavar="B04,B03,…",
            help="bands to composite, in output order (default: the model's bands; composite: B04,B03,B02)",
        )
    c.add_argument(
        "--method",
        default="median",
        choices=("median", "first-valid"),
        help="median of the clear observations per band (default), or first-valid: the clear pixel "
        "of the least cloudy scene",
    )
    c.add_argument(
        "--mask-classes",
        type=_classes,
        default=SCL_UNUSABLE,
        metavar="C1,C2,…",
        help="SCL classes masked before compositing (default: "
        f"{','.join(map(str, SCL_UNUSABLE))}: no data, saturated, cloud shadow, clouds, cirrus)",
    )
    c.add_argument(
        "--resampling",
        default="nearest",
        choices=("nearest", "bilinear", "cubic", "average"),
        help="resampling of 20/60 m bands and of scenes from another UTM zone (default: nearest)",
    )
    c.add_argument(
        "--fill",
        default="median",
        choices=("median", "none"),
        help="monthly composites: a month without a clear observation takes the median of the "
        "pixel's other months (default; flagged 2 in its QA band), or stays nodata. It changes the "
        "composite file only: map-pixels reads the months whose QA is 1 and leaves the missing ones "
        "to the model",
    )
    r = p.add_argument_group("blocks and robustness")
    r.add_argument(
        "--block-size",
        type=int,
        default=BLOCK_SIZE,
        metavar="PX",
        help=f"block side in pixels; bounds memory (default: {BLOCK_SIZE}; map: rounded to a "
        "multiple of --stride)",
    )
    if dask:
        r.add_argument(
            "--dask-scheduler",
            default=None,
            metavar="ADDRESS",
            help="spread the blocks over a running Dask cluster (tcp://host:port); its workers must "
            "see the output folder",
        )
    r.add_argument("--read-threads", type=int, default=4, help="files read at once per block (default: 4)")
    add_retry_args(r)


def download_bands(args: argparse.Namespace, default: tuple[str, ...]) -> tuple[str, ...]:
    """``--download-bands`` (band codes, or a band-set name of :mod:`senclip.bands`: ``L2A``, ``RGB``, …)."""
    from senclip.bands import parse_bands

    if not args.download_bands:
        return tuple(default)
    return tuple(parse_bands(",".join(args.download_bands)))


def check_model_bands(bands: tuple[str, ...], tower: tuple[str, ...]) -> None:
    """Refuse ``--download-bands`` lacking a band the model's tower takes, before anything is composited."""
    from senclip.errors import SenclipError

    missing = [b for b in tower if b not in bands]
    if missing:
        raise SenclipError(
            f"--download-bands {','.join(bands)} lacks {','.join(missing)}, which the model takes "
            f"({','.join(tower)}); add them, or leave --download-bands out to composite the model's bands"
        )


def has_area(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "bbox", None) or getattr(args, "area", None))


def area_of(args: argparse.Namespace):
    from senclip.acquire.area import parse_bbox, read_area

    return parse_bbox(args.bbox) if args.bbox else read_area(args.area)


def request_from_args(args: argparse.Namespace, bands: tuple[str, ...], year: int | None = None):
    """The :class:`~senclip.areas.plan.AreaRequest` of the flags (every input check, no network)."""
    import datetime as dt

    from senclip.acquire.area_items import CompositeSpec, parse_time
    from senclip.areas.plan import AreaRequest
    from senclip.errors import SenclipError

    if not args.stac_url:
        raise SenclipError(
            "--stac-url is needed with --bbox/--area (e.g. https://earth-search.aws.element84.com/v1)"
        )
    area = area_of(args)
    if year is not None:
        if getattr(args, "time", None):
            raise SenclipError("give --year for monthly composites or --time for one composite, not both")
        if not 1984 <= year <= 2100:
            raise SenclipError(f"--year {year}: not a Sentinel-2 year")
        start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    else:
        if not getattr(args, "time", None):
            raise SenclipError("--time START/END is needed with --bbox/--area (e.g. 2022-04-01/2022-09-30)")
        start, end = parse_time(args.time)
    if args.retries < 0 or args.timeout <= 0 or args.read_threads < 1 or args.max_items < 1:
        raise SenclipError("--retries must be >= 0, --timeout > 0, --read-threads and --max-items >= 1")
    spec = CompositeSpec(
        bands=tuple(bands),
        method=args.method,
        mask_classes=tuple(args.mask_classes),
        resampling=args.resampling,
        year=year,
        fill=args.fill,
        threads=args.read_threads,
    )
    policy = retry_policy(args)
    return AreaRequest(
        args.stac_url,
        area,
        start,
        end,
        spec,
        args.collection,
        args.signer,
        args.crs,
        args.max_cloud,
        args.block_size,
        policy,
        args.max_items,
    )


def default_cache(output: str) -> str:
    """The composites' folder beside a map: ``landuse.tif`` -> ``landuse_composites/``."""
    from pathlib import Path

    out = Path(output)
    return str(out.with_name(out.stem + "_composites"))


def print_summary(summary: dict) -> int:
    """Stderr lines of a run's failed blocks; exit status 1 when some failed (a rerun retries them)."""
    import sys

    for f in summary.get("failed", []):
        print(f"error: {summary['what']} block {f['block']}: {f['error']}", file=sys.stderr)
    if summary.get("failed"):
        print(
            f"{len(summary['failed'])} of {summary['blocks']} blocks failed and nothing was assembled; run "
            "the same command again to retry them (finished blocks are kept)",
            file=sys.stderr,
        )
        return 1
    return 0


__all__ = [
    "AREA_HELP",
    "BLOCK_SIZE",
    "MAX_AREA_KM2",
    "add_area_args",
    "area_of",
    "check_model_bands",
    "default_cache",
    "download_bands",
    "has_area",
    "print_summary",
    "request_from_args",
]
