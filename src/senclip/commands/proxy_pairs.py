"""``senclip proxy-pairs``: EuroSAT or time-series manifest + text-view cache for pipeline checks."""

from __future__ import annotations

import argparse

HELP = ("pipeline check: pair EuroSAT images, labelled series pixels or Sen4Map points with "
        "ground-prompt text embeddings")
DESCRIPTION = """\
Write a paired manifest for the EuroSAT RGB images under --eurosat (or the
labelled pixels of the time series --series, or the LUCAS points of a Sen4Map
HDF5 file given as --series) and a ground-embedding cache in
the format of `senclip embed-ground`, where the 5 "views" of each sample are
the frozen text embeddings of ground-style prompts of its class (chosen per
sample with a fixed seed). Series rows carry series_path, row, col, lat, lon
(Sen4Map: point_id = the Lucas_Point group, row 0, col = its column in the
file): train them with model.tower timesen or timesen-reference.

This is a PIPELINE CHECK, NOT THE SCIENCE: no ground photo is involved. It
lets manifest -> cache -> train -> export -> zero-shot run offline on real
pixels. Outputs: OUT/manifest.csv and OUT/ground_cache/.
"""
EPILOG = """\
example:
  senclip proxy-pairs --eurosat data/eurosat_rgb/train --model senclip-tiny-vit --prompts ground --out proxy
  senclip proxy-pairs --series data/eolearn_test_eopatch:train --model senclip-tiny-vit --out ts-proxy
  senclip proxy-pairs --series test_with_eunis.h5:skip-bad --labels lu1 --model ViT-B-32 \
      --pretrained openai --out s4m-proxy
"""


def register(sub: argparse._SubParsersAction) -> None:
    from senclip.commands.common import add_device_args, add_overwrite_arg

    p = sub.add_parser("proxy-pairs", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--eurosat", metavar="DIR", help="EuroSAT RGB folder (<Class>/*.jpg)")
    src.add_argument("--series", metavar="ROOT",
                     help="labelled time series (EOPatch, stack or folder of dated GeoTIFFs); "
                          "ROOT:train / ROOT:valid take the left / right half of the grid; "
                          "or a Sen4Map file FILE.h5 (FILE.h5:skip-bad leaves unreadable points out)")
    p.add_argument("--labels", metavar="RASTER|SET",
                   help="with --series: LULC label raster on the series' grid (an EOPatch has its own); "
                        "for a Sen4Map file the label set lc1 (default), lu1, crop, eunis or bioregion")
    p.add_argument("--prompts", default="ground", metavar="SPEC",
                   help="prompt set for the views: ground (default) | aerial | generic | all | "
                        "a YAML/JSON prompt file (PATH or PATH:style)")
    p.add_argument("--out", required=True, metavar="OUT", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-sample prompt choice (default 0)")
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, metavar="NAME", help="open_clip architecture (text tower)")
    g.add_argument("--pretrained", default=None, metavar="P",
                   help="open_clip tag, hf-hub: id or local weights (default: random initialisation)")
    add_device_args(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_overwrite_arg(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.commands.common import plan_options, spec_inputs
    from senclip.data.sen4map import is_sen4map, sen4map_path
    from senclip.outputs import Plan

    root = args.eurosat or args.series
    if args.series and args.series.endswith((":train", ":valid")):
        root = args.series.rsplit(":", 1)[0]
    elif args.series and is_sen4map(args.series):
        root = sen4map_path(args.series)
    return Plan("proxy-pairs", folders=[args.out], options=plan_options(args),
                inputs=[root, args.labels, args.pretrained, *spec_inputs(args.prompts)])


def run(args: argparse.Namespace) -> int:
    from senclip.commands.common import load_model_from_args
    from senclip.errors import SenclipError
    from senclip.prompts.proxy import build_proxy_pairs

    if args.labels and not args.series:
        raise SenclipError("--labels goes with --series (EuroSAT labels come from its folders)")
    model = load_model_from_args(args)
    dataset, root = ("timeseries", args.series) if args.series else ("eurosat", args.eurosat)
    extra = {"labels": args.labels} if args.labels else {}
    manifest, cache = build_proxy_pairs(root, model, prompts_spec=args.prompts, out=args.out, seed=args.seed,
                                        progress=not args.no_progress, dataset=dataset, **extra)
    print(f"wrote {manifest} and {cache} (pipeline check: views are prompt embeddings, not photos)")
    return 0
