"""``senclip search``: text query against tile embeddings → heat-map GeoTIFF."""

from __future__ import annotations

import argparse
import json

from senclip.commands.common import add_overwrite_arg, add_runtime_args

DESCRIPTION = """\
Score every tile of a `senclip embed` GeoParquet file by the cosine similarity
of its embedding with a text query, and write the scores as a float32
Cloud-Optimized GeoTIFF on the tile grid (NaN = no tile; overlapping tiles
averaged) plus a PNG beside it. The model defaults to the one recorded in the
file; give --model/--pretrained/--checkpoint to override."""


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="text search over tile embeddings (heat map)",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tiles", help="GeoParquet file written by `senclip embed`")
    p.add_argument("query", help='text query, e.g. "solar park"')
    p.add_argument("--out", required=True, metavar="HEAT.tif", help="output heat map GeoTIFF")
    p.add_argument("--no-png", action="store_true", help="do not write HEAT.png")
    g = p.add_argument_group("model (default: the one recorded in TILES)")
    g.add_argument("--model", default=None, metavar="NAME", help="open_clip architecture")
    g.add_argument("--pretrained", default=None, metavar="P", help="weights of the text tower")
    g.add_argument("--checkpoint", default=None, metavar="C", help="senclip image-tower checkpoint")
    add_overwrite_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from pathlib import Path

    from senclip.commands.common import model_inputs, plan_options
    from senclip.outputs import Plan

    outputs = [args.out] + ([] if args.no_png else [Path(args.out).with_suffix(".png")])
    return Plan("search", outputs=outputs, inputs=[args.tiles, *model_inputs(args)], required=[args.tiles],
                options=plan_options(args))


def run(args: argparse.Namespace) -> int:
    from senclip.commands.common import configure_runtime, model_for_tiles
    from senclip.mapping.embeddings import search_tiles

    configure_runtime()
    model = model_for_tiles(args, args.tiles)
    print(json.dumps(search_tiles(model, args.tiles, args.query, args.out, png=not args.no_png)))
    return 0
