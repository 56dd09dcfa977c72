"""The explorer's raster layers: web-mercator tiles, point values and the legend, read with rio-tiler.

Each layer is one COG fixed when the explorer starts (:mod:`senclip.explore.sources`), with the
STAC Item that describes it where there is one (read with pystac); requests only choose a tile, a
point, a class, a month or a stretch. A file is opened per request (rio-tiler's
:class:`~rio_tiler.io.Reader`), so concurrent requests never share a GDAL handle.

* :class:`ClassLayer`: the class map, drawn with the colour table of its COG; its legend gives each
  class's ground area (:mod:`senclip.explore.areas`).
* :class:`ProbabilityLayer`: one class's probability as a colour ramp, and a point's top classes.
* the composite in true colour: :mod:`senclip.explore.composite`.

A layer answers a tile that misses its own extent with a transparent tile: the page asks for a
layer's tiles inside that layer's bounds (``/api/info``), but the layers of one map need not share
an extent (an area run's class map is rounded up to whole cells, its composite is not).
"""

from __future__ import annotations

import json
import math
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import transform as transform_coords
from rasterio.warp import transform_bounds

from senclip.errors import SenclipError
from senclip.explore.errors import BadRequest, NotFound

TILE_SIZE = 256
MAX_ZOOM = 24
MERCATOR = "EPSG:3857"
WGS84 = "EPSG:4326"
MERCATOR_SPAN = 2 * math.pi * 6378137.0
RAMP = "viridis"
"""Colour ramp of probabilities (perceptually uniform, readable in grey)."""


def check_tile(z: int, x: int, y: int) -> None:
    """Refuse tile indexes that name no web-mercator tile (``z`` in 0..24, ``x``/``y`` in 0..2^z-1)."""
    if not 0 <= z <= MAX_ZOOM:
        raise BadRequest(f"zoom {z} is not a zoom level (0 to {MAX_ZOOM})")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise BadRequest(f"tile {z}/{x}/{y} does not exist: x and y go from 0 to {2**z - 1} at zoom {z}")


def check_lonlat(lon: float, lat: float) -> None:
    if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadRequest(f"({lon}, {lat}) is not a longitude, latitude pair in degrees")


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    from rio_tiler.constants import WEB_MERCATOR_TMS

    return tuple(WEB_MERCATOR_TMS.xy_bounds(x, y, z))


def overlaps(a, b) -> bool:
    """Whether two ``(left, bottom, right, top)`` boxes overlap (not only touch)."""
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]


def leaflet_bounds(mercator) -> list[list[float]]:
    """Web-mercator bounds as Leaflet takes them: WGS84 ``[[south, west], [north, east]]``."""
    west, south, east, north = transform_bounds(MERCATOR, WGS84, *mercator)
    return [[south, west], [north, east]]


@cache
def empty_tile() -> bytes:
    """A transparent 256-px PNG: a tile on the map but off this layer."""
    from rio_tiler.models import ImageData

    return ImageData(np.ma.masked_all((1, TILE_SIZE, TILE_SIZE), dtype="uint8")).render(img_format="PNG")


