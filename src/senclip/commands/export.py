"""``senclip export``: a training checkpoint (or a base model) as a senclip file or an open_clip folder."""

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

--format open_clip writes a folder instead (open_clip_config.json +
open_clip_model.safetensors) that open_clip itself opens:
open_clip.create_model_and_transforms("local-dir:DIR"), or "hf-hub:ORG/REPO"
once the two files are uploaded to a Hugging Face repository. open_clip holds
plain CLIPs: an image tower with a projection head (train with
model.head_at_inference: drop), other bands than RGB, or a profile with
min-max stretch / centre crop is refused.
"""
EPILOG = """\
examples:
  senclip export --checkpoint runs/quick/checkpoints/last.ckpt --out model.safetensors
  senclip export --base senclip-tiny-vit --seed 0 --out base.safetensors
  senclip export --checkpoint runs/ref/checkpoints/last.ckpt --format open_clip --out senclip-open_clip/
  senclip export --base ViT-B-32 --pretrained senclip-vit-b-32-avgpool --format open_clip --out vitb32/
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="CKPT", help="training checkpoint (RUN/checkpoints/last.ckpt)")
    src.add_argument("--base", metavar="NAME", help="export a base CLIP architecture instead (both towers)")
    p.add_argument("--out", required=True, metavar="FILE.safetensors|DIR",
                   help="output file (written atomically); a folder with --format open_clip")
    p.add_argument("--format", default="senclip", choices=("senclip", "open_clip"),
                   help="senclip safetensors file (default), or an open_clip model folder")
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

    if args.format == "open_clip":
        from pathlib import Path

        from senclip.errors import SenclipError
        from senclip.models.convert import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS

        if args.out.endswith(".safetensors"):
            raise SenclipError(f"--format open_clip writes a folder; give --out DIR, not {args.out}")
        out = Path(args.out)
        return Plan("export", outputs=[out / OPEN_CLIP_WEIGHTS, out / OPEN_CLIP_CONFIG],
                    options=plan_options(args), inputs=[args.checkpoint, args.pretrained])
    return Plan("export", outputs=[args.out], options=plan_options(args),
                inputs=[args.checkpoint, args.pretrained])


def run(args: argparse.Namespace) -> int:
    from senclip.errors import SenclipError

    if args.format == "open_clip":
        return _run_open_clip(args)
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


def _run_open_clip(args: argparse.Namespace) -> int:
    from senclip.models.convert import export_open_clip

    if args.base:
        import torch

        from senclip.models import create_model

        torch.manual_seed(args.seed)
        model = create_model(args.base, pretrained=args.pretrained)
    else:
        from senclip.train.export import model_from_checkpoint

        model = model_from_checkpoint(args.checkpoint)[0]
    info = export_open_clip(model, args.out)
    print(f"wrote {info['out']}/ (open_clip {info['arch']}: {', '.join(info['files'])}); "
          f"open it with open_clip.create_model_and_transforms('local-dir:{info['out']}')")
    return 0
