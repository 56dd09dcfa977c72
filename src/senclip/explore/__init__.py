"""``senclip explore``: a local web map of a class map, its composite, probabilities and text search.

The layers of the package, bottom to top: :mod:`.sources` fixes the files (named on the command line
or found in an output folder by their STAC Items), :mod:`.layers` reads tiles, points and the legend
with rio-tiler, :mod:`.search` scores phrases against tile embeddings as ``senclip search`` does,
:mod:`.explorer` answers every request the page makes, :mod:`.app` is the thin FastAPI layer over
it, :mod:`.server` runs it with uvicorn. ``static/`` holds the page and the Leaflet release it uses.
See ``docs/explore.md``.
"""

from senclip.explore.errors import BadRequest, ExploreError, NotFound, Unprocessable
from senclip.explore.explorer import LAYERS, Explorer
from senclip.explore.sources import ExploreFiles, resolve_files

__all__ = ["LAYERS", "BadRequest", "ExploreError", "ExploreFiles", "Explorer", "NotFound", "Unprocessable",
           "resolve_files"]
