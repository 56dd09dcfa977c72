"""Options and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse


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


def add_bands_arg(p: argparse.ArgumentParser) -> None:
    """``--bands``: the input bands of the image tower (inflated from RGB if needed)."""
    p.add_argument("--bands", dest="model_bands", metavar="B1,B2,...", default=None,
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
                        bands=getattr(args, "model_bands", None))
