"""``senclip import-sen2lucas``: paired manifest + ground cache from Sen2LUCAS and frozen embeddings."""

from __future__ import annotations

import argparse

HELP = "paired manifest + ground cache from Sen2LUCAS chips and the published frozen LUCAS embeddings"
DESCRIPTION = """\
Read the Sen2LUCAS chips (Zenodo record 14231252: 100x100 RGB GeoTIFFs stored as
<CC>/<pointid>_....tif under --chips), the list of their relative paths (--paths,
one a line, or a .npy array) and the frozen LUCAS ground embeddings (--embeddings,
a torch.save dict keyed {CC}_{pointid}{N|E|S|W}, each (1, D)), and write
OUT/manifest.csv and OUT/ground_cache/ in the format of `senclip embed-ground`:
views N/E/S/W filled from the embeddings (L2-normalised), P missing. Train on
them with `senclip train` (data.manifest, data.cache).

--chip-bands names the chip files' bands in file order. The default
B02,B03,B04 is what the SenCLIP reference loader assumes: it reads file bands
3,2,1 as red, green, blue (see docs/paired-data.md). The embeddings file is
loaded with torch.load(weights_only=True): a pickle that needs code is refused.

lat/lon come from --points when it lists the point, else from the chip centre.

A bad row (path not <CC>/<pointid>_..., missing or unreadable chip, chip
without georeferencing and not in --points, key absent from the embeddings, vector of another
size) stops the command before anything is written, naming the point; with
--skip-bad such rows are reported and left out.
"""
EPILOG = """\
examples:
  senclip import-sen2lucas --chips Sen2LUCAS/ --paths Sen2LUCAS/sentinel_paths.txt \\
      --embeddings lucas_clipemb_ViTB-32.pt --out lucas-vitb32
  senclip import-sen2lucas --chips Sen2LUCAS/ --paths paths.txt --embeddings emb.pt \\
      --chip-bands B04,B03,B02 --skip-bad --out lucas
"""


def register(sub: argparse._SubParsersAction) -> None:
    from senclip.commands.common import add_overwrite_arg

    p = sub.add_parser("import-sen2lucas", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chips", required=True, metavar="DIR", help="Sen2LUCAS root (holds the <CC>/ folders)")
    p.add_argument("--paths", required=True, metavar="LIST",
                   help="chip paths relative to --chips: a text file, one a line, or a .npy array")
    p.add_argument("--embeddings", required=True, metavar="FILE.pt", help="frozen LUCAS ground embeddings")
    p.add_argument("--out", required=True, metavar="OUT", help="output folder (manifest.csv, ground_cache/)")
    p.add_argument("--chip-bands", default="B02,B03,B04", metavar="B1,B2,B3",
                   help="band names of the chip files in file order (default B02,B03,B04, the order the "
                        "SenCLIP reference loader assumes)")
    p.add_argument("--points", metavar="CSV", default=None,
                   help="LUCAS point coordinates: point_id (or POINT_ID) and lat/lon (or TH_LAT/TH_LONG, "
                        "GPS_LAT/GPS_LONG); used for the points it lists (default: the chip centre)")
    p.add_argument("--dim", type=int, default=None,
                   help="expected embedding size (default: the most common size in the file)")
    p.add_argument("--skip-bad", action="store_true",
                   help="report and leave out bad rows instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_overwrite_arg(p)
    p.set_defaults(func=run, plan=plan)


def plan(args: argparse.Namespace):
    from senclip.commands.common import plan_options
    from senclip.outputs import Plan

    return Plan("import-sen2lucas", folders=[args.out], options=plan_options(args),
                inputs=[args.chips, args.paths, args.embeddings, args.points],
                required=[args.paths, args.embeddings, *([args.points] if args.points else [])])


def run(args: argparse.Namespace) -> int:
    from senclip.data.sen2lucas import import_sen2lucas

    manifest, cache = import_sen2lucas(args.chips, args.paths, args.embeddings, args.out,
                                       chip_bands=args.chip_bands.split(","), skip_bad=args.skip_bad,
                                       dim=args.dim, progress=not args.no_progress, points=args.points)
    import pandas as pd

    n = len(pd.read_csv(manifest, usecols=["point_id"]))
    print(f"wrote {manifest} ({n} points) and {cache} (views N,E,S,W from {args.embeddings}; P missing)")
    return 0