class RasterLayer:
    """One COG: its grid, its extent in web mercator and WGS84, and tiles read by rio-tiler.

    ``smooth``: resample with bilinear weights where a tile's pixel is coarser than the file's (a
    zoomed-out view of reflectances or probabilities); nearest otherwise, and always for classes.
    """

    smooth = False

    def __init__(self, path: str | Path, item=None) -> None:
        from rio_tiler.io import Reader

        self.path, self.item = Path(path), item
        try:
            with rasterio.open(self.path) as ds:
                self.crs, self.transform, self.shape = ds.crs, ds.transform, ds.shape
                self.count, self.dtype, self.nodata = ds.count, ds.dtypes[0], ds.nodata
                self.descriptions = list(ds.descriptions)
                self.colorinterp = [c.name for c in ds.colorinterp]
                self.scaled = any(s != 1 for s in ds.scales) or any(o != 0 for o in ds.offsets)
                self.tags = ds.tags()
                self.colormap = _colormap(ds)
                bounds = ds.bounds
        except rasterio.errors.RasterioIOError as exc:
            raise SenclipError(f"{self.path}: not a raster rasterio can read ({exc})") from exc
        if self.crs is None:
            raise SenclipError(f"{self.path} has no CRS; the explorer draws maps in web mercator")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rio-tiler's "no overviews" note on small files
            with Reader(str(self.path)) as reader:
                self.minzoom, self.maxzoom = int(reader.minzoom), int(reader.maxzoom)
        self.mercator = transform_bounds(self.crs, MERCATOR, *bounds, densify_pts=21)
        self.native = (self.mercator[2] - self.mercator[0]) / self.shape[1]  # metres of mercator a pixel

    def extent(self) -> dict:
        """Bounds in WGS84 (``[[south, west], [north, east]]``, as Leaflet takes them) and zooms."""
        return {"bounds": leaflet_bounds(self.mercator), "minzoom": self.minzoom, "maxzoom": self.maxzoom}

    def covers(self, z: int, x: int, y: int) -> bool:
        return overlaps(tile_bounds(z, x, y), self.mercator)

    def read_tile(self, z: int, x: int, y: int, indexes, **options):
        """The tile as rio-tiler ``ImageData`` (masked where the file has no data), ``None`` off this layer.

        Raises:
            BadRequest: z/x/y name no tile.
        """
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.io import Reader

        check_tile(z, x, y)
        if not self.covers(z, x, y):
            return None
        coarser = self.smooth and MERCATOR_SPAN / 2**z / TILE_SIZE > self.native
        method = "bilinear" if coarser else "nearest"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Reader(str(self.path), options=options) as reader:
                try:
                    return reader.tile(x, y, z, tilesize=TILE_SIZE, indexes=indexes,
                                       resampling_method=method, reproject_method=method)
                except TileOutsideBounds:  # on its mercator bounds, off its own grid
                    return None

    def values_at(self, lon: float, lat: float) -> tuple[dict, np.ma.MaskedArray]:
        """Where a WGS84 point falls (map CRS ``x``/``y``, ``row``/``col``) and every band's value.

        Raises:
            BadRequest: not a longitude/latitude. NotFound: the point is off the map.
        """
        from rio_tiler.errors import PointOutsideBounds
        from rio_tiler.io import Reader

        check_lonlat(lon, lat)
        xs, ys = transform_coords(WGS84, self.crs, [lon], [lat])
        row, col = rasterio.transform.rowcol(self.transform, xs[0], ys[0])
        outside = NotFound(f"({lon:.6f}, {lat:.6f}) is outside the map")
        if not (0 <= row < self.shape[0] and 0 <= col < self.shape[1]):
            raise outside
        with Reader(str(self.path)) as reader:
            try:
                point = reader.point(lon, lat)
            except PointOutsideBounds:  # on the map's very edge, which rio-tiler counts as outside
                raise outside from None
        where = {"x": xs[0], "y": ys[0], "row": int(row), "col": int(col)}
        return where, point.array


def render_ramp(img, lo: float, hi: float, ramp: str) -> bytes:
    """PNG of a one-band float tile: ``lo``..``hi`` along a matplotlib colour ramp, masked cells clear."""
    from rio_tiler.colormap import cmap

    if img is None:
        return empty_tile()
    img.array.fill_value = 0  # a NaN fill value would be cast to uint8 by the rescale
    img.rescale(in_range=((lo, hi if hi > lo else lo + 1e-6),))
    return img.render(img_format="PNG", colormap=cmap.get(ramp))


def _colormap(ds) -> dict[int, tuple[int, int, int, int]] | None:
    try:
        return {int(k): tuple(int(c) for c in v) for k, v in ds.colormap(1).items()}
    except ValueError:  # no colour table
        return None


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*[int(c) for c in rgb[:3]])


def item_classes(item) -> dict:
    """``value -> pystac Classification`` of a class map's Item: the ``data`` asset's classes, else its
    first raster band's, else the Item properties' (empty without the classification extension)."""
    from pystac.extensions.classification import ClassificationExtension
    from pystac.extensions.raster import RasterExtension

    if item is None or not ClassificationExtension.has_extension(item):
        return {}
    asset = item.assets.get("data")
    where = []
    if asset is not None:
        where.append(ClassificationExtension.ext(asset))
        if RasterExtension.has_extension(item) and RasterExtension.ext(asset).bands:
            where.append(ClassificationExtension.ext(RasterExtension.ext(asset).bands[0]))
    where.append(ClassificationExtension.ext(item))
    for source in where:
        if source.classes:
            return {int(c.value): c for c in source.classes}
    return {}


