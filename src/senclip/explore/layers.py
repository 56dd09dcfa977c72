"""The explorer's raster layers: web-mercator tiles, point values and the legend, read with rio-tiler.

Each layer is one COG fixed when the explorer starts (:mod:`senclip.explore.sources`); requests
only choose a tile, a point, a class or a stretch. A file is opened per request (rio-tiler's
:class:`~rio_tiler.io.Reader`), so concurrent requests never share a GDAL handle.

* :class:`ClassLayer`: the class map, drawn with the colour table of its COG; its legend gives each
  class's area.
* :class:`CompositeLayer`: true colour (red, green, blue bands) with a linear stretch.
* :class:`ProbabilityLayer`: one class's probability as a colour ramp, and a point's top classes.

A tile is "on the map" when its web-mercator square overlaps the map's web-mercator bounds; the
page gives Leaflet the same bounds (``bounds`` of :meth:`RasterLayer.extent`), so the browser never
asks for a tile the server calls off the map.
"""

from __future__ import annotations

import json
import warnings
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


class RasterLayer:
    """One COG: its grid, its extent in web mercator and WGS84, and tiles read by rio-tiler."""

    def __init__(self, path: str | Path) -> None:
        from rio_tiler.io import Reader

        self.path = Path(path)
        try:
            with rasterio.open(self.path) as ds:
                self.crs, self.transform, self.shape = ds.crs, ds.transform, ds.shape
                self.count, self.dtype, self.nodata = ds.count, ds.dtypes[0], ds.nodata
                self.descriptions = list(ds.descriptions)
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

    def extent(self) -> dict:
        """Bounds in WGS84 (``[[south, west], [north, east]]``, as Leaflet takes them) and zooms."""
        west, south, east, north = transform_bounds(MERCATOR, WGS84, *self.mercator)
        return {"bounds": [[south, west], [north, east]], "minzoom": self.minzoom, "maxzoom": self.maxzoom}

    def covers(self, z: int, x: int, y: int) -> bool:
        from rio_tiler.constants import WEB_MERCATOR_TMS

        left, bottom, right, top = WEB_MERCATOR_TMS.xy_bounds(x, y, z)
        w, s, e, n = self.mercator
        return left < e and right > w and bottom < n and top > s

    def read_tile(self, z: int, x: int, y: int, indexes, **options):
        """The tile as rio-tiler ``ImageData`` (masked where the file has no data).

        Raises:
            BadRequest: z/x/y name no tile. NotFound: the tile is off the map.
        """
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.io import Reader
        from rio_tiler.models import ImageData

        check_tile(z, x, y)
        if not self.covers(z, x, y):
            raise NotFound(f"tile {z}/{x}/{y} is outside the map")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Reader(str(self.path), options=options) as reader:
                try:
                    return reader.tile(x, y, z, tilesize=TILE_SIZE, indexes=indexes)
                except TileOutsideBounds:  # on the map's mercator bounds, off its own grid: empty
                    n = 1 if isinstance(indexes, int) else len(indexes)
                    empty = np.ma.masked_all((n, TILE_SIZE, TILE_SIZE), dtype=self.dtype)
                    return ImageData(empty)

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


def _read_item(path: Path | None) -> dict:
    return json.loads(path.read_text()) if path else {}


class ClassLayer(RasterLayer):
    """The class map: a one-band uint8 COG (255 = nodata) with its colour table and class names.

    Names come from the COG's ``CLASSES`` tag (``senclip map`` writes it), else the STAC Item's
    ``classification:classes``, else ``class N``. Colours come from the COG's colour table, else the
    Item's ``color_hint``, else senclip's class palette.
    """

    def __init__(self, path: str | Path, item: Path | None = None) -> None:
        super().__init__(path)
        if self.count != 1 or self.dtype != "uint8":
            raise SenclipError(f"{self.path}: a class map is one uint8 band; this file has {self.count} "
                               f"{self.dtype} band(s) (give it with --composite or --probabilities?)")
        from senclip.mapping.writers import NODATA_CLASS, class_colors

        self.nodata_value = int(self.nodata) if self.nodata is not None else NODATA_CLASS
        props = _read_item(item).get("properties", {})
        item_classes = {int(c["value"]): c for c in props.get("classification:classes", [])}
        names = json.loads(self.tags["CLASSES"]) if "CLASSES" in self.tags else None
        if names is None:
            top = max(item_classes, default=-1)
            names = [item_classes.get(v, {}).get("name", f"class {v}") for v in range(top + 1)]
        self.names: list[str] = list(names)
        if self.colormap is None:
            fallback = class_colors(self.names)
            self.colormap = {v: (*(bytes.fromhex(item_classes[v]["color_hint"]) if "color_hint" in
                                   item_classes.get(v, {}) else fallback[v]), 255) for v in range(len(names))}
            self.colormap[self.nodata_value] = (0, 0, 0, 0)
        self._legend: dict | None = None

    def tile(self, z: int, x: int, y: int) -> bytes:
        img = self.read_tile(z, x, y, indexes=1)
        return img.render(img_format="PNG", colormap=self.colormap)

    def legend(self) -> dict:
        """Each class's value, name, colour, pixel count, area (km²) and share of the mapped area."""
        if self._legend is None:
            counts, km2 = class_areas(self.path)
            mapped = sum(counts[v] for v in range(256) if v != self.nodata_value)
            mapped_km2 = sum(km2[v] for v in range(256) if v != self.nodata_value)
            classes = [{"value": v, "name": name, "color": _hex(self.colormap.get(v, (0, 0, 0))),
                        "pixels": int(counts[v]), "area_km2": float(km2[v]),
                        "percent": 100.0 * counts[v] / mapped if mapped else 0.0}
                       for v, name in enumerate(self.names)]
            self._legend = {"classes": classes, "mapped_km2": float(mapped_km2),
                            "nodata": {"value": self.nodata_value, "pixels": int(counts[self.nodata_value]),
                                       "area_km2": float(km2[self.nodata_value])},
                            "area": area_rule(self.crs)}
        return self._legend

    def point(self, lon: float, lat: float) -> dict:
        where, values = self.values_at(lon, lat)
        value = None if np.ma.is_masked(values[0]) else int(values[0])
        if value is None or value == self.nodata_value:
            cls = None
        else:
            name = self.names[value] if value < len(self.names) else f"class {value}"
            cls = {"value": value, "name": name, "color": _hex(self.colormap.get(value, (0, 0, 0)))}
        return {**where, "crs": self.crs.to_string(), "class": cls}


