"""``senclip models``: the pretrained-weights registry, the cache, the architectures."""

from __future__ import annotations

import argparse

HELP = "list registered pretrained weights (and whether they are cached), or fetch them"
DESCRIPTION = """\
List the published CLIP checkpoints senclip knows by name (OpenAI CLIP, RemoteCLIP,
GeoRSCLIP, SkyCLIP, …) with their open_clip architecture, where they come from,
whether they are already in the local cache, and the EuroSAT zero-shot accuracy
a paper reports for them. Any NAME can be passed as `--pretrained NAME` to other
commands; it is downloaded once into $SENCLIP_CACHE/weights (default
~/.cache/senclip/weights) and verified. Add entries with a YAML file named by
SENCLIP_REGISTRY (same layout as senclip/models/registry.yaml).
"""
EPILOG = """\
examples:
  senclip models
  senclip models --fetch remoteclip-vit-b-32      # download now, e.g. before going offline
  senclip models --architectures
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--architectures", action="store_true", help="list open_clip architecture names instead")
    p.add_argument("--fetch", nargs="+", metavar="NAME",
                   help="download and verify these entries into the cache")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _figure(zs: dict | None) -> str:
    if not zs:
        return "-"
    return "/".join(f"{zs[k]:g}" for k in ("generic", "aerial", "ground", "top1") if k in zs) or "-"


def run(args: argparse.Namespace) -> int:
    import json

    if args.architectures:
        from senclip.models import list_architectures

        print("\n".join(list_architectures()))
        return 0
    from senclip.models.registry import fetch_weights, get_entry, list_entries

    if args.fetch:
        from senclip.errors import SenclipError

        for name in args.fetch:
            entry = get_entry(name)
            if entry is None:
                raise SenclipError(f"no registry entry {name!r}; run `senclip models` for the list")
            if entry.source == "open_clip":
                from senclip.models import create_model

                create_model(entry.arch, pretrained=entry.tag)
                print(f"{name}: cached by open_clip")
            else:
                print(f"{name}: {fetch_weights(entry, progress=not args.no_progress)}")
        return 0
    rows = list_entries()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("NAME", "ARCH", "SOURCE", "CACHED", "EUROSAT ZS %")
    table = [header] + [(r["name"], r["arch"], r["source"], "yes" if r["cached"] else "no",
                         _figure(r["eurosat_zeroshot"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print("\nEUROSAT ZS: zero-shot top-1 reported in a paper (generic/aerial/ground prompts), "
          "see `senclip models --json` for sources; '-' = no checked figure.")
    return 0
