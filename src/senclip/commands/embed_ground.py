"""``senclip embed-ground``: encode every ground photo of a manifest once into a cache."""

from __future__ import annotations

import argparse

from senclip.commands.common import add_model_args, add_overwrite_arg, add_runtime_args

HELP = "encode the ground photos of a paired manifest with the frozen CLIP (resumable cache)"
DESCRIPTION = """\
Encode every ground photo (photo_N, photo_E, photo_S, photo_W, photo_P) of a
paired-data manifest once with the frozen CLIP image tower of --model /
--pretrained and store the L2-normalised embeddings in a memory-mapped cache
directory (points x 5 views x dim, with a mask for missing views), keyed by
point id, model and preprocessing. Training reads its targets from this cache.

Photos are read as RGB, EXIF-rotated, resized so the shorter side is the
tower's input size and centre-cropped. The run is resumable: after an
interruption, rerun the same command and it continues; the finished cache is
identical to one built in one go (use the same --batch-size). A cache
directory built with another model, preprocessing or point list is never
overwritten. The manifest format is described in docs/paired-data.md.
"""
EPILOG = """\
example:
  senclip embed-ground --manifest lucas.csv --model ViT-B-32 --pretrained openai --out cache/vitb32
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed-ground", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, metavar="M", help="paired manifest (.csv or .parquet)")
    p.add_argument("--out", required=True, metavar="CACHE", help="cache directory (created or resumed)")
    p.add_argument("--skip-bad", action="store_true",
                   help="report and skip bad manifest rows instead of stopping")
    add_model_args(p)
    add_overwrite_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.commands.common import model_inputs, plan_options
    from senclip.outputs import Plan

    # the cache checks itself which model built it and resumes its own unfinished work
    return Plan("embed-ground", shared=[args.out], options=plan_options(args),
                inputs=[args.manifest, *model_inputs(args)])


def run(args: argparse.Namespace) -> int:
    from senclip.commands.common import load_model_from_args, resolve_device
    from senclip.data.ground_cache import build_ground_cache
    from senclip.data.manifest import read_manifest
    from senclip.errors import SenclipError

    if args.checkpoint:
        raise SenclipError("embed-ground encodes photos with the frozen base CLIP; drop --checkpoint")
    if args.batch_size < 1:
        raise SenclipError("--batch-size must be at least 1")
    df = read_manifest(args.manifest, skip_bad=args.skip_bad)
    if df.attrs.get("bad_rows"):
        print(f"skipped {len(df.attrs['bad_rows'])} bad row(s) of {args.manifest}")
    model = load_model_from_args(args)
    cache = build_ground_cache(df, model, args.out, batch_size=args.batch_size,
                               device=resolve_device(args.device), workers=args.workers,
                               progress=not args.no_progress)
    n_views = int(cache.mask.sum())
    print(f"{cache.path}: {len(cache)} points, {n_views} photos, dim {cache.dim} ({cache.meta['model']})")
    return 0
