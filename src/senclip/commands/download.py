"""``senclip download``: fetch, verify and extract a public dataset."""

from __future__ import annotations

import argparse

HELP = "download, verify and extract EuroSAT, EuroSAT-MS or BigEarthNet-S2 v1.0"
DESCRIPTION = """\
Download a dataset's official archive into ROOT, check its MD5 against the value
recorded in senclip, and extract it there in the layout the dataset loaders read
(ROOT/2750/<Class>/ for eurosat, ROOT/ds/images/.../tif/<Class>/ for eurosat-ms,
ROOT/BigEarthNet-v1.0/<patch>/ for bigearthnet-s2).

An interrupted transfer resumes where it stopped (HTTP Range) on the next run; a
file whose checksum differs is deleted; an interrupted extraction leaves nothing
the loaders would take for a complete dataset. Running it again on a complete
ROOT does nothing.

sizes: eurosat 94.3 MB, eurosat-ms 2.07 GB, bigearthnet-s2 tens of GB.
"""
EPILOG = """\
examples:
  senclip download eurosat --root ~/data/eurosat
  senclip download bigearthnet-s2 --root /big/disk/BigEarthNet --delete-archive
  senclip download eurosat --root ~/data/eurosat --url https://my.mirror/EuroSAT.zip
"""
CHOICES = ("eurosat", "eurosat-ms", "bigearthnet-s2")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=CHOICES, help="which dataset")
    p.add_argument("--root", required=True, metavar="DIR",
                   help="dataset folder (created if needed); the archive is kept there")
    p.add_argument("--url", action="append", metavar="URL", default=None,
                   help="download from this mirror instead of the recorded locations (repeatable; "
                        "the recorded checksum still applies)")
    p.add_argument("--delete-archive", action="store_true", help="remove the archive after extraction")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.commands.common import plan_options
    from senclip.outputs import Plan

    return Plan(f"download {args.dataset}", shared=[args.root], options=plan_options(args))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from senclip.data.download import ensure_dataset, get_spec, is_complete

    spec = get_spec(args.dataset)
    root = Path(args.root).expanduser()
    if is_complete(root, spec.name):
        print(f"{spec.name}: already complete in {root / spec.extracted}")
        return 0
    ensure_dataset(spec.name, root, progress=not args.no_progress, urls=args.url,
                   delete_archive=args.delete_archive)
    checked = f"md5 {spec.md5} verified" if spec.md5 else "no published checksum; archive integrity checked"
    print(f"{spec.name}: ready in {root / spec.extracted} ({checked})")
    return 0