def area_rule(crs) -> str:
    if crs.is_projected:
        return "pixel area on the map's projected grid"
    return "ellipsoidal area of each row's pixels (WGS84 ellipsoid)"


def pixel_areas_km2(ds) -> np.ndarray:
    """Area of one pixel of each row, km² (``(height,)``): constant on a projected grid."""
    t = ds.transform
    if ds.crs.is_projected:
        unit = ds.crs.linear_units_factor[1]
        return np.full(ds.height, abs(t.a * t.e - t.b * t.d) * unit * unit / 1e6)
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    areas = np.empty(ds.height)
    for r in range(ds.height):
        (x0, y0), (x1, y1) = t @ (0, r), t @ (1, r + 1)
        area, _ = geod.polygon_area_perimeter([x0, x1, x1, x0], [y0, y0, y1, y1])
        areas[r] = abs(area) / 1e6
    return areas


def class_areas(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count and area (km²) of each value 0..255 of a uint8 map, read block by block."""
    counts = np.zeros(256, dtype=np.int64)
    km2 = np.zeros(256)
    with rasterio.open(path) as ds:
        row_km2 = pixel_areas_km2(ds)
        for _, window in ds.block_windows(1):
            block = ds.read(1, window=window)
            h = block.shape[0]
            per_row = np.bincount((np.arange(h)[:, None] * 256 + block).ravel(), minlength=h * 256)
            per_row = per_row.reshape(h, 256)
            counts += per_row.sum(0)
            km2 += (per_row * row_km2[window.row_off:window.row_off + h, None]).sum(0)
    return counts, km2


RGB_NAMES = {"red": ("B04", "red"), "green": ("B03", "green"), "blue": ("B02", "blue")}


class CompositeLayer(RasterLayer):
    """A Sentinel-2 composite in true colour with a linear stretch (default: 2nd-98th percentile).

    Red, green and blue are the bands described as ``B04``/``B03``/``B02`` (or ``red``/``green``/
    ``blue``), else those the STAC Item's ``eo:bands`` name so, else bands 1-3; where a band name
    occurs more than once (a monthly composite), the first. Values are the file's, with its GDAL
    scale and offset applied.
    """

    def __init__(self, path: str | Path, item: Path | None = None) -> None:
        super().__init__(path)
        if self.count < 3:
            raise SenclipError(f"{self.path}: a composite needs red, green and blue bands; "
                               f"it has {self.count}")
        eo = _read_item(item).get("assets", {}).get("data", {}).get("eo:bands", [])
        self.rgb = tuple(self._band(colour, eo, default) for default, colour in enumerate(RGB_NAMES, 1))
        self.stretch = self._default_stretch()

    def _band(self, colour: str, eo: list, default: int) -> int:
        names = {n.lower() for n in RGB_NAMES[colour]}
        for labels in (self.descriptions, [b.get("name") for b in eo], [b.get("common_name") for b in eo]):
            for i, label in enumerate(labels):
                if label and label.lower() in names:
                    return i + 1
        return default

    def _default_stretch(self) -> tuple[float, float]:
        from rio_tiler.io import Reader

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Reader(str(self.path), options={"unscale": self.scaled}) as reader:
                img = reader.preview(indexes=self.rgb, max_size=1024)
        valid = img.array.compressed()
        valid = valid[np.isfinite(valid)]
        if valid.size == 0:
            return 0.0, 1.0
        lo, hi = (float(v) for v in np.percentile(valid, [2, 98]))
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def tile(self, z: int, x: int, y: int, lo: float | None = None, hi: float | None = None) -> bytes:
        lo = self.stretch[0] if lo is None else lo
        hi = self.stretch[1] if hi is None else hi
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise BadRequest(f"stretch min {lo} and max {hi}: give finite numbers with min < max")
        img = self.read_tile(z, x, y, indexes=self.rgb, unscale=self.scaled)
        img.rescale(in_range=((lo, hi),) * 3)
        return img.render(img_format="PNG")


class ProbabilityLayer(RasterLayer):
    """Per-class probabilities: one float band per class, named by its description (``senclip map
    --probabilities`` writes them), else the STAC Item's ``senclip:classes``, else ``CLASSES``."""

    def __init__(self, path: str | Path, item: Path | None = None, fallback: list[str] | None = None) -> None:
        super().__init__(path)
        item_classes = _read_item(item).get("properties", {}).get("senclip:classes")
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
