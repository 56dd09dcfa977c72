"""``senclip map``: classify every tile of a scene into a Cloud-Optimized GeoTIFF map."""

from __future__ import annotations

import argparse
import json
import sys

from senclip.commands.area_args import add_area_args, default_cache, has_area
from senclip.commands.common import (
    add_band_flag,
    add_model_args,
    add_overwrite_arg,
    add_runtime_args,
    model_inputs,
    plan_options,
    spec_inputs,
)

DESCRIPTION = """\
Cut a scene (GeoTIFF, COG, VRT, or a rasterio URL such as /vsicurl/https://…
of a STAC asset) into tiles, classify each tile zero-shot with a prompt set
(--classes/--prompts) or with a few-shot classifier file (--classifier), and
write OUTPUT as a Cloud-Optimized GeoTIFF: uint8 classes (255 = nodata) with an
embedded colour table, class names in the metadata, the input's CRS and a
transform aligned with the input grid. Beside it: OUTPUT.legend.json and a
quick-look OUTPUT.png with a legend.

Memory depends on --batch-size and the scene width, not the scene size.
Resumable: after a crash or kill, rerun the same command; it continues and
the result is identical to an uninterrupted run. OUTPUT appears only when
complete. Beside OUTPUT also: OUTPUT.item.json (a STAC Item with the classes,
their colours and the model's identity) and OUTPUT.qml (a QGIS style naming
the classes). Many scenes: --inputs LIST --out-dir DIR (optionally spread over
a Dask cluster with --dask-scheduler).

From an area and a season instead of a scene: --bbox W,S,E,N or --area FILE,
--time START/END and --stac-url URL, and OUTPUT alone. The scenes are searched,
cloud-masked, harmonised and composited (as `senclip composite`, kept in
--cache, default OUTPUT_composites/, and reused by a rerun), then mapped block
by block; --dask-scheduler spreads the blocks. Without --model, the published
SenCLIP ViT-B/32 weights of the registry (downloaded once) with their
preprocessing. See docs/areas.md."""

EPILOG = """\
examples:
  senclip map --bbox 11.30,46.45,11.45,46.55 --time 2022-06-01/2022-08-31 \
      --stac-url https://earth-search.aws.element84.com/v1 landuse.tif
  senclip map scene.tif map.tif --model ViT-B-32 --checkpoint senclip.safetensors
  senclip map S2_L2A.tif map.tif --model RN50 --input-bands B04,B03,B02 --offset -0.1 --stride 32
  senclip map scene.tif map.tif --model RN50 --classifier probe.safetensors --probabilities probs.tif
  senclip map --inputs scenes.txt --out-dir maps/ --model RN50 --dask-scheduler tcp://10.0.0.5:8786

scaling defaults: the file's GDAL per-band scale/offset when it has them (senclip
acquire writes them; --scale/--offset override them, with a note); else uint8
inputs x 1/255; other integers x 1e-4 (Sentinel-2 L1C/L2A digital numbers to
reflectance; raw L2A of processing baseline >= 04.00 without metadata also needs
--offset -0.1); floats x 1 (reflectance). Pixels <= 0 after scaling, NaN and
nodata are masked."""


def add_input_args(p: argparse.ArgumentParser) -> None:
    """Band choice, scaling, nodata and tiling flags shared by ``map`` and ``embed``."""
    g = p.add_argument_group("input")
    add_band_flag(g, "--input-bands", dest="bands", default=None, metavar="B1,B2,...",
                  help="bands of the file to read, in the model's order: names from the band "
                       "descriptions (B04,B03,B02) or 1-based indexes (4,3,2); names other than the "
                       "model's bands inflate its first layer (e.g. L1C for 13 bands). Default: the "
                       "model's band names, or the file's bands in order if it has exactly as many")
    g.add_argument("--scale", type=float, default=None,
                   help="multiply raw values by this (default: the file's GDAL scale, else by data type, "
                        "see below)")
    g.add_argument("--offset", type=float, default=None,
                   help="add this after scaling (default: the file's GDAL offset, else 0)")
    g.add_argument("--nodata", type=float, default=None, help="nodata value (default: the file's)")
    g.add_argument("--mask-band", default=None, metavar="BAND",
                   help="band (name or 1-based index) flagging clouds/invalid pixels, e.g. SCL")
    g.add_argument("--mask-values", default=None, metavar="V1,V2",
                   help="mask-band values that mean masked (default: any non-zero); SCL clouds: 3,8,9,10")
    g.add_argument("--allow-no-crs", action="store_true", help="accept an input without a CRS")
    t = p.add_argument_group("tiling")
    t.add_argument("--tile", type=int, default=None,
                   help="tile size in input pixels (default: the model's input size, e.g. 64 for "
                        "EuroSAT-like 10 m tiles with the tiny models, 224 for ViT-B-32)")
    t.add_argument("--stride", type=int, default=None,
                   help="pixels between tiles; a divisor of --tile (default: --tile, no overlap); "
                        "overlapping scores are averaged")
    t.add_argument("--min-valid", type=float, default=0.5,
                   help="share of valid pixels a tile needs to be classified (default: 0.5)")


