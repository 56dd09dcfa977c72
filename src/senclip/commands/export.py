"""``senclip export``: a training checkpoint (or a base model) as a senclip safetensors file."""

from __future__ import annotations

import argparse

HELP = "write the trained satellite tower (+ head) of a training checkpoint as model.safetensors"
DESCRIPTION = """\
Export the satellite tower trained by `senclip train` (trunk, bands,
normalisation and the trained projection head) to a safetensors file that
`senclip zeroshot --checkpoint FILE` (and create_model(..., checkpoint=FILE))
loads, paired with the frozen text tower of the base model.

--kind image stores the tower only and records the base weights
(model.pretrained) in the header; --kind full also stores the text tower.
auto (default): full when the base was randomly initialised (nothing else
could rebuild its text tower), image otherwise.

With --base NAME instead of --checkpoint, write a base CLIP model (both
towers) as a full file, seeded when random: for tiny random models this is
the fixed text tower that proxy-pairs, train and zeroshot must share.
"""
EPILOG = """\
examples:
  senclip export --checkpoint runs/quick/checkpoints/last.ckpt --out model.safetensors
  senclip export --base senclip-tiny-vit --seed 0 --out base.safetensors
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="CKPT", help="training checkpoint (RUN/checkpoints/last.ckpt)")
    src.add_argument("--base", metavar="NAME", help="export a base CLIP architecture instead (both towers)")
    p.add_argument("--out", required=True, metavar="FILE.safetensors", 
                   help="output file (written atomically)")
    p.add_argument("--kind", default="auto", choices=("auto", "image", "full"),
                   help="what to store for --checkpoint (default: auto)")
    p.add_argument("--pretrained", default=None, metavar="P",
                   help="with --base: weights of the base model (default: random, seeded by --seed)")
    p.add_argument("--seed", type=int, default=0, 
                   help="with --base: seed of a random initialisation (default 0)")
    from senclip.commands.common import add_overwrite_arg

    add_overwrite_arg(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.commands.common import plan_options
    from senclip.outputs import Plan

    return Plan("export", outputs=[args.out], options=plan_options(args),
                inputs=[args.checkpoint, args.pretrained])


def run(args: argparse.Namespace) -> int:
    from senclip.errors import SenclipError

    if not args.out.endswith(".safetensors"):
        raise SenclipError(f"--out must end with .safetensors, got {args.out}")
    if args.base:
        from senclip.train.export import export_base

        info = export_base(args.base, args.out, pretrained=args.pretrained, seed=args.seed)
    else:
        from senclip.train.export import export_checkpoint

        info = export_checkpoint(args.checkpoint, args.out, kind=args.kind)
    base = info["base_pretrained"] or "random"
    print(f"wrote {info['out']} ({info['kind']}, {info['arch']}, base: {base})")
    return 0
