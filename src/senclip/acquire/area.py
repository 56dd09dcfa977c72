"""An area and its grid: ``--bbox`` / ``--area`` in, one 10 m pixel grid and its blocks out.

**The area.** ``--bbox W,S,E,N`` in WGS84 degrees, or ``--area FILE``: GeoJSON, GeoPackage,
GeoParquet or Shapefile, read with geopandas in any CRS; its polygons are unioned. A bbox maps
the whole rectangle of the grid that covers it; an area file also masks the pixels whose centre
lies outside its polygons (nodata there). Refused, each with one line: an empty or invalid
geometry (no polygon, self-intersections), a bbox with W > E (it would cross the antimeridian:
split it in two at 180°), latitudes beyond ±84° without ``--crs`` (outside the UTM zones), and
an area larger than ``max_area_km2`` without ``--yes``.

**The grid** (:class:`AreaGrid`) is a value decided once and passed down to every block and
every writer: the CRS (the UTM zone of the area's centre, north or south, or ``--crs``), 10 m
pixels, and pixel edges on multiples of 10 m in that CRS (the Sentinel-2 grid), so two runs over
overlapping areas line up pixel for pixel. Its extent is the area's bounds in the CRS, widened to
the next multiples of 10 m.

**Blocks** (:meth:`AreaGrid.blocks`) cut the grid into squares of ``block`` pixels from its
top-left corner (the last row and column may be smaller). A block is the unit of work of the
area pipeline: loaded, composited and mapped on its own, in bounded memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from senclip.errors import SenclipError

RESOLUTION = 10.0
"""Pixel size of every area grid, in metres (Sentinel-2's finest bands)."""
UTM_LIMIT = 84.0
"""UTM covers 80°S to 84°N; beyond ±84° a polar CRS is needed (``--crs``)."""
AREA_SUFFIXES = (".geojson", ".json", ".gpkg", ".parquet", ".geoparquet", ".shp", ".zip")


@dataclass(frozen=True)
class Area:
    """The area asked for: a WGS84 (multi)polygon and whether pixels outside it are masked.

    Attributes:
        wkt: the geometry in WGS84 as WKT (plain data: it travels to Dask workers).
        mask: pixels whose centre is outside the geometry are nodata (``--area``), or the whole
            grid rectangle is kept (``--bbox``).
        source: what the user gave (``--bbox …`` or the file), for messages and provenance.
    """

    wkt: str
    mask: bool
    source: str

    @property
    def geometry(self):
        from shapely import wkt

        return wkt.loads(self.wkt)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(self.geometry.bounds)


def parse_bbox(text: str) -> Area:
    """``W,S,E,N`` in WGS84 degrees → :class:`Area` (checked)."""
    from shapely.geometry import box

    try:
        w, s, e, n = (float(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        raise SenclipError(f"--bbox must be four numbers W,S,E,N in degrees, got {text!r}") from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise SenclipError(f"--bbox {text}: not finite numbers")
    if w > e:
        raise SenclipError(
            f"--bbox {text}: west {w} is east of east {e}; a bbox crossing the antimeridian is "
            "not supported, split it into two areas at 180°"
        )
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise SenclipError(
            f"--bbox {text}: longitudes must be within ±180 and latitudes within ±90 (W,S,E,N order, degrees)"
        )
    if s >= n or w == e:
        raise SenclipError(
            f"--bbox {text}: empty area (south {s} must be below north {n}, west {w} west of east {e})"
        )
    return Area(box(w, s, e, n).wkt, mask=False, source=f"--bbox {text}")


def read_area(path: str | Path) -> Area:
    """The union of the polygons of a GeoJSON/GeoPackage/GeoParquet/Shapefile, in WGS84 (checked)."""
    import geopandas as gpd
    from shapely.validation import explain_validity

    path = Path(path)
    if not path.exists():
        raise SenclipError(f"--area {path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            frame = gpd.read_parquet(path)
        else:
            frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio / pyarrow errors of every kind: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SenclipError(
            f"--area {path}: not a readable vector file (GeoJSON, GeoPackage, GeoParquet, Shapefile): {first}"
        ) from exc
    if frame.crs is None:
        raise SenclipError(f"--area {path} has no CRS; save it with one (GeoJSON is WGS84 by definition)")
    geoms = [g for g in frame.to_crs("EPSG:4326").geometry if g is not None and not g.is_empty]
    polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        kinds = sorted({g.geom_type for g in geoms}) or ["nothing"]
        raise SenclipError(f"--area {path} holds no polygon ({', '.join(kinds)}); give the area as polygons")
    bad = [g for g in polys if not g.is_valid]
    if bad:
        raise SenclipError(
            f"--area {path}: invalid polygon ({explain_validity(bad[0])}); repair it, e.g. "
            "with QGIS's 'Fix geometries'"
        )
    from shapely import union_all

    union = union_all(polys)
    if union.is_empty or union.area == 0:
        raise SenclipError(f"--area {path}: the polygons are empty")
    w, _, e, _ = union.bounds
    if e - w > 180:
        raise SenclipError(
            f"--area {path} spans {e - w:.0f}° of longitude (crosses the antimeridian?); split "
            "it into two areas at 180°"
        )
    return Area(union.wkt, mask=True, source=f"--area {path}")


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lon, lat): 326zz north, 327zz south.

    The regular 6° zones: the MGRS exceptions (32V widened over south-western Norway, 31X-37X over
    Svalbard) are not applied, so there an area may get the zone next to its tiles' (their scenes
    are reprojected; ``--crs`` picks the tiles' zone).
    """
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class Block:
    """One block of an area grid: its position and pixel window."""

    row: int
    col: int
    x: int  # column offset in the area grid
    y: int  # row offset
    width: int
    height: int

    @property
    def name(self) -> str:
        return f"r{self.row:03d}c{self.col:03d}"


@dataclass(frozen=True)
class AreaGrid:
    """A 10 m pixel grid (CRS, origin, size) decided once for an area; see the module docstring."""

    epsg: int
    x0: float
    y1: float
    width: int
    height: int
    resolution: float = RESOLUTION

    @property
    def crs(self):
        from rasterio.crs import CRS

        return CRS.from_epsg(self.epsg)

    @property
    def transform(self):
        from affine import Affine

        return Affine(self.resolution, 0.0, self.x0, 0.0, -self.resolution, self.y1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def area_km2(self) -> float:
        return self.width * self.height * self.resolution**2 / 1e6

    def window_transform(self, block: Block):
        """The transform of a block's pixels."""
        from affine import Affine

        r = self.resolution
        return Affine(r, 0.0, self.x0 + block.x * r, 0.0, -r, self.y1 - block.y * r)

    def blocks(self, size: int) -> list[Block]:
        """The grid cut into ``size`` x ``size`` pixel blocks, row by row."""
        if size < 16:
            raise SenclipError(f"--block-size must be at least 16 pixels, got {size}")
        out = []
        for i, y in enumerate(range(0, self.height, size)):
            for j, x in enumerate(range(0, self.width, size)):
                out.append(Block(i, j, x, y, min(size, self.width - x), min(size, self.height - y)))
        return out

    def identity(self) -> dict:
        return {
            "epsg": self.epsg,
            "x0": self.x0,
            "y1": self.y1,
            "width": self.width,
            "height": self.height,
            "resolution": self.resolution,
        }


def to_grid_crs(geom, epsg: int):
    """A WGS84 geometry in the grid's CRS, its edges densified to 0.001° first (they curve there)."""
    import shapely
    from pyproj import Transformer

    to_grid = Transformer.from_crs(4326, epsg, always_xy=True)
    return shapely.transform(geom.segmentize(0.001), lambda x, y: to_grid.transform(x, y), interleaved=False)


def area_grid(area: Area, crs: str | int | None = None, resolution: float = RESOLUTION) -> AreaGrid:
    """The grid of ``area``: the UTM zone of its centre (or ``crs``), ``resolution`` m, edges on multiples.

    Raises:
        SenclipError: beyond ±84° latitude without ``crs``; a CRS that is not projected in metres.
    """
    from rasterio.crs import CRS

    geom = area.geometry
    _, s, _, n = geom.bounds
    if crs is None:
        if s < -80.0 or n > UTM_LIMIT:
            raise SenclipError(
                f"{area.source} reaches latitude {min(s, -80.0) if s < -80 else n:.2f}°, outside "
                "the UTM zones (80°S to 84°N); pass --crs with a polar projection, e.g. "
                "EPSG:3413 (north) or EPSG:3031 (south)"
            )
        centre = geom.centroid
        epsg = utm_epsg(centre.x, centre.y)
    else:
        try:
            parsed = CRS.from_user_input(crs if not str(crs).isdigit() else int(crs))
        except Exception as exc:
            raise SenclipError(f"--crs {crs}: not a CRS rasterio knows ({exc})") from None
        units = (parsed.linear_units or "").lower()
        if not parsed.is_projected or units not in ("metre", "meter", "m"):
            raise SenclipError(f"--crs {crs} is not a projected CRS in metres; the grid has 10 m pixels")
        epsg = parsed.to_epsg()
        if epsg is None:
            raise SenclipError(f"--crs {crs} has no EPSG code; give one (EPSG:nnnn)")
    x0, y0, x1, y1 = to_grid_crs(geom, epsg).bounds
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise SenclipError(f"{area.source} cannot be projected to EPSG:{epsg}; pass another --crs")
    r = resolution
    gx0, gy0 = math.floor(x0 / r) * r, math.floor(y0 / r) * r
    gx1, gy1 = math.ceil(x1 / r) * r, math.ceil(y1 / r) * r
    width, height = max(1, round((gx1 - gx0) / r)), max(1, round((gy1 - gy0) / r))
    return AreaGrid(epsg, gx0, gy1, width, height, r)


def check_size(grid: AreaGrid, max_area_km2: float, yes: bool) -> None:
    """Refuse an area above ``max_area_km2`` unless ``yes`` (``--yes``)."""
    if grid.area_km2 > max_area_km2 and not yes:
        raise SenclipError(
            f"the area covers {grid.area_km2:,.0f} km² ({grid.width} x {grid.height} px at "
            f"{grid.resolution:g} m), more than --max-area-km2 {max_area_km2:g}; pass --yes to "
            "go ahead, or a smaller area"
        )


def block_mask(area: Area, grid: AreaGrid, block: Block):
    """``(h, w)`` bool: pixels of ``block`` whose centre lies inside the area (all True for a bbox)."""
    import numpy as np

    if not area.mask:
        return np.ones((block.height, block.width), dtype=bool)
    from rasterio.features import geometry_mask

    return geometry_mask(
        [to_grid_crs(area.geometry, grid.epsg)],
        out_shape=(block.height, block.width),
        transform=grid.window_transform(block),
        invert=True,
    )


def block_lonlat_bounds(grid: AreaGrid, block: Block) -> tuple[float, float, float, float]:
    """WGS84 bounds of a block (for choosing the items that reach it)."""
    from rasterio.warp import transform_bounds

    t = grid.window_transform(block)
    x0, y1 = t.c, t.f
    x1, y0 = x0 + block.width * t.a, y1 + block.height * t.e
    return transform_bounds(grid.crs, "EPSG:4326", x0, y0, x1, y1, densify_pts=21)


__all__ = [
    "AREA_SUFFIXES",
    "RESOLUTION",
    "Area",
    "AreaGrid",
    "Block",
    "area_grid",
    "block_lonlat_bounds",
    "block_mask",
    "check_size",
    "parse_bbox",
    "read_area",
    "utm_epsg",
]
