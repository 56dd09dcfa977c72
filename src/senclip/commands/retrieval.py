"""``senclip retrieval``: satellite <-> ground Recall@k on a paired manifest."""

from __future__ import annotations

import argparse

HELP = "cross-view retrieval R@1/5/10 (satellite->ground and ground->satellite)"
DESCRIPTION = """\
Embed each manifest chip with the model (normally --checkpoint, a trained
tower from `senclip export`) and retrieve against the ground-embedding cache:
a point's ground embedding is the mean of its available view embeddings
(missing views masked out), renormalised. Reports Recall@1/5/10 in both
directions (fractions in [0, 1]; the true match's rank counts gallery items
strictly more similar, so ties go to the query). Points without any view are
left out and counted as "skipped". Writes OUT as JSON.
"""
EPILOG = """\
example:
  senclip retrieval --model ViT-B-32 --pretrained openai --checkpoint senclip.safetensors \\
      --manifest val.csv --cache cache/vitb32 --out retrieval.json
"""


def register(sub: argparse._SubParsersAction) -> None:
    from senclip.commands.common import (
        add_model_args,
        add_overwrite_arg,
        add_runtime_args,
        add_series_normalisation_arg,
    )

    p = sub.add_parser("retrieval", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--manifest", required=True, metavar="M", help="paired manifest (.csv or .parquet)")
    p.add_argument("--cache", required=True, metavar="CACHE", help="ground-embedding cache directory")
    p.add_argument("--out", required=True, metavar="R.json", help="results file (JSON)")
    p.add_argument("--skip-bad", action="store_true", help="report and skip bad manifest rows")
    p.add_argument("--time-steps", type=int, choices=(12, 4, 1), default=12,
                   help="time-series towers: 12 months, 4 seasonal or 1 annual median (default: 12)")
    add_series_normalisation_arg(p)
    add_overwrite_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.commands.common import model_inputs, plan_options
    from senclip.outputs import Plan

    return Plan("retrieval", outputs=[args.out], options=plan_options(args),
                inputs=[args.manifest, args.cache, *model_inputs(args)])


def run(args: argparse.Namespace) -> int:
    import json

    from senclip.commands.common import load_model_from_args, resolve_device
    from senclip.data.ground_cache import GroundCache
    from senclip.data.manifest import read_manifest
    from senclip.evaluate.retrieval import evaluate_retrieval
    from senclip.outputs import write_text

    df = read_manifest(args.manifest, skip_bad=args.skip_bad)
    cache = GroundCache.open(args.cache)
    model = load_model_from_args(args)
    from senclip.models.kinds import set_time_steps

    set_time_steps(model.image_tower, args.time_steps)
    report = evaluate_retrieval(model, df, cache, batch_size=args.batch_size,
                                device=resolve_device(args.device), workers=args.workers,
                                progress=not args.no_progress, skip_bad=args.skip_bad)
    report |= {"model": model.describe(), "manifest": str(args.manifest), "cache": str(args.cache),
               "cache_model": {k: cache.meta.get(k) for k in ("model", "pretrained")},
               "bad_rows_skipped": len(df.attrs.get("bad_rows", []))}
    write_text(args.out, json.dumps(report, indent=2))
    s2g, g2s = report["sat_to_ground"], report["ground_to_sat"]
    print(f"n={report['n']}  sat->ground " + " ".join(f"{k}={v:.3f}" for k, v in s2g.items())
          + "  ground->sat " + " ".join(f"{k}={v:.3f}" for k, v in g2s.items()))
    return 0
