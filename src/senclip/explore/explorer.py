"""One explorer: the layers of the files it was given, and every answer the page asks for.

:class:`Explorer` is what the web layer calls; each method is one endpoint's answer (bytes or a
JSON-ready dict), tested without HTTP. Its layers are fixed at construction: a request names a
layer, a tile, a point, a class, a month or a phrase, never a file.

"The map" is the union of the layers' extents: a tile outside it is 404, a tile inside it but off
one layer's own extent is that layer's transparent tile. ``/api/info`` gives every layer's bounds,
and the page asks for a layer's tiles inside them only.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from senclip.errors import SenclipError
from senclip.explore.composite import CompositeLayer
from senclip.explore.errors import NotFound
from senclip.explore.layers import (
    ClassLayer,
    ProbabilityLayer,
    check_tile,
    leaflet_bounds,
    overlaps,
    tile_bounds,
)
from senclip.explore.search import MAX_QUERY_CHARS, TextSearch
from senclip.explore.sources import ExploreFiles

LAYERS = ("classes", "composite", "probability", "search")
"""Layer names of the tile endpoint, bottom to top as the page stacks them (composite first)."""


def basemap_origin(template: str) -> str:
    """The origin (``https://*.tile.example.org``) a ``--basemap`` URL template fetches from.

    Raises:
        SenclipError: not an http(s) template with ``{z}``, ``{x}`` and ``{y}``.
    """
    parts = urlsplit(template)
    host = parts.netloc.replace("{s}", "*")
    if parts.scheme not in ("http", "https") or not host or any(c in host for c in "{} '\";"):
        raise SenclipError(f"--basemap {template!r}: give an http(s) URL template such as "
                           "https://tile.example.org/{z}/{x}/{y}.png")
    if not all(k in template for k in ("{z}", "{x}", "{y}")):
        raise SenclipError(f"--basemap {template!r} lacks {{z}}, {{x}} or {{y}}")
    return f"{parts.scheme}://{host}"


class Explorer:
    """The explorer of a class map, with its composite, probabilities and tile embeddings if given.

    Args:
        files: the files (:func:`senclip.explore.sources.resolve_files`).
        model: the model whose text tower scores phrases (needed with ``files.embeddings``).
        basemap: an XYZ URL template drawn under the map, or ``None`` (nothing fetched from elsewhere).

    Raises:
        SenclipError: unreadable files, embeddings without a model or of another size than its text's.
    """

    def __init__(self, files: ExploreFiles, model=None, basemap: str | None = None) -> None:
        self.files = files
        self.basemap = basemap
        self.basemap_origin = basemap_origin(basemap) if basemap else None
        self.notes: list[str] = []  # what was found but left out, for the command to print
        self.classes = ClassLayer(files.class_map, files.item("class_map"))
        self.composite = None
        if files.composite:
            try:
                self.composite = CompositeLayer(files.composite, files.item("composite"))
            except SenclipError as exc:
                if "composite" not in files.found:  # named by the user: refused
                    raise
                self.notes.append(f"composite not shown: {exc}")
        self.probability = None
        if files.probabilities:
            self.probability = ProbabilityLayer(files.probabilities, files.item("probabilities"),
                                                list(self.classes.names.values()))
        self.search = None
        if files.embeddings:
            if model is None:
                raise SenclipError("text queries need a model; give --model (or let it default to the "
                                   "one recorded in the embeddings file)")
            self.search = TextSearch(model, files.embeddings)
        extents = [layer.mercator for layer in (self.classes, self.composite, self.probability, self.search)
                   if layer is not None]
        self.mercator = (min(e[0] for e in extents), min(e[1] for e in extents),
                         max(e[2] for e in extents), max(e[3] for e in extents))

    def _layer(self, name: str):
        if name not in LAYERS:
            raise NotFound(f"unknown layer {name!r}; layers: {', '.join(LAYERS)}")
        layer = getattr(self, name)
        if layer is None:
            flag = {"search": "--embeddings"}.get(name, f"--{name.replace('probability', 'probabilities')}")
            raise NotFound(f"no {name} layer: its file was not given ({flag})")
        return layer

    def info(self) -> dict:
        """What the page needs to set itself up: the map's extent (all layers), the class map's zooms,
        and each layer's bounds and options."""
        layers: dict = {"classes": {"file": self.files.class_map.name, **self.classes.extent()}}
        if self.composite:
            layers["composite"] = self.composite.describe()
        if self.probability:
            layers["probability"] = {"file": self.probability.path.name, "classes": self.probability.names,
                                     **self.probability.extent()}
        if self.search:
            layers["search"] = {"file": self.search.path.name, "tiles": int(self.search.rows.size),
                                "max_query_chars": MAX_QUERY_CHARS, **self.search.extent()}
        return {"title": self.files.class_map.name, "crs": self.classes.crs.to_string(),
                **self.classes.extent(), "bounds": leaflet_bounds(self.mercator), "layers": layers,
                "basemap": self.basemap, "notes": self.notes}

    def legend(self) -> dict:
        return self.classes.legend()

    def tile(self, layer: str, z: int, x: int, y: int, *, lo: float | None = None, hi: float | None = None,
             index: int | None = None, month: int | None = None, query: str = "",
             threshold: float | None = None) -> bytes:
        """A 256-px PNG tile of a layer (options: composite ``lo``/``hi``/``month``, probability
        ``index``, search ``query``/``threshold``); transparent on the map but off the layer.

        Raises:
            BadRequest: z/x/y name no tile. NotFound: an unknown layer, a tile outside the map.
        """
        source = self._layer(layer)
        check_tile(z, x, y)
        if not overlaps(tile_bounds(z, x, y), self.mercator):
            raise NotFound(f"tile {z}/{x}/{y} is outside the map")
        if layer == "composite":
            return source.tile(z, x, y, lo, hi, month)
        if layer == "probability":
            return source.tile(z, x, y, 0 if index is None else index)
        if layer == "search":
            return source.tile(query, z, x, y, threshold)
        return source.tile(z, x, y)

    def point(self, lon: float, lat: float) -> dict:
        """Coordinates (WGS84 and map CRS), the class, and the top-3 probabilities where given."""
        answer = {"lon": lon, "lat": lat, **self.classes.point(lon, lat)}
        if self.probability:
            try:
                answer["probabilities"] = self.probability.top(lon, lat, 3)
            except NotFound:  # inside the class map, outside the probability grid
                answer["probabilities"] = []
        return answer

    def search_summary(self, query: str) -> dict:
        return self._layer("search").summary(query)

    def search_geotiff(self, query: str) -> bytes:
        return self._layer("search").geotiff(query)

    def search_geojson(self, query: str, threshold: float | None = None) -> dict:
        return self._layer("search").geojson(query, threshold)