def register(subparsers) -> None:
    p = subparsers.add_parser("map", help="map a scene tile by tile into a COG of classes",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="scene: GeoTIFF/COG/VRT path or rasterio URL (with "
                   "--bbox/--area: give only OUTPUT)")
    p.add_argument("output", nargs="?", help="output class map (.tif, Cloud-Optimized GeoTIFF)")
    add_model_args(p, required=False, default="image")
    add_input_args(p)
    c = p.add_argument_group("classes")
    c.add_argument("--classes", default="eurosat",
                   help="eurosat, bigearthnet, lucas (built-in prompts), a YAML/JSON prompt file, or a "
                        "text file with one class per line (default: eurosat)")
    c.add_argument("--prompts", default="all",
                   help="prompt style (generic, aerial, ground, all) or PROMPTS.yaml[:style] (default: all)")
    c.add_argument("--classifier", default=None, metavar="FILE",
                   help="few-shot classifier file from `senclip fewshot` (replaces --classes/--prompts)")
    o = p.add_argument_group("output")
    o.add_argument("--resolution", choices=("tile", "input"), default="tile",
                   help="tile: one cell per --stride pixels; input: classes at input resolution with "
                        "input nodata per pixel (default: tile)")
    o.add_argument("--probabilities", default=None, metavar="PROBS.tif",
                   help="also write per-class float32 scores (cell grid, NaN = nodata)")
    o.add_argument("--no-quicklook", action="store_true", help="do not write OUTPUT.png")
    m = p.add_argument_group("many scenes")
    m.add_argument("--inputs", default=None, metavar="LIST",
                   help="text file with one scene path/URL per line (instead of INPUT OUTPUT)")
    m.add_argument("--out-dir", default=None, metavar="DIR", help="output folder for --inputs")
    m.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="spread --inputs scenes (or the blocks of --bbox/--area) over a running Dask cluster "
                        "(tcp://host:port)")
    add_area_args(p, required=False, dask=False)
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="with --bbox/--area: folder of the composites (default: OUTPUT_composites/ beside "
                        "OUTPUT)")
    add_overwrite_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    """The class maps and their side files (legend, quick-look, probabilities) against every input."""
    from senclip.mapping.mapper import sidecar_paths
    from senclip.mapping.scenes import output_names, read_input_list
    from senclip.outputs import Plan

    if has_area(args):
        out = area_output(args)
        if out is None:
            return None
        side = sidecar_paths(out)
        outputs = [out, side["legend"], side["item"], side["style"]] + \
            ([] if args.no_quicklook else [side["quicklook"]])
        inputs = [args.area, args.classifier, *model_inputs(args), *spec_inputs(args.classes, args.prompts)]
        return Plan("map", outputs=outputs, inputs=inputs, required=[args.area] if args.area else [],
                    shared=[args.cache or default_cache(out)], options=plan_options(args))
    if args.inputs is not None and args.out_dir:
        scenes = read_input_list(args.inputs)
        maps = output_names(scenes, args.out_dir)
    elif args.input and args.output:
        scenes, maps = [args.input], [args.output]
    else:
        return None  # run() explains the missing arguments
    outputs = []
    for out in maps:
        side = sidecar_paths(out)
        outputs += [out, side["legend"], side["item"], side["style"]] + \
            ([] if args.no_quicklook else [side["quicklook"]])
    if args.probabilities:
        from senclip.stacitem import item_path

        outputs += [args.probabilities, item_path(args.probabilities)]
    inputs = [*scenes, args.inputs, args.classifier, *model_inputs(args),
              *spec_inputs(args.classes, args.prompts)]
    return Plan("map", outputs=outputs, inputs=inputs, required=scenes, options=plan_options(args))


def area_output(args: argparse.Namespace) -> str | None:
    """The one positional of an area map (OUTPUT); ``None`` when two were given (run() explains)."""
    if args.input and args.output:
        return None
    return args.input or args.output


