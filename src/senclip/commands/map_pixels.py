"""``senclip map-pixels``: per-pixel land-cover map of a Sentinel-2 time series."""

from __future__ import annotations

import argparse

from senclip.commands.area_args import add_area_args, default_cache, has_area
from senclip.commands.common import (
    add_band_flag,
    add_device_args,
    add_model_args,
    add_overwrite_arg,
    add_series_normalisation_arg,
    model_inputs,
    plan_options,
    spec_inputs,
)

HELP = "per-pixel zero-shot land-cover map of a time series (TimeSenCLIP)"
DESCRIPTION = """\
Composite a Sentinel-2 time series into 12 calendar months per pixel (median of
clear observations by default), embed each pixel's monthly series with the
model's time-series tower and give it the class whose prompts match best.
Writes OUTPUT as a Cloud-Optimised GeoTIFF (uint8 class values, colour table,
class names in the tags, 255 = no valid month).

STACK is an eo-learn EOPatch folder, a folder of dated GeoTIFFs (the date in
each file name), or one GeoTIFF/NetCDF stack (bands time-major) with its dates
from --dates, its 'dates' tag or a STACK.dates.txt file.

The run is resumable: finished row blocks are kept in the folder OUTPUT.partial
(as for `senclip map`); running the same command again continues where it
stopped. OUTPUT appears only when complete.

From an area and a year instead of a series: --bbox W,S,E,N or --area FILE,
--year YYYY and --stac-url URL, and OUTPUT alone. The year's scenes are
cloud-masked, harmonised and composited into 12 monthly composites (as
`senclip composite --monthly`, kept in --cache, default OUTPUT_composites/),
then mapped block by block (--dask-scheduler spreads the blocks). Without
--model, the published TimeSenCLIP encoder (timesenclip-1x1) on its base CLIP
ViT-B/32. Beside OUTPUT: legend, quick-look, QGIS style and a STAC Item.
"""
EPILOG = """\
examples:
  senclip map-pixels --bbox 11.30,46.45,11.45,46.55 --year 2022 \\
      --stac-url https://earth-search.aws.element84.com/v1 lulc.tif
  senclip map-pixels eopatch/ lulc.tif --model ViT-B-32 --pretrained openai \\
      --checkpoint timesen.safetensors --prompts ground
  senclip map-pixels stack.tif map.tif --dates dates.txt --model ViT-B-32 \\
      --checkpoint timesen.safetensors --prompts my_classes.yaml --year 2021
"""


SERIES_ONLY = (("--composite", "composite", None), ("--dates", "dates", None), ("--mask", "mask", None),
               ("--input-bands", "bands", None), ("--mask-band", "mask_band", "CLM"),
               ("--feature", "feature", "NDVI"), ("--restart", "restart", False))
