"""``senclip harmonise``: convert raw Sentinel-2 L2A chips to senclip's harmonised convention."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = """\
Rewrite Sentinel-2 L2A chips (GeoTIFF, uint16 digital numbers) in senclip's
radiometric convention: reflectance x 10000 with the BOA offset of processing
baseline >= 04.00 (from 25 January 2022) removed, nodata 0, valid pixels >= 1,
GDAL scale 0.0001 / offset 0 and the radiometry tags (docs/acquire.md).

The offset of each chip comes from, in order: its GDAL offset (chips of
`acquire --radiometry raw`, provider files: offset -0.1 = 1000 DN), --offset-dn,
its processing_baseline tag, or its acquired tag (chips of `acquire` before
harmonisation existed: 1000 DN on/after 2022-01-25, with a warning). Chips
already harmonised are copied unchanged. INPUT may be one chip or a folder of
chips (*.tif), then OUTPUT is a folder. One JSON line per chip on stdout."""

EPILOG = """\
examples:
  senclip harmonise acq/chips acq/chips_harmonised
  senclip harmonise old_chip.tif chip.tif --offset-dn 1000"""


def register(subparsers) -> None:
    from senclip.commands.common import add_overwrite_arg

    p = subparsers.add_parser("harmonise", help="raw L2A chips -> harmonised reflectance x 10000",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="chip GeoTIFF, or a folder of chips")
    p.add_argument("output", help="output GeoTIFF, or a folder when INPUT is a folder")
    p.add_argument("--offset-dn", type=int, choices=(0, 1000), default=None,
                   help="BOA offset the input values hold (default: from the file's metadata)")
    add_overwrite_arg(p)
    p.set_defaults(func=run, plan=plan)


def _chips(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff") and p.is_file())


def plan(args: argparse.Namespace):
    from senclip.commands.common import plan_options
    from senclip.outputs import Plan

    src = Path(args.input)
    if src.is_dir():
        return Plan("harmonise", folders=[args.output], inputs=[src, *_chips(src)], required=[src],
                    options=plan_options(args))
    return Plan("harmonise", outputs=[args.output], inputs=[src], required=[src], options=plan_options(args))


def run(args: argparse.Namespace) -> int:
    from senclip.acquire.radiometry import harmonise_file
    from senclip.errors import SenclipError

    src, out = Path(args.input), Path(args.output)
    pairs = [(p, out / p.name) for p in _chips(src)] if src.is_dir() else [(src, out)]
    if src.is_dir() and not pairs:
        raise SenclipError(f"{src}: no chips (*.tif) in the folder")
    if src.is_dir():
        out.mkdir(parents=True, exist_ok=True)
    for a, b in pairs:
        rec = harmonise_file(a, b, args.offset_dn)
        for w in rec.get("warnings", []):
            print(f"warning: {a.name}: {w}", file=sys.stderr)
        print(json.dumps(rec))
    return 0
