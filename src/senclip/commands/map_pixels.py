"""``senclip map-pixels``: per-pixel land-cover map of a Sentinel-2 time series."""

from __future__ import annotations

import argparse

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
"""
EPILOG = """\
examples:
  senclip map-pixels eopatch/ lulc.tif --model ViT-B-32 --pretrained openai \\
      --checkpoint timesen.safetensors --prompts ground
  senclip map-pixels stack.tif map.tif --dates dates.txt --model ViT-B-32 \\
      --checkpoint timesen.safetensors --prompts my_classes.yaml --year 2021
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map-pixels", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stack", metavar="STACK", help="EOPatch folder, folder of dated GeoTIFFs, or stack file")
    p.add_argument("output", metavar="OUTPUT", help="output map (COG, .tif)")
    add_model_args(p)
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
                   help="name of a per-date cloud band inside the rasters, non-zero = cloud (default: CLM)")
    s.add_argument("--feature", default="NDVI", help="EOPatch data feature to read (default: NDVI)")
    s.add_argument("--composite", default="median", choices=["median", "mean", "min", "max", "first", "last"],
                   help="monthly compositing of clear observations (default: median)")
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
    add_overwrite_arg(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.outputs import Plan

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

    from senclip.commands.common import load_model_from_args, resolve_device
    from senclip.data.series.rasters import open_series
    from senclip.errors import SenclipError
    from senclip.mapping.pixels import PixelMapOptions, PixelMapper

    out = Path(args.output)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise SenclipError(f"output must be a .tif file, got {out.name}")
    options = PixelMapOptions(block_rows=args.block_rows, batch_size=args.batch_size,
                              method=args.composite, year=args.year, time_steps=args.time_steps)
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