class ClassLayer(RasterLayer):
    """The class map: a one-band uint8 COG (255 = nodata) with its colour table and class names.

    Names come from the COG's ``CLASSES`` tag (``senclip map`` writes it), else the STAC Item's
    ``classification:classes`` (``title``, else ``name``), else ``class N``; every value the map
    holds has a legend entry. Colours come from the COG's colour table, else the Item's
    ``color_hint``, else senclip's class palette (:func:`senclip.mapping.writers.class_colors`).
    """

    def __init__(self, path: str | Path, item=None) -> None:
        super().__init__(path, item)
        if self.count != 1 or self.dtype != "uint8":
            raise SenclipError(f"{self.path}: a class map is one uint8 band; this file has {self.count} "
                               f"{self.dtype} band(s) (give it with --composite or --probabilities?)")
        from senclip.explore.areas import area_rule, class_areas
        from senclip.mapping.writers import NODATA_CLASS, class_colors

        self.nodata_value = int(self.nodata) if self.nodata is not None else NODATA_CLASS
        self.counts, self.km2 = class_areas(self.path)
        self.area_rule = area_rule(self.crs)
        described = item_classes(item)
        named = dict(enumerate(json.loads(self.tags["CLASSES"]))) if "CLASSES" in self.tags else \
            {v: c.title or c.name for v, c in described.items()}
        present = {int(v) for v in np.flatnonzero(self.counts)}
        values = sorted((set(named) | present) - {self.nodata_value})
        self.names: dict[int, str] = {v: named.get(v, f"class {v}") for v in values}
        palette = dict(zip(values, class_colors([self.names[v] for v in values]), strict=True))
        table = self.colormap or {}
        self.colormap = {}
        for v in values:
            hint = described[v].color_hint if v in described else None
            self.colormap[v] = table.get(v) or ((*bytes.fromhex(hint), 255) if hint else (*palette[v], 255))
        self.colormap[self.nodata_value] = (0, 0, 0, 0)

    def tile(self, z: int, x: int, y: int) -> bytes:
        img = self.read_tile(z, x, y, indexes=1)
        return empty_tile() if img is None else img.render(img_format="PNG", colormap=self.colormap)

    def legend(self) -> dict:
        """Each class's value, name, colour, pixel count, ground area (km²) and share of the mapped area."""
        nodata = self.nodata_value
        mapped = float(self.km2.sum() - self.km2[nodata])
        classes = [{"value": v, "name": name, "color": _hex(self.colormap[v]),
                    "pixels": int(self.counts[v]), "area_km2": float(self.km2[v]),
                    "percent": 100.0 * self.km2[v] / mapped if mapped else 0.0}
                   for v, name in self.names.items()]
        nodata_entry = {"value": nodata, "pixels": int(self.counts[nodata]),
                        "area_km2": float(self.km2[nodata])}
        return {"classes": classes, "mapped_km2": mapped, "nodata": nodata_entry, "area": self.area_rule}

    def point(self, lon: float, lat: float) -> dict:
        where, values = self.values_at(lon, lat)
        value = None if np.ma.is_masked(values[0]) else int(values[0])
        if value is None or value == self.nodata_value:
            cls = None
        else:
            name = self.names.get(value, f"class {value}")
            cls = {"value": value, "name": name, "color": _hex(self.colormap.get(value, (0, 0, 0)))}
        return {**where, "crs": self.crs.to_string(), "class": cls}


class ProbabilityLayer(RasterLayer):
    """Per-class probabilities: one float band per class, named by its description (``senclip map
    --probabilities`` writes them), else the STAC Item's ``senclip:classes``, else ``CLASSES``."""

    smooth = True

    def __init__(self, path: str | Path, item=None, fallback: list[str] | None = None) -> None:
        super().__init__(path, item)
        item_classes = item.properties.get("senclip:classes") if item is not None else None
        names = self.descriptions if all(self.descriptions) else None
        tagged = json.loads(self.tags["CLASSES"]) if "CLASSES" in self.tags else None
        chosen = names or item_classes or tagged or fallback or []
        self.names = list(chosen)[:self.count] + [f"class {i}" for i in range(len(chosen), self.count)]

    def check_class(self, index: int) -> None:
        if not 0 <= index < self.count:
            raise NotFound(f"class {index} is not in the probability file (0 to {self.count - 1})")

    def tile(self, z: int, x: int, y: int, index: int) -> bytes:
        self.check_class(index)
        return render_ramp(self.read_tile(z, x, y, indexes=index + 1), 0.0, 1.0, RAMP)

    def top(self, lon: float, lat: float, k: int = 3) -> list[dict]:
        """The ``k`` most probable classes at a point (empty where the file has no data)."""
        _, values = self.values_at(lon, lat)
        if np.ma.is_masked(values) and values.mask.all():
            return []
        v = np.ma.filled(values.astype(float), np.nan)
        order = [i for i in np.argsort(-np.nan_to_num(v, nan=-np.inf)) if np.isfinite(v[i])][:k]
        return [{"value": int(i), "name": self.names[i], "probability": float(v[i])} for i in order]
