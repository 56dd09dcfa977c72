"""``senclip explore``: serve a class map, its composite, probabilities and text search as a local web map."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Serve a web map of a `senclip map` class map on this machine and open it in the
browser: the class map with its colour table, a legend with each class's area,
the composite in true colour (changeable stretch), one class's probability as a
colour ramp, a click that shows the coordinates, class and top-3 probabilities,
and a text box that turns a phrase into a heat map over the tile embeddings
(scored as `senclip search` scores it), downloadable as GeoTIFF or GeoJSON.

MAP is the class map's .tif (with the STAC Item beside it, which may name the
composite it was made from), or an output folder of `senclip map --bbox/--area`,
whose class map, composite and probabilities are found by their STAC Items.
Only these files are read; the page and its map library are served from the
package, and nothing is fetched from outside unless --basemap is given.
Endpoints: docs/explore.md. Ctrl-C stops the server."""

EPILOG = """\
examples:
  senclip explore landuse.tif
  senclip explore landuse.tif --composite scene.tif --probabilities probs.tif \\
      --embeddings tiles.parquet --port 8000 --no-browser
  senclip explore out/            # an area run's folder: parts found by their STAC Items
  senclip explore landuse.tif --basemap 'https://tile.openstreetmap.org/{z}/{x}/{y}.png'"""


def register(subparsers) -> None:
    from senclip.commands.common import add_device_args

    p = subparsers.add_parser("explore", help="local web map of a class map: legend, clicks, text search",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("map", metavar="MAP", help="class map (.tif from `senclip map`) or an output folder")
    f = p.add_argument_group("layers")
    f.add_argument("--composite", metavar="SCENE.tif", default=None,
                   help="scene or composite drawn in true colour (bands B04,B03,B02 found by name or STAC "
                        "eo:bands; a monthly composite one month at a time). Default: the composite the "
                        "class map's STAC Item names, if any")
    f.add_argument("--probabilities", metavar="PROBS.tif", default=None,
                   help="per-class probabilities (`senclip map --probabilities`)")
    f.add_argument("--embeddings", metavar="TILES.parquet", default=None,
                   help="tile embeddings (`senclip embed`) for text queries")
    f.add_argument("--basemap", metavar="URL_TEMPLATE", default=None,
                   help="XYZ tiles drawn under the map, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png "
                        "(default: none; the page then fetches nothing from outside this server)")
    g = p.add_argument_group("model for text queries (default: the one recorded in TILES.parquet)")
    g.add_argument("--model", default=None, metavar="NAME", help="open_clip architecture")
    g.add_argument("--pretrained", default=None, metavar="P", help="weights of the text tower")
    g.add_argument("--checkpoint", default=None, metavar="C", help="senclip image-tower checkpoint")
    add_device_args(g)
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; an address off "
                        "loopback is reachable by others and is warned about; 0.0.0.0: every address)")
    s.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)")
    s.add_argument("--no-browser", action="store_true", help="print the URL without opening a browser")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senclip.commands.common import configure_runtime, model_for_tiles
    from senclip.explore import Explorer, resolve_files
    from senclip.explore.app import Hosts, create_app
    from senclip.explore.server import bind, is_loopback, serve

    sock = bind(args.host, args.port)  # first: a port in use is said before the model and areas load
    try:
        files = resolve_files(args.map, args.composite, args.probabilities, args.embeddings)
        model = None
        if files.embeddings:
            configure_runtime()
            model = model_for_tiles(args, files.embeddings)
        explorer = Explorer(files, model, basemap=args.basemap)
    except BaseException:
        sock.close()
        raise
    for note in explorer.notes:
        print(f"warning: {note}", file=sys.stderr)
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this machine on port "
              f"{sock.getsockname()[1]} can see the map", file=sys.stderr)
    serve(create_app(explorer, Hosts.bound_to(args.host)), sock, open_browser=not args.no_browser)
    return 0
