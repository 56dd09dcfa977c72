"""``senclip acquire``: build paired training data from survey points via a STAC API."""

from __future__ import annotations

import argparse
import sys

from senclip.commands.common import add_band_flag, add_retry_args, add_stac_args, retry_policy

DESCRIPTION = """\
Build paired training data for your own region from survey points (e.g. LUCAS):
  chips   one cloud-ranked Sentinel-2 chip per point (GeoTIFF) + the paired manifest
  series  12 monthly composites per point over a year (TimeSenCLIP input)
  photos  the ground photos of each point from a URL template
Runs are resumable: rerun the same command to finish interrupted or failed points.
See docs/acquire.md."""

POINTS_HELP = (
    "CSV/Parquet of survey points: point_id, lat, lon, date (ISO or LUCAS dd/mm/yy); LUCAS "
    "micro-data names POINT_ID, TH_LAT, TH_LONG, SURVEY_DATE, NUTS0 are accepted; other "
    "columns (labels, photo_N…photo_P) are carried into the manifest"
)


def _bands(text: str) -> tuple[str, ...]:
    bands = tuple(b.strip().upper() for b in text.split(",") if b.strip())
    if not bands:
        raise argparse.ArgumentTypeError("give band codes separated by commas, e.g. B02,B03,B04")
    return bands


def _plan(args: argparse.Namespace):
    """OUT is shared by the acquire subcommands (per-point files, each resumable); the manifest is
    updated in place by ``photos``. Both are checked against the points file."""
    from senclip.commands.common import plan_options
    from senclip.outputs import Plan

    manifest = getattr(args, "manifest", None)
    return Plan(f"acquire {args.acquire_command}", shared=[args.out], updates=[manifest] if manifest else [],
                inputs=[args.points], options=plan_options(args))


