"""``senclip proxy-pairs``: EuroSAT manifest + text-view cache for pipeline checks."""

from __future__ import annotations

import argparse

HELP = "pipeline check: pair EuroSAT images with ground-prompt text embeddings (not real photos)"
DESCRIPTION = """\
Write a paired manifest for the EuroSAT RGB images under --eurosat and a
ground-embedding cache in the format of `senclip embed-ground`, where the 5
"views" of each image are the frozen text embeddings of ground-style prompts
of its class (chosen per image with a fixed seed).

This is a PIPELINE CHECK, NOT THE SCIENCE: no ground photo is involved. It
lets manifest -> cache -> train -> export -> zero-shot run offline on real
pixels. Outputs: OUT/manifest.csv and OUT/ground_cache/.
"""
EPILOG = """\
example:
  senclip proxy-pairs --eurosat data/eurosat_rgb/train --model senclip-tiny-vit --prompts ground --out proxy
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy-pairs", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eurosat", required=True, metavar="DIR", help="EuroSAT RGB folder (<Class>/*.jpg)")
    p.add_argument("--prompts", default="ground", metavar="SPEC",
                   help="prompt set for the views: ground (default) | aerial | generic | all | "
                        "a YAML/JSON prompt file (PATH or PATH:style)")
    p.add_argument("--out", required=True, metavar="OUT", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-image prompt choice (default 0)")
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, metavar="NAME", help="open_clip architecture (text tower)")
    g.add_argument("--pretrained", default=None, metavar="P",
                   help="open_clip tag, hf-hub: id or local weights (default: random initialisation)")
    p.add_argument("--device", default="auto", help="cpu, cuda, … (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senclip.commands.common import resolve_device
    from senclip.data.proxy import build_proxy_pairs
    from senclip.models import create_model

    model = create_model(args.model, pretrained=args.pretrained, device=resolve_device(args.device))
    manifest, cache = build_proxy_pairs(args.eurosat, model, prompts_spec=args.prompts, out=args.out,
                                        seed=args.seed, progress=not args.no_progress)
    print(f"wrote {manifest} and {cache} (pipeline check: views are prompt embeddings, not photos)")
    return 0
