"""Options and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import sys


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", required=required, metavar="NAME",
                   help="open_clip architecture (e.g. ViT-B-32, RN50, senclip-tiny-vit)")
    g.add_argument("--pretrained", metavar="P", default=None,
                   help="open_clip tag (openai, …), hf-hub:ORG/REPO id, or a local weights file; "
                        "default: random initialisation")
    g.add_argument("--checkpoint", metavar="C", default=None,
                   help="senclip image-tower checkpoint (from `senclip export`) that replaces "
                        "the image tower; the text tower stays the one of --model/--pretrained")
    g.add_argument("--preprocess", metavar="NAME|FILE", default=None,
                   help="preprocessing profile of the image tower: openai, senclip (the SenCLIP "
                        "reference's evaluation statistics, bicubic), senclip-train, or a YAML/JSON file of "
                        "per-band statistics; default: the weights' own (a registry entry's or a "
                        "checkpoint's profile, else open_clip's statistics with bilinear resize)")


class _OldSpelling(argparse.Action):
    """Old ``--bands`` for one release: stores like the new flag (``const``) and names it on stderr."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"note: {option_string} is deprecated and goes away in the next release; use {self.const}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_band_flag(g, new: str, **kwargs) -> None:
    """Flag ``new`` (``--model-bands``, ``--input-bands``, …) plus ``--bands`` as its old spelling."""
    g.add_argument(new, **kwargs)
    g.add_argument("--bands", dest=kwargs.get("dest", new[2:].replace("-", "_")), action=_OldSpelling,
                   const=new, type=kwargs.get("type"), default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_bands_arg(p: argparse.ArgumentParser) -> None:
    """``--model-bands``: the bands the image tower takes (inflated from RGB if needed)."""
    add_band_flag(p, "--model-bands", dest="model_bands", metavar="B1,B2,...", default=None,
                  help="Sentinel-2 bands the image tower takes, in order (e.g. B04,B03,B02, or L1C for "
                       "the 13 L1C bands, L2A for the 12 L2A bands); an RGB tower is inflated: new "
                       "bands' first-layer filters start at zero (see senclip.models.multiband)")


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … (default: cuda if available)")
    g.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    g.add_argument("--workers", type=int, default=2, help="data-loading processes (default: 2)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def resolve_device(name: str):
    import torch

    from senclip.errors import SenclipError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SenclipError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SenclipError(f"device {name} requested but CUDA is not available")
    return device


def load_model_from_args(args: argparse.Namespace):
    from senclip.models import create_model

    device = resolve_device(args.device)
    return create_model(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint, device=device,
                        bands=getattr(args, "model_bands", None),
                        preprocess=getattr(args, "preprocess", None))


# ---- output safety (see senclip.outputs) -------------------------------------------------------

_NOT_JOB_OPTIONS = {"func", "plan", "overwrite", "no_progress", "verbose", "workers", "restart"}


def add_overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs that an earlier, different run wrote (without it they "
                        "are refused; rerunning the same command resumes or reports it done)")


def plan_options(args: argparse.Namespace) -> dict:
    """The parsed options that determine a command's result (hashed into its job)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_JOB_OPTIONS and not callable(v)}


def model_inputs(args: argparse.Namespace) -> list:
    """Weight and profile files a command reads (tags, hub ids and profile names are not files: ignored)."""
    return [getattr(args, name, None) for name in ("pretrained", "checkpoint", "preprocess")]


def spec_inputs(*specs: str | None) -> list[str]:
    """Files named by prompt/class specs (``PATH``, ``PATH:style``, comma-separated lists)."""
    from pathlib import Path

    files = []
    for spec in specs:
        for part in (spec or "").split(","):
            head, sep, _ = part.rpartition(":")
            for cand in (part, head if sep else ""):
                if cand and Path(cand).is_file():
                    files.append(cand)
                    break
    return files
