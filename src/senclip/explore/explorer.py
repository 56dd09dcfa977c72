"""One explorer: the layers of the files it was given, and every answer the page asks for.

:class:`Explorer` is what the web layer calls; each method is one endpoint's answer (bytes or a
JSON-ready dict), tested without HTTP. Its layers are fixed at construction: a request names a
layer, a tile, a point, a class or a phrase, never a file.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from senclip.errors import SenclipError
from senclip.explore.errors import NotFound
from senclip.explore.layers import ClassLayer, CompositeLayer, ProbabilityLayer
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
        self.classes = ClassLayer(files.class_map, files.item("class-map"))
        item = files.item("composite") or files.item("monthly-composite")
        self.composite = CompositeLayer(files.composite, item) if files.composite else None
        self.probability = None
        if files.probabilities:
            self.probability = ProbabilityLayer(files.probabilities, files.item("probabilities"),
                                                self.classes.names)
        self.search = None
        if files.embeddings:
            if model is None:
                raise SenclipError("text queries need a model; give --model (or let it default to the "
                                   "one recorded in the embeddings file)")
            self.search = TextSearch(model, files.embeddings)
        self.classes.legend()  # the areas, once, before the first page asks

    def _layer(self, name: str):
        if name not in LAYERS:
            raise NotFound(f"unknown layer {name!r}; layers: {', '.join(LAYERS)}")
        layer = getattr(self, name)
        if layer is None:
            flag = {"search": "--embeddings"}.get(name, f"--{name.replace('probability', 'probabilities')}")
            raise NotFound(f"no {name} layer: its file was not given ({flag})")
        return layer

    def info(self) -> dict:
        """What the page needs to set itself up: extent, zooms, layers and their options."""
        layers: dict = {"classes": {"file": self.files.class_map.name}}
        if self.composite:
            layers["composite"] = {"file": self.composite.path.name, "bands": list(self.composite.rgb),
                                   "stretch": list(self.composite.stretch)}
        if self.probability:
            layers["probability"] = {"file": self.probability.path.name, "classes": self.probability.names}
        if self.search:
            layers["search"] = {"file": self.search.path.name, "tiles": int(self.search.rows.size),
                                "max_query_chars": MAX_QUERY_CHARS}
        return {"title": self.files.class_map.name, "crs": self.classes.crs.to_string(),
                **self.classes.extent(), "layers": layers, "basemap": self.basemap}

    def legend(self) -> dict:
        return self.classes.legend()

    def tile(self, layer: str, z: int, x: int, y: int, *, lo: float | None = None, hi: float | None = None,
             index: int | None = None, query: str = "", threshold: float | None = None) -> bytes:
        """A 256-px PNG tile of a layer (options: composite ``lo``/``hi``, probability ``index``,
        search ``query``/``threshold``)."""
        source = self._layer(layer)
        if layer == "composite":
            return source.tile(z, x, y, lo, hi)
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
