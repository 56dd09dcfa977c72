"""``senclip composite``: an area and a season (or a year) → a cloud-masked, harmonised composite."""

from __future__ import annotations

import argparse
import json

from senclip.commands.area_args import add_area_args, download_bands, print_summary, request_from_args
from senclip.commands.common import add_overwrite_arg

DESCRIPTION = """\
Search a STAC API for the Sentinel-2 L2A scenes of an area in a time range, and write one
composite on a 10 m grid as a Cloud-Optimized GeoTIFF (uint16 reflectance x 10000, GDAL scale
0.0001, nodata 0, band descriptions, provenance tags) with a STAC Item beside it
(OUT without .tif + .item.json).

Per scene, before compositing: the BOA offset of processing baseline >= 04.00 removed as the
scene's own metadata says (never by date; docs/acquire.md), and pixels of the masked SCL classes
dropped. Scenes of one day (tiles, UTM zones) count as one observation. Then per band the median
of the clear observations (or --method first-valid). With --monthly --year YYYY: 12 monthly
composites x bands, each followed by a QA band (1 = clear observations that month, 2 = none,
the values filled by --fill; 0 = nodata), in the stack layout `senclip map-pixels` reads
(TimeSenCLIP), which takes the months whose QA is 1.

Loading uses odc-stac (one grid, reprojection across UTM zones). Work goes block by block and
is resumable: rerun the same command after a crash or a failed block. See docs/areas.md."""

EPILOG = """\
examples:
  senclip composite --bbox 11.30,46.45,11.45,46.55 --time 2022-06-01/2022-08-31 \\
      --stac-url https://earth-search.aws.element84.com/v1 --out summer.tif
  senclip composite --area farm.gpkg --monthly --year 2022 \\
      --stac-url https://planetarycomputer.microsoft.com/api/stac/v1 --out farm_2022.tif
"""



def register(subparsers) -> None:
    p = subparsers.add_parser(
        "composite",
        help="cloud-masked, harmonised Sentinel-2 composite of an area (COG)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", required=True, metavar="OUT.tif", help="output composite (Cloud-Optimized GeoTIFF)"
    )
    p.add_argument(
        "--monthly",
        action="store_true",
        help="12 monthly composites of --year (TimeSenCLIP's input) instead of one over --time",
    )
    p.add_argument("--year", type=int, default=None, help="the year of --monthly")
    add_area_args(p, required=True)
    add_overwrite_arg(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.commands.common import plan_options
    from senclip.outputs import Plan
    from senclip.stacitem import item_path

    return Plan(
        "composite",
        outputs=[args.out, item_path(args.out)],
        inputs=[args.area],
        required=[args.area] if args.area else [],
        options=plan_options(args),
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from senclip.areas.composites import composite_area
    from senclip.areas.plan import plan_area
    from senclip.errors import SenclipError

    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise SenclipError(f"--out must be a .tif file, got {out.name}")
    if args.monthly and args.year is None:
        raise SenclipError("--monthly needs --year YYYY")
    if args.year is not None and not args.monthly:
        raise SenclipError("--year goes with --monthly (one composite over a range: --time START/END)")
    from senclip.bands import RGB_BANDS
    from senclip.data.series.io import S2_BANDS

    bands = download_bands(args, S2_BANDS if args.monthly else RGB_BANDS)
    request = request_from_args(args, bands, args.year if args.monthly else None)
    area_plan = plan_area(request, args.max_area_km2, args.yes)
    summary = composite_area(area_plan, out, args.dask_scheduler, not args.no_progress, args.overwrite)
    print(json.dumps({k: v for k, v in summary.items() if k != "what"}))
    return print_summary(summary)
