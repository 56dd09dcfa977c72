"""A small area across two UTM zones, with Sentinel-2 L2A items in the three catalogue shapes.

What the area pipeline (``senclip composite``, ``map --bbox``) meets in real catalogues, small
enough for a test: the area straddles 12°E, the boundary between UTM zones 32 and 33, so a
zone-32 tile covers all of it and a zone-33 tile its eastern part (the zone-33 items are
reprojected onto the area's grid); scenes on several dates, some with two items (one per zone)
of the same acquisition; clouds, shadows and cirrus in the SCL band; processing baselines
before and from 04.00, with the BOA offset in the files as each catalogue publishes them
(:mod:`senclip.testing.catalogues`: Earth Search removed it, Planetary Computer and CDSE keep
it); a column of nodata in the zone-33 tile; a corner of the area clouded on every date; and
one date clouded all over.

The pixel values are reproducible from :func:`band_values` (harmonised digital numbers,
``reflectance x 10000``; the files of baseline ≥ 04.00 that keep the offset hold them + 1000
where not nodata). Tiles sit on the Sentinel-2 grid (origins on multiples of 60 m, 10 m bands
at 10 m, the other bands and SCL at 20 m).

:func:`build_area_catalogue` writes the COGs and one collection per catalogue shape (ids
``earth-search``, ``planetary-computer``, ``cdse``) for :class:`~senclip.testing.StacServer`;
the COGs are served from ``ROOT/assets`` by :class:`~senclip.testing.RangeServerProcess`.
:func:`benchmark_area` makes a larger, single-zone variant for ``benchmarks/area_throughput.py``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from senclip.testing.catalogues import CATALOGUES, CatalogueScene, ItemFiles, shaped_item, write_collections

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
"""The ten bands of every test item (TimeSenCLIP's order)."""
BASE_DN = {
    "B02": 450,
    "B03": 700,
    "B04": 650,
    "B05": 1100,
    "B06": 2000,
    "B07": 2400,
    "B08": 2700,
    "B8A": 2800,
    "B11": 1900,
    "B12": 1100,
}
"""Typical vegetated-land reflectance x 10000 of each band, the centre of the generated values."""
CLOUD_CLASSES = (3, 8, 9, 10)
"""SCL classes drawn as clouds: shadow, medium and high probability cloud, cirrus."""


@dataclass(frozen=True)
class Tile:
    """One Sentinel-2 tile: UTM zone, MGRS name, top-left corner and size in 10 m pixels."""

    epsg: int
    name: str
    origin: tuple[float, float]
    size: tuple[int, int]  # (width, height) at 10 m; even, so the 20 m grid covers it exactly
    nodata_columns: int = 0  # 20 m columns of nodata at the tile's west edge

    def grid(self, res: float) -> tuple[tuple[int, int], list[float]]:
        """``(shape (h, w), transform)`` of a band at ``res`` metres."""
        f = round(res / 10)
        shape = (self.size[1] // f, self.size[0] // f)
        return shape, [res, 0.0, self.origin[0], 0.0, -res, self.origin[1]]


@dataclass(frozen=True)
class AreaScene:
    """One acquisition: date, baseline, satellite, the tiles (EPSG codes) holding it, its clouds."""

    date: str
    baseline: str
    platform: str
    tiles: tuple[int, ...]
    clouds: str = "some"  # "some": a few cloud patches; "all": cloud (class 9) everywhere
    cloud_cover: float = 12.0


@dataclass(frozen=True)
class AreaCatalogue:
    """An area, its tiles and its acquisitions."""

    bbox: tuple[float, float, float, float]
    tiles: tuple[Tile, ...]
    scenes: tuple[AreaScene, ...]
    always_cloudy: tuple[float, float, float, float] | None = None  # lon/lat box clouded on every date
    blocksize: int = 64
    extra: dict = field(default_factory=dict)


TEST_AREA = AreaCatalogue(
    bbox=(11.985, 46.995, 12.012, 47.004),  # about 2.0 x 1.0 km; centre 11.9985 E: UTM zone 32
    tiles=(
        Tile(32632, "32TQS", (726600.0, 5210400.0), (264, 180)),
        Tile(32633, "33TUM", (271680.0, 5210400.0), (144, 180), nodata_columns=2),
    ),
    scenes=(
        AreaScene("2021-12-20", "03.00", "sentinel-2a", (32632,), clouds="all", cloud_cover=100.0),
        AreaScene("2022-01-10", "03.01", "sentinel-2a", (32632, 32633), cloud_cover=20.0),
        AreaScene("2022-01-20", "03.01", "sentinel-2b", (32632,), cloud_cover=8.0),
        AreaScene("2022-02-14", "04.00", "sentinel-2a", (32632, 32633), cloud_cover=15.0),
        AreaScene("2022-03-11", "04.00", "sentinel-2b", (32632, 32633), cloud_cover=5.0),
        AreaScene("2022-06-10", "04.00", "sentinel-2a", (32632, 32633), cloud_cover=30.0),
    ),
    always_cloudy=(11.9852, 46.9952, 11.9866, 46.9960),
)
"""The test area: 2021-12-20 is clouded all over; the season 2022-01-01/2022-03-31 has four
dates (two across the baseline change), the year 2022 five, in January, February, March, June."""
SEASON = "2022-01-01/2022-03-31"


def benchmark_area(km: float = 20.0, dates: int = 6) -> AreaCatalogue:
    """A square area of ``km`` x ``km`` in UTM zone 33 covered by one tile, ``dates`` acquisitions."""
    from pyproj import Transformer

    n = round(km * 100) + 24  # 10 m pixels, with a margin of 120 m on each side
    n += n % 2
    x0, y1 = 499980.0, 5300040.0  # the corner of MGRS tile 33UVP
    to_wgs = Transformer.from_crs(32633, 4326, always_xy=True)
    m = 120.0
    lons, lats = to_wgs.transform([x0 + m, x0 + n * 10 - m], [y1 - n * 10 + m, y1 - m])
    scenes = tuple(
        AreaScene(
            f"2022-{4 + i:02d}-{10 + i:02d}",
            "04.00" if i % 2 else "03.01",
            "sentinel-2a",
            (32633,),
            cloud_cover=10.0,
        )
        for i in range(dates)
    )
    return AreaCatalogue(
        (lons[0], lats[0], lons[1], lats[1]), (Tile(32633, "33UVP", (x0, y1), (n, n)),), scenes, blocksize=512
    )


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def band_values(scene: AreaScene, tile: Tile, band: str) -> np.ndarray:
    """Harmonised DN of ``band`` (uint16, 0 = nodata) of ``scene`` over ``tile`` at the band's resolution."""
    res = 10.0 if band in BANDS_10M else 20.0
    (h, w), _ = tile.grid(res)
    rng = _rng(scene.date, tile.epsg, band)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = 40.0 * (10.0 / res)
    field_ = np.sin(xx / period + rng.uniform(0, 6.3)) * np.cos(yy / (period * 0.7) + rng.uniform(0, 6.3))
    values = BASE_DN[band] * (1.0 + 0.5 * field_) + rng.integers(-60, 61, size=(h, w))
    out = np.clip(values, 1, 10000).astype(np.uint16)
    if tile.nodata_columns:
        out[:, : tile.nodata_columns * round(20 / res)] = 0
    return out


def scl_values(area: AreaCatalogue, scene: AreaScene, tile: Tile) -> np.ndarray:
    """SCL (uint8, 20 m) of ``scene`` over ``tile``: land classes, cloud patches, nodata columns."""
    (h, w), transform = tile.grid(20.0)
    rng = _rng(scene.date, tile.epsg, "SCL")
    scl = rng.choice(np.array([4, 5, 6, 7], dtype=np.uint8), p=[0.55, 0.25, 0.15, 0.05], size=(h, w))
    if scene.clouds == "all":
        scl[:] = 9
    else:
        for _ in range(4):
            ph, pw = rng.integers(4, 14, size=2)
            r, c = rng.integers(0, h - ph), rng.integers(0, w - pw)
            scl[r : r + ph, c : c + pw] = rng.choice(CLOUD_CLASSES)
        scl[rng.random((h, w)) < 0.01] = 1  # saturated pixels, masked by default
    if area.always_cloudy is not None:
        from pyproj import Transformer

        x, y = Transformer.from_crs(4326, tile.epsg, always_xy=True).transform(
            [area.always_cloudy[0], area.always_cloudy[2]], [area.always_cloudy[1], area.always_cloudy[3]]
        )
        c0, c1 = (int((v - transform[2]) // 20) for v in x)
        r1, r0 = (int((transform[5] - v) // 20) for v in y)
        scl[max(r0, 0) : max(r1 + 1, 0), max(c0, 0) : max(c1 + 1, 0)] = 8
    if tile.nodata_columns:
        scl[:, : tile.nodata_columns] = 0
    return scl


def _write_cog(path: Path, data: np.ndarray, tile: Tile, res: float, blocksize: int) -> None:
    import rasterio
    from affine import Affine

    _, t = tile.grid(res)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype.name,
        crs=f"EPSG:{tile.epsg}",
        transform=Affine(*t),
        nodata=0,
        compress="deflate",
        blocksize=blocksize,
        overviews="NONE",
    ) as dst:
        dst.write(data, 1)


def _footprint(tile: Tile) -> tuple[dict, list[float]]:
    from pyproj import Transformer

    x0, y1 = tile.origin
    x1, y0 = x0 + tile.size[0] * 10, y1 - tile.size[1] * 10
    xs, ys = Transformer.from_crs(tile.epsg, 4326, always_xy=True).transform(
        [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]
    )
    geom = {"type": "Polygon", "coordinates": [[[x, y] for x, y in zip(xs, ys, strict=True)]]}
    return geom, [min(xs), min(ys), max(xs), max(ys)]


def offset_in_files(catalogue: str, baseline: str) -> bool:
    """Whether the files of ``catalogue`` for ``baseline`` hold the +1000 DN BOA offset."""
    return float(baseline) >= 4.0 and catalogue != "earth-search"


def catalogue_scene(catalogue: str, scene: AreaScene, tile: Tile) -> CatalogueScene:
    """The :class:`CatalogueScene` (id, properties) of one item of ``scene`` on ``tile``."""
    new = float(scene.baseline) >= 4.0
    values = "offset" if offset_in_files(catalogue, scene.baseline) else "plain"
    if catalogue == "earth-search":  # offset removed by Element 84; raster:bands still state -0.1
        return CatalogueScene(
            catalogue,
            scene.date,
            scene.baseline,
            values,
            flag=new,
            raster_offset=-0.1 if new else 0.0,
            tile=tile.name,
            platform=scene.platform,
            cloud_cover=scene.cloud_cover,
        )
    return CatalogueScene(
        catalogue,
        scene.date,
        scene.baseline,
        values,
        raster_offset=-0.1 if new else (None if catalogue == "planetary-computer" else 0.0),
        tile=tile.name,
        platform=scene.platform,
        cloud_cover=scene.cloud_cover,
    )


def asset_path(tile: Tile, scene: AreaScene, values: str, band: str) -> str:
    """Path of a band file relative to the asset folder."""
    return f"{tile.epsg}/{scene.date}/{values}/{band}.tif"


def write_area_assets(folder: str | Path, area: AreaCatalogue = TEST_AREA) -> Path:
    """Every band and SCL COG of every item of ``area`` under ``folder`` (plain and, from 04.00, offset)."""
    folder = Path(folder)
    tiles = {t.epsg: t for t in area.tiles}
    for scene in area.scenes:
        for epsg in scene.tiles:
            tile = tiles[epsg]
            variants = ("plain", "offset") if float(scene.baseline) >= 4.0 else ("plain",)
            for band in BANDS:
                data = band_values(scene, tile, band)
                res = 10.0 if band in BANDS_10M else 20.0
                for variant in variants:
                    shifted = (
                        np.where(data > 0, data + 1000, 0).astype(np.uint16) if variant == "offset" else data
                    )
                    _write_cog(
                        folder / asset_path(tile, scene, variant, band), shifted, tile, res, area.blocksize
                    )
            scl = scl_values(area, scene, tile)
            for variant in variants:
                _write_cog(folder / asset_path(tile, scene, variant, "SCL"), scl, tile, 20.0, area.blocksize)
    return folder


def area_items(
    base_url: str, area: AreaCatalogue = TEST_AREA, catalogues: tuple[str, ...] = CATALOGUES
) -> list[dict]:
    """The STAC items of ``area`` in each catalogue shape (collection = the shape's name)."""
    tiles = {t.epsg: t for t in area.tiles}
    out = []
    for cat in catalogues:
        for scene in area.scenes:
            for epsg in scene.tiles:
                tile = tiles[epsg]
                cs = catalogue_scene(cat, scene, tile)
                geom, bbox = _footprint(tile)
                names = (*BANDS, "SCL")
                res = {b: 10.0 if b in BANDS_10M else 20.0 for b in names}
                files = ItemFiles(
                    epsg,
                    geom,
                    bbox,
                    {b: f"{base_url.rstrip('/')}/{asset_path(tile, scene, cs.values, b)}" for b in names},
                    res,
                    {b: tile.grid(res[b]) for b in names},
                )
                out.append(shaped_item(cs, files))
    return out


def build_area_catalogue(root: str | Path, base_url: str, area: AreaCatalogue = TEST_AREA) -> list[Path]:
    """Write ``root/assets`` (serve it at ``base_url``) and ``root/stac``; returns the JSON files to serve."""
    root = Path(root)
    write_area_assets(root / "assets", area)
    return write_collections(root / "stac", area_items(base_url, area))


__all__ = [
    "BANDS",
    "SEASON",
    "TEST_AREA",
    "AreaCatalogue",
    "AreaScene",
    "Tile",
    "area_items",
    "asset_path",
    "band_values",
    "benchmark_area",
    "build_area_catalogue",
    "catalogue_scene",
    "offset_in_files",
    "scl_values",
    "write_area_assets",
]
