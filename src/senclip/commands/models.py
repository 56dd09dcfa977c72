"""``senclip models``: the pretrained-weights registry, the cache, the architectures."""

from __future__ import annotations

import argparse

HELP = "list registered pretrained weights (and whether they are cached), or fetch them"
DESCRIPTION = """\
List the published CLIP checkpoints senclip knows by name (OpenAI CLIP, RemoteCLIP,
GeoRSCLIP, SkyCLIP, the SenCLIP releases of pallavijainpj/SenCLIP and MVRL, …) with
their open_clip architecture, the ground-view pooling of SenCLIP runs, where they come from,
whether they are already in the local cache, and the EuroSAT zero-shot accuracy
a paper reports for them. Any CLIP NAME can be passed as `--pretrained NAME` to other
commands; it is downloaded once into $SENCLIP_CACHE/weights (default
~/.cache/senclip/weights) and verified. Add entries with a YAML file named by
SENCLIP_REGISTRY (same layout as senclip/models/registry.yaml).

Entries of KIND series-tower (the TimeSenCLIP release, timesenclip-1x1) are not CLIPs
but time-series satellite towers: pass them as `--checkpoint NAME` next to the base
CLIP named in ARCH (`--model ARCH --pretrained BASE`, BASE in `--json` as
base_pretrained), or write them as a senclip tower file with `senclip convert NAME`.
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


def _source(row: dict) -> str:
    """``open_clip``, ``url``, or ``hf:ORG/REPO`` (the publisher of Hub entries)."""
    return f"hf:{row['repo']}" if row["source"] == "hf_hub" and row.get("repo") else row["source"]


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
    header = ("NAME", "KIND", "ARCH", "POOLING", "SOURCE", "CACHED", "EUROSAT ZS %")
    table = [header] + [(r["name"], "series-tower" if r["tower"] else "clip", r["arch"], r["pooling"] or "-",
                         _source(r), "yes" if r["cached"] else "no", _figure(r["eurosat_zeroshot"]))
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print("\nKIND: clip = CLIP weights (--pretrained NAME); series-tower = a time-series satellite tower "
          "(--checkpoint NAME), ARCH being the base CLIP it pairs with. "
          "POOLING: ground-view pooling of SenCLIP training runs. EUROSAT ZS: zero-shot top-1 "
          "reported in a paper (generic/aerial/ground prompts); '-' = no checked figure. "
          "`senclip models --json` gives sources, layouts, preprocessing and what of an entry is unverified.")
    return 0
