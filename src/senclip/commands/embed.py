"""``senclip embed``: one embedding per tile of a scene, as GeoParquet."""

from __future__ import annotations

import argparse
import json

from senclip.commands.common import (
    add_model_args,
    add_overwrite_arg,
    add_runtime_args,
    model_inputs,
    plan_options,
)

DESCRIPTION = """\
Cut a scene into tiles (same tiling, band and scaling flags as `senclip map`)
and write one GeoParquet row per tile: row, col, valid_fraction, embedding
(L2-normalised float32 list) and the tile polygon in the input CRS. Readable
with geopandas.read_parquet; `senclip search` turns it into text-query heat
maps. Tiles with less than --min-valid valid pixels are left out. Resumable
like `senclip map`."""


def register(subparsers) -> None:
    from senclip.commands.map import add_input_args

    p = subparsers.add_parser("embed", help="embed every tile of a scene into GeoParquet",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="scene: GeoTIFF/COG/VRT path or rasterio URL")
    p.add_argument("--out", required=True, metavar="TILES.parquet", help="output GeoParquet file")
    add_model_args(p)
    add_input_args(p)
    add_overwrite_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.outputs import Plan

    return Plan("embed", outputs=[args.out], inputs=[args.input, *model_inputs(args)], required=[args.input],
                options=plan_options(args))


def run(args: argparse.Namespace) -> int:
    from senclip.commands.map import job_from_args
    from senclip.mapping.embeddings import embed_scene

    job = job_from_args(args)
    model = job.model.build()
    print(json.dumps(embed_scene(model, args.input, args.out, job.options)))
    return 0