"""Flags of a series file (flag, dest, default): refused with --bbox/--area, where they would do nothing."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map-pixels", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stack", metavar="STACK", nargs="?",
                   help="EOPatch folder, folder of dated GeoTIFFs, or stack file (with --bbox/--area: give "
                        "only OUTPUT)")
    p.add_argument("output", metavar="OUTPUT", nargs="?", help="output map (COG, .tif)")
    add_model_args(p, required=False, default="series")
    g = p.add_argument_group("classes")
    g.add_argument("--prompts", default="generic", metavar="SPEC",
                   help="generic | aerial | ground | all for the built-in eo-learn LULC prompts, or a "
                        "YAML/JSON prompt file (PATH or PATH:style) whose classes are mapped "
                        "(default: generic)")
    g.add_argument("--classes", default=None, metavar="A,B,…",
                   help="map only these classes of the prompt set (default: all of them)")
    s = p.add_argument_group("series")
    s.add_argument("--dates", default=None, metavar="FILE|LIST",
                   help="acquisition dates of a stack: a text file (one per line) or a comma-separated list")
    add_band_flag(s, "--input-bands", dest="bands", default=None, metavar="B02,B03,…",
                  help="names of the input's bands, in file order (default: from the files)")
    s.add_argument("--mask", default=None, metavar="RASTER",
                   help="validity raster for a stack: one band per date, non-zero = cloud/invalid")
    s.add_argument("--mask-band", default="CLM", metavar="NAME",
                   help="name of a per-date cloud band inside the rasters, non-zero = cloud (default: CLM; "
                        "without one, a senclip monthly composite's QA band, 1 = clear)")
    s.add_argument("--feature", default="NDVI", help="EOPatch data feature to read (default: NDVI)")
    s.add_argument("--composite", default=None, choices=["median", "mean", "min", "max", "first", "last"],
                   help="monthly compositing of a series' clear observations (default: median; with "
                        "--bbox/--area the months are composited by --method)")
    s.add_argument("--time-steps", type=int, choices=(12, 4, 1), default=12,
                   help="steps the tower sees: 12 months, 4 seasonal or 1 annual median of the "
                        "monthly composites (default: 12)")
    add_series_normalisation_arg(s)
    s.add_argument("--year", type=int, default=None,
                   help="composite only this year's acquisitions (default: pool all years by month)")
    r = p.add_argument_group("runtime")
    add_device_args(r)
    r.add_argument("--batch-size", type=int, default=4096, help="pixels per forward pass (default: 4096)")
    r.add_argument("--block-rows", type=int, default=64,
                   help="rows read and composited at once; bounds memory (default: 64)")
    r.add_argument("--restart", action="store_true", help="ignore an unfinished earlier run and start over")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("--no-quicklook", action="store_true", help="with --bbox/--area: do not write OUTPUT.png")
    add_area_args(p, required=False, time=False)
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="with --bbox/--area: folder of the composites (default: OUTPUT_composites/ beside "
                        "OUTPUT)")
    add_overwrite_arg(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.outputs import Plan

    if has_area(args):
        from senclip.mapping.mapper import sidecar_paths

        if args.stack and args.output:
            return None  # run() explains
        out = args.stack or args.output
        side = sidecar_paths(out)
        outputs = [out, side["legend"], side["item"], side["style"]] + \
            ([] if args.no_quicklook else [side["quicklook"]])
        return Plan("map-pixels", outputs=outputs, options=plan_options(args),
                    required=[args.area] if args.area else [], shared=[args.cache or default_cache(out)],
                    inputs=[args.area, *model_inputs(args), *spec_inputs(args.prompts)])
    if not (args.stack and args.output):
        return None  # run() explains
    dates = args.dates if args.dates and "," not in args.dates else None
    return Plan("map-pixels", outputs=[args.output], options=plan_options(args), required=[args.stack],
                inputs=[args.stack, dates, args.mask, *model_inputs(args), *spec_inputs(args.prompts)])


def resolve_prompts(spec: str, classes: str | None) -> dict[str, list[str]]:
    """Prompts of the classes to map, from the built-in set of dataset ``timeseries`` or a user file."""
    from pathlib import Path

    from senclip.errors import SenclipError
    from senclip.prompts import STYLES, builtin_path, load_prompts, read_prompt_file

    if spec in STYLES or spec == "all":
        path, style = builtin_path("timeseries"), spec
    else:
        head, sep, tail = spec.rpartition(":")
        path, style = (head, tail) if sep and (tail in STYLES or tail == "all") else (spec, None)
    if not Path(path).is_file():
        raise SenclipError(f"prompt file not found: {path}; use generic, aerial, ground, all "
                           "or a YAML/JSON file")
    keys = list(read_prompt_file(path).classes)
    full = load_prompts(f"{path}:{style}" if style else str(path), keys, "timeseries")
    if classes is None:
        return full
    wanted = [c.strip() for c in classes.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in full]
    if unknown or not wanted:
        raise SenclipError(f"unknown class(es) {unknown or '(none)'}; the prompt set has {', '.join(full)}")
    return {c: full[c] for c in wanted}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from senclip.commands.common import load_model_from_args, resolve_device, use_published_default
    from senclip.data.sources import open_series
    from senclip.errors import SenclipError
    from senclip.mapping.pixels import PixelMapOptions, PixelMapper

    if has_area(args):
        return run_area(args)
    if not (args.stack and args.output):
        raise SenclipError("give STACK and OUTPUT (or --bbox/--area, --year and OUTPUT)")
    use_published_default(args, "series")
    out = Path(args.output)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise SenclipError(f"output must be a .tif file, got {out.name}")
    options = PixelMapOptions(block_rows=args.block_rows, batch_size=args.batch_size,
                              method=args.composite or "median", year=args.year, time_steps=args.time_steps)
    bands = [b.strip() for b in args.bands.split(",")] if args.bands else None
    source = open_series(args.stack, dates=args.dates, bands=bands, mask=args.mask,
                         mask_band=args.mask_band, feature=args.feature)
    prompts = resolve_prompts(args.prompts, args.classes)
    device = resolve_device(args.device)
    model = load_model_from_args(args)
    mapper = PixelMapper(model, prompts, options, device)
    summary = mapper.run(source, out, progress=not args.no_progress, resume=not args.restart)
    print(f"wrote {summary['output']} ({summary['height']}x{summary['width']} px, "
          f"{len(summary['classes'])} classes, {summary['resumed_blocks']} block(s) resumed)")
    return 0


def run_area(args: argparse.Namespace) -> int:
    """``map-pixels --bbox|--area … --year YYYY OUTPUT``: monthly composites (cached), mapped by block."""
    import json
    from pathlib import Path

    from senclip.areas.maps import PixelJob, map_pixels_area
    from senclip.areas.plan import plan_area
    from senclip.commands.area_args import check_model_bands, download_bands, print_summary, request_from_args
    from senclip.commands.common import configure_runtime, resolve_device, use_published_default
    from senclip.errors import SenclipError
    from senclip.mapping.pixels import PixelMapOptions
    from senclip.mapping.scenes import ModelSpec
    from senclip.models.precision import resolve_precision

    if args.stack and args.output:
        raise SenclipError("with --bbox/--area give only OUTPUT (the scenes come from --stac-url)")
    out = Path(args.stack or args.output or "")
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise SenclipError(f"OUTPUT must be a .tif file, got {out.name or 'nothing'}")
    if args.year is None:
        raise SenclipError("--year YYYY is needed with --bbox/--area (the year of the 12 monthly composites)")
    for flag, dest, default in SERIES_ONLY:
        if getattr(args, dest) != default:
            raise SenclipError(f"{flag} reads a series file; with --bbox/--area the series is the area's "
                               "monthly composite (its compositing: --method, --mask-classes, --fill)")
    request_from_args(args, ("B04",), args.year)  # the area and flags checked before the model loads
    use_published_default(args, "series")
    prompts = resolve_prompts(args.prompts, args.classes)
    options = PixelMapOptions(block_rows=args.block_rows, batch_size=args.batch_size, year=args.year,
                              time_steps=args.time_steps)
    configure_runtime()
    device = resolve_device(args.device)
    precision, _ = resolve_precision(args.precision, device)
    spec = ModelSpec(args.model, args.pretrained, args.checkpoint, None, str(device), args.preprocess,
                     precision)
    job = PixelJob(spec, tuple((c, tuple(p)) for c, p in prompts.items()), options)
    mapper = job.mapper()  # a model that cannot load stops here, before any search
    tower = tuple(mapper.model.image_tower.bands)
    bands = download_bands(args, tower)
    check_model_bands(bands, tower)
    plan = plan_area(request_from_args(args, bands, args.year), args.max_area_km2, args.yes)
    cache = Path(args.cache or default_cache(str(out)))
    summary = map_pixels_area(plan, job, out, cache, args.dask_scheduler, not args.no_progress,
                              args.overwrite, not args.no_quicklook,
                              {"prompts": args.prompts, "classes": args.classes})
    print(json.dumps({k: v for k, v in summary.items() if k != "what"}, default=str))
    return print_summary(summary)