def job_from_args(args: argparse.Namespace, map_options: dict | None = None):
    """(MapJob, mode) from the parsed flags; checks flag combinations."""
    from dataclasses import replace

    from senclip.bands import parse_bands
    from senclip.commands.common import (
        configure_runtime,
        report_precision,
        resolve_device,
        use_published_default,
    )
    from senclip.errors import SenclipError
    from senclip.mapping.mapper import MapOptions
    from senclip.mapping.scenes import ClassifierSpec, MapJob, ModelSpec
    from senclip.mapping.source import SourceOptions
    from senclip.models.precision import resolve_precision

    bands = parse_bands(args.bands, indexes=True)
    mask_values = None
    if args.mask_values:
        try:
            mask_values = tuple(float(v) for v in args.mask_values.split(","))
        except ValueError as exc:
            raise SenclipError(
                f"--mask-values must be numbers separated by commas, not {args.mask_values!r}") from exc
    if args.batch_size < 1:
        raise SenclipError("--batch-size must be at least 1")
    use_published_default(args, "image")
    source = SourceOptions(bands=bands, scale=args.scale, offset=args.offset, nodata=args.nodata,
                           mask_band=args.mask_band, mask_values=mask_values, allow_no_crs=args.allow_no_crs)
    options = MapOptions(tile=args.tile, stride=args.stride, min_valid=args.min_valid,
                         batch_size=args.batch_size, workers=max(1, args.workers),
                         progress=not args.no_progress, source=source, **(map_options or {}))
    names = bands if bands is not None and isinstance(bands[0], str) else None
    prompt_spec = {"classifier_file": args.classifier} if getattr(args, "classifier", None) else \
        {"classes": getattr(args, "classes", "eurosat"), "prompts": getattr(args, "prompts", "all")}
    options = replace(options, prompt_spec=prompt_spec)
    configure_runtime()
    device = resolve_device(args.device)
    precision, why = resolve_precision(args.precision, device)
    report_precision(precision, why)
    model = ModelSpec(args.model, args.pretrained, args.checkpoint, names, str(device),
                      preprocess=getattr(args, "preprocess", None),
                      precision=precision)
    classifier = ClassifierSpec(getattr(args, "classes", "eurosat"), getattr(args, "prompts", "all"),
                                getattr(args, "classifier", None))
    return MapJob(model, classifier, options)


def run(args: argparse.Namespace) -> int:
    from senclip.errors import SenclipError
    from senclip.mapping.scenes import build_job, map_many, read_input_list

    if has_area(args):
        return run_area(args)
    many = args.inputs is not None
    if many and (args.input or args.output):
        raise SenclipError("give either INPUT OUTPUT or --inputs LIST --out-dir DIR, not both")
    if many and not args.out_dir:
        raise SenclipError("--inputs needs --out-dir DIR")
    if not many and not (args.input and args.output):
        raise SenclipError("give INPUT and OUTPUT (or --inputs LIST --out-dir DIR)")
    if args.dask_scheduler and not many:
        raise SenclipError("--dask-scheduler spreads --inputs scenes; use it with --inputs")
    job = job_from_args(args, {"resolution": args.resolution, "probabilities": args.probabilities,
                               "quicklook": not args.no_quicklook})
    if not many:
        from senclip.mapping.mapper import map_scene

        model, classifier = build_job(job)
        result = map_scene(model, classifier, args.input, args.output, job.options)
        print(json.dumps(result))
        return 0
    if args.probabilities:
        raise SenclipError("--probabilities names one file; it cannot be used with --inputs")
    results = map_many(job, read_input_list(args.inputs), args.out_dir, args.dask_scheduler,
                       progress=not args.no_progress, overwrite=args.overwrite)
    failed = [r for r in results if "error" in r]
    for r in results:
        print(json.dumps(r))
    for r in failed:
        print(f"error: {r['input']}: {r['error']}", file=sys.stderr)
    return 2 if failed else 0


def run_area(args: argparse.Namespace) -> int:
    """``map --bbox|--area … OUTPUT``: composite the area's scenes (cached), map it block by block."""
    from pathlib import Path

    from senclip.areas.maps import map_area
    from senclip.areas.plan import plan_area
    from senclip.commands.area_args import check_model_bands, download_bands, print_summary, request_from_args
    from senclip.errors import SenclipError
    from senclip.mapping.scenes import build_job

    out = area_output(args)
    if out is None:
        raise SenclipError("with --bbox/--area give only OUTPUT (the scenes come from --stac-url)")
    if args.inputs is not None:
        raise SenclipError("--inputs maps scene files; with --bbox/--area the scenes come from --stac-url")
    if args.probabilities:
        raise SenclipError("--probabilities is not available with --bbox/--area yet; map the composite it "
                           "writes with `senclip map COMPOSITE OUT --probabilities P.tif`")
    if Path(out).suffix.lower() not in (".tif", ".tiff"):
        raise SenclipError(f"OUTPUT must be a .tif file, got {Path(out).name}")
    request_from_args(args, ("B04",))  # the area, time and flags checked before the model loads
    job = job_from_args(args, {"resolution": args.resolution, "quicklook": not args.no_quicklook})
    model, _ = build_job(job)  # the model decides the bands; a model that cannot load stops here
    tower = tuple(model.image_tower.bands)
    bands = download_bands(args, tower)
    check_model_bands(bands, tower)
    plan = plan_area(request_from_args(args, bands), args.max_area_km2, args.yes)
    summary = map_area(plan, job, Path(out), Path(args.cache or default_cache(out)), args.dask_scheduler,
                       not args.no_progress, args.overwrite)
    print(json.dumps({k: v for k, v in summary.items() if k != "what"}, default=str))
    return print_summary(summary)
