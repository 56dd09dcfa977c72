"""``senclip convert``: published CLIP weights (OpenAI / MVRL / open_clip layouts) or TimeSenCLIP
tower checkpoints → a senclip file."""

from __future__ import annotations

import argparse

HELP = ("convert published CLIP weights (OpenAI .ckpt/.pt, clip.-prefixed safetensors) or TimeSenCLIP "
        "tower checkpoints to senclip's format")
DESCRIPTION = """\
Read a CLIP weights file in any layout senclip knows and write one senclip
safetensors file (both towers, architecture and preprocessing in the header)
that every command loads with --pretrained FILE.

A TimeSenCLIP checkpoint is not a CLIP but a time-series satellite tower: it is
written as a senclip tower checkpoint (the format `senclip export` writes for a
trained tower), which commands load with --checkpoint FILE next to a base CLIP
that supplies the text tower (--model ViT-B-32-quickgelu --pretrained openai for
the published weights; any base with 512-d text embeddings fits). --model and
--preprocess do not apply to it.

Layouts (detected, or named with --layout):
  openai         pickled OpenAI `clip` state dict (.ckpt/.pt/.pth), e.g. the
                 SenCLIP checkpoints of Hugging Face pallavijainpj/SenCLIP
  clip-prefixed  safetensors with the OpenAI keys under `clip.` and a
                 config.json beside it, e.g. MVRL/senclip-*
  open_clip      anything open_clip loads (training checkpoints, .bin, ...)
  senclip        a senclip file (rewritten, e.g. with another --preprocess)
  timesenclip    TimeSenCLIP encoder (.ckpt): its bare state dict, e.g.
                 TimeSenCLIP_1x1.ckpt of Hugging Face pallavijainpj/TimeSenCLIP
                 (registry name timesenclip-1x1), or a Lightning checkpoint
                 whose state_dict keys start with learner.TS_ViT.

OpenAI-layout weights are built with QuickGELU (OpenAI's activation): --model
ViT-B-32 becomes ViT-B-32-quickgelu, with a note. Weights whose shapes fit
another architecture than --model are refused. SRC may also be a registry
name (`senclip models`), downloaded once. Pickles are read with
torch.load(weights_only=True): a file with code in it is refused.
"""
EPILOG = """\
examples:
  senclip convert SenCLIP_AvgPool_ViTB32.ckpt --out senclip-vitb32-avg.safetensors
  senclip convert senclip-vit-b-32-avgpool --out senclip-vitb32-avg.safetensors
  senclip convert mvrl/model.safetensors --preprocess senclip --out vitb32.safetensors
  senclip convert gelu_state.pt --layout open_clip --model ViT-B-32 --out vitb32-gelu.safetensors
  senclip convert TimeSenCLIP_1x1.ckpt --out timesenclip-1x1.safetensors
  senclip convert timesenclip-1x1 --out timesenclip-1x1.safetensors
  senclip zeroshot --model ViT-B-32-quickgelu --pretrained openai \\
      --checkpoint timesenclip-1x1.safetensors --dataset sen4map --data test.h5 --out lc1.json
"""


def register(sub: argparse._SubParsersAction) -> None:
    from senclip.commands.common import add_overwrite_arg
    from senclip.models.convert import LAYOUTS

    p = sub.add_parser("convert", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="weights file, or a registry name")
    p.add_argument("--out", required=True, metavar="FILE.safetensors",
                   help="output file (written atomically)")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="architecture (default: read from the file's shapes / config.json / registry entry)")
    p.add_argument("--layout", default="auto", choices=LAYOUTS,
                   help="layout of SRC (default: auto, detected)")
    p.add_argument("--preprocess", default=None, metavar="NAME|FILE",
                   help="preprocessing profile to record (openai, senclip, senclip-train, or a file); "
                        "default: the weights' own (registry entry, MVRL config.json: senclip; else "
                        "open_clip's)")
    add_overwrite_arg(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.commands.common import plan_options
    from senclip.outputs import Plan

    return Plan("convert", outputs=[args.out], options=plan_options(args),
                inputs=[args.src, args.preprocess])


def run(args: argparse.Namespace) -> int:
    from senclip.errors import SenclipError
    from senclip.models.factory import convert_file

    if not args.out.endswith(".safetensors"):
        raise SenclipError(f"--out must end with .safetensors, got {args.out}")
    info = convert_file(args.src, args.out, name=args.model, layout=args.layout, preprocess=args.preprocess)
    if info["tower"]:
        print(f"wrote {info['out']} ({info['tower']} tower checkpoint; load it with --checkpoint next to a "
              f"base CLIP, e.g. --model {info['arch']} --pretrained {info['base_pretrained']})")
    else:
        pre = info["preprocess"] or "open_clip default"
        print(f"wrote {info['out']} ({info['arch']}, preprocess: {pre})")
    return 0