def _common(p: argparse.ArgumentParser, stac: bool = True) -> None:
    p.set_defaults(plan=_plan)
    p.add_argument("--points", required=True, metavar="FILE", help=POINTS_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (a rerun resumes in it)")
    p.add_argument(
        "--swap-latlon", action="store_true", help="exchange lat and lon (for files that swapped them)"
    )
    if stac:
        g = p.add_argument_group("STAC")
        add_stac_args(g, required=True)
        add_band_flag(g, "--download-bands", dest="bands", type=_bands, default=("B02", "B03", "B04"),
                      metavar="B02,B03,…", help="bands to download, in output order; 20/60 m bands are "
                      "resampled to --resolution (default: B02,B03,B04)")
        g.add_argument(
            "--radiometry",
            default="harmonised",
            choices=("harmonised", "raw"),
            help="harmonised: reflectance x 10000 with the BOA offset of baseline >= 04.00 removed, "
            "decided per item from its metadata (docs/acquire.md); raw: the provider's DN, the offset "
            "recorded as GDAL scale/offset (default: harmonised)",
        )
        g.add_argument("--chip-px", type=int, default=100, help="chip size in pixels (default: 100)")
        g.add_argument("--resolution", type=float, default=10.0, help="pixel size in metres (default: 10)")
        g.add_argument(
            "--resampling",
            default="nearest",
            choices=("nearest", "bilinear", "cubic", "average"),
            help="resampling of coarser bands (default: nearest)",
        )
    r = p.add_argument_group("robustness")
    r.add_argument("--concurrency", type=int, default=4, help="points processed at once (default: 4)")
    add_retry_args(r)
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "acquire",
        help="paired data from survey points via STAC (chips, series, photos)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="acquire_command", required=True, metavar="SUBCOMMAND")

    c = sub.add_parser(
        "chips",
        help="one cloud-ranked chip per point + paired manifest",
        description="For each point: search scenes at the point within ±--window-days of its "
        "date, rank them by cloud over the chip (SCL band, else eo:cloud_cover), read "
        "only the chip window of each band, write OUT/chips/<point_id>.tif and the "
        "manifest. Exit status 1 if some points failed (rerun to retry them).",
    )
    _common(c)
    c.add_argument(
        "--window-days", type=int, default=30, help="search ± this many days around the date (default: 30)"
    )
    c.add_argument(
        "--max-cloud",
        type=float,
        default=20.0,
        help="largest cloud percentage over the chip accepted (default: 20)",
    )
    c.add_argument(
        "--max-candidates",
        type=int,
        default=6,
        help="scenes whose SCL is read to rank cloud, least scene cloud first (default: 6)",
    )
    c.add_argument(
        "--manifest", metavar="FILE", default=None, help="manifest path (default: OUT/manifest.csv)"
    )
    c.add_argument(
        "--photo-url-template",
        metavar="T",
        default=None,
        help="also download ground photos, e.g. '{base}/{year}/{nuts0}/{point_id}{direction}.jpg'",
    )
    c.add_argument("--photo-base", default="", metavar="URL", help="value of {base} in the photo template")
    c.set_defaults(func=run_chips)

    s = sub.add_parser(
        "series",
        help="12 monthly composites per point over a year",
        description="For each point: read every scene of the year at the point (chip of "
        "--chip-px), mask clouds with SCL, composite by calendar month and write "
        "OUT/series/<point_id>.tif (12 steps x bands + CLM) and OUT/series_manifest.csv.",
    )
    _common(s)
    s.set_defaults(chip_px=5)
    s.add_argument(
        "--year", type=int, default=None, help="year to composite (default: each point's survey year)"
    )
    s.add_argument(
        "--method",
        default="median",
        choices=("median", "mean", "min", "max", "first", "last"),
        help="monthly compositing method (default: median)",
    )
    s.add_argument(
        "--max-scene-cloud",
        type=float,
        default=80.0,
        help="skip scenes with more scene-wide cloud than this percentage (default: 80)",
    )
    s.add_argument(
        "--max-scenes", type=int, default=80, help="at most this many scenes per point (default: 80)"
    )
    s.set_defaults(func=run_series)

    ph = sub.add_parser(
        "photos",
        help="download ground photos from a URL template",
        description="Download photo_N/E/S/W/P of each point into OUT/photos (resumable; a 404 "
        "is recorded as a missing photo) and update OUT/manifest.csv if chips exist and "
        "OUT/series_manifest.csv if series exist.",
    )
    _common(ph, stac=False)
    ph.add_argument(
        "--photo-url-template",
        metavar="T",
        default=None,
        help="format string; fields: base, point_id, year, direction/view, nuts0, id_part1, "
        "id_part2 and any column (default: use photo_* URL columns of the points file)",
    )
    ph.add_argument("--photo-base", default="", metavar="URL", help="value of {base} in the template")
    ph.add_argument(
        "--manifest", metavar="FILE", default=None, help="manifest path (default: OUT/manifest.csv)"
    )
    ph.set_defaults(func=run_photos)


def _policy(args):
    return retry_policy(args)


def _spec(args):
    from senclip.acquire.chips import ChipSpec

    return ChipSpec(
        bands=args.bands, chip_px=args.chip_px, resolution=args.resolution, resampling=args.resampling
    )


def _stac_options(args) -> dict:
    """The options ``acquire chips`` and ``acquire series`` share (catalogue, chip, network)."""
    return {"stac_url": args.stac_url, "collection": args.collection, "spec": _spec(args),
            "signer": args.signer, "concurrency": args.concurrency, "policy": _policy(args),
            "radiometry": args.radiometry}


def _report(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def run_chips(args) -> int:
    from senclip.acquire.photos import download_photos
    from senclip.acquire.pipeline import ChipsOptions, acquire_chips, summary_lines
    from senclip.acquire.points import read_points

    points = read_points(args.points, swap_latlon=args.swap_latlon)
    opts = ChipsOptions(
        window_days=args.window_days,
        max_cloud=args.max_cloud,
        max_candidates=args.max_candidates,
        **_stac_options(args),
    )
    failed = 0
    if args.photo_url_template:
        photos = download_photos(
            points,
            args.out,
            args.photo_url_template,
            args.photo_base,
            opts.policy,
            args.concurrency,
            not args.no_progress,
        )
        failed += photos.counts.get("failed", 0)
    summary = acquire_chips(points, args.out, opts, progress=not args.no_progress, manifest=args.manifest)
    _report(summary_lines(summary))
    return 1 if failed or summary.counts.get("failed") else 0


def run_series(args) -> int:
    from senclip.acquire.pipeline import summary_lines
    from senclip.acquire.points import read_points
    from senclip.acquire.series import SeriesOptions, acquire_series

    points = read_points(args.points, swap_latlon=args.swap_latlon)
    opts = SeriesOptions(
        year=args.year,
        method=args.method,
        max_scene_cloud=args.max_scene_cloud,
        max_scenes=args.max_scenes,
        **_stac_options(args),
    )
    summary = acquire_series(points, args.out, opts, progress=not args.no_progress)
    _report(summary_lines(summary, "series"))
    return 1 if summary.counts.get("failed") else 0


def run_photos(args) -> int:
    from senclip.acquire.photos import download_photos
    from senclip.acquire.pipeline import write_paired_manifest
    from senclip.acquire.points import read_points

    points = read_points(args.points, swap_latlon=args.swap_latlon)
    summary = download_photos(
        points,
        args.out,
        args.photo_url_template,
        args.photo_base,
        _policy(args),
        args.concurrency,
        not args.no_progress,
    )
    views = [v for r in summary.records for v in r.get("views", {}).values()]
    got = sum(v["status"] == "ok" for v in views)
    missing = sum(v["status"] == "missing" for v in views)
    _report(
        [
            f"photos: {summary.total} points: {got} photos, {missing} missing (404), "
            f"{summary.counts.get('failed', 0)} points with failed downloads (rerun to retry)"
        ]
    )
    from senclip.acquire.series import write_series_manifest

    chips = write_paired_manifest(points, args.out, args.manifest)
    if write_series_manifest(points, args.out) is None and chips is None:
        _report(["no chips or series yet: run `senclip acquire chips` or `acquire series` with the same "
                 "--out to build the manifest"])
    return 1 if summary.counts.get("failed") else 0
