"""Sentinel-2 chips around a point: grid, cloud ranking over the chip, windowed reads, GeoTIFF output.

A chip is ``chip_px`` x ``chip_px`` pixels at ``resolution`` metres in the
CRS of the scene's first requested band (the UTM zone of the Sentinel-2
tile), aligned to that band's pixel grid. The pixel holding the point is at
row/column ``chip_px // 2``. Only the chip window of each Cloud-Optimised
GeoTIFF is read (rasterio windowed reads; over HTTP these become range
requests for the tiles that overlap the window). Coarser bands (20 m, 60 m)
are resampled onto the chip grid, by nearest neighbour unless asked
otherwise, so a 20 m pixel becomes 2 x 2 identical 10 m pixels.

Cloud over the chip comes from the scene classification (SCL) band of L2A
products when the item has one: the percentage of chip pixels classed no
data (0), saturated (1), cloud shadow (3), cloud (8, 9) or cirrus (10).
Without SCL the item's scene-wide ``eo:cloud_cover`` is used instead.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from senclip.acquire.stac import asset_href, find_asset, item_cloud_cover, item_datetime
from senclip.bands import SCL_UNUSABLE
from senclip.errors import SenclipError
from senclip.net import RemoteError, RetryPolicy, gdal_env, retry_call

RESAMPLING = ("nearest", "bilinear", "cubic", "average")


@dataclass(frozen=True)
class ChipSpec:
    """What to cut around each point.

    Attributes:
        bands: Sentinel-2 band codes, in output order (``B02``, ``B8A``, …).
        chip_px: chip width and height in pixels.
        resolution: pixel size in metres.
        resampling: resampling of bands coarser than ``resolution``.
    """

    bands: tuple[str, ...] = ("B02", "B03", "B04")
    chip_px: int = 100
    resolution: float = 10.0
    resampling: str = "nearest"

    def __post_init__(self) -> None:
        if not self.bands:
            raise SenclipError("no bands requested; pass e.g. --download-bands B02,B03,B04")
        if len(set(self.bands)) != len(self.bands):
            raise SenclipError(f"bands listed twice in {','.join(self.bands)}")
        if self.chip_px < 1:
            raise SenclipError(f"--chip-px must be positive, got {self.chip_px}")
        if self.resolution <= 0:
            raise SenclipError(f"resolution must be positive, got {self.resolution}")
        if self.resampling not in RESAMPLING:
            raise SenclipError(
                f"unknown resampling {self.resampling!r}; choose one of {', '.join(RESAMPLING)}"
            )


@dataclass(frozen=True)
class Grid:
    """The pixel grid of one chip: CRS, affine transform and size."""

    crs: object
    transform: object
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)


@dataclass
class Candidate:
    """A scene considered for a point, with its cloud over the chip."""

    item: object
    grid: Grid
    cloud: float | None
    cloud_source: str
    days: int

    def sort_key(self) -> tuple:
        unknown = self.cloud is None
        return (unknown, self.cloud or 0.0, self.days, item_cloud_cover(self.item) or 0.0, self.item.id)


def _open(href: str, policy: RetryPolicy, attempt: int, what):
    import rasterio

    with rasterio.Env(**gdal_env(policy, retry_of=href if attempt > 1 else None)):
        with rasterio.open(href) as src:
            return what(src)


def chip_grid(href: str, lon: float, lat: float, spec: ChipSpec, policy: RetryPolicy) -> Grid:
    """The chip grid around (lon, lat) in the CRS and pixel alignment of asset ``href``."""
    from affine import Affine
    from rasterio.warp import transform as warp

    def _grid(src) -> Grid:
        xs, ys = warp("EPSG:4326", src.crs, [lon], [lat])
        t, res = src.transform, spec.resolution
        col = math.floor((xs[0] - t.c) / res)
        row = math.floor((t.f - ys[0]) / res)
        half = spec.chip_px // 2
        x0, y0 = t.c + (col - half) * res, t.f - (row - half) * res
        return Grid(src.crs, Affine(res, 0.0, x0, 0.0, -res, y0), spec.chip_px, spec.chip_px)

    return retry_call(
        lambda a: _open(href, policy, a, _grid), policy, what=f"reading header of {_short(href)}"
    )


def _short(href: str) -> str:
    return href.split("?", 1)[0]


def read_window(href: str, grid: Grid, policy: RetryPolicy, resampling: str = "nearest") -> np.ndarray:
    """Band 1 of ``href`` on ``grid`` (H, W), reading only the window it covers.

    Pixels outside the asset are 0. An asset in another CRS is warped.
    """
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import from_bounds

    method = Resampling[resampling]

    def _read(src) -> np.ndarray:
        shape = (grid.height, grid.width)
        if src.crs == grid.crs:
            window = from_bounds(*grid.bounds, transform=src.transform)
            inside = (
                window.col_off >= 0
                and window.row_off >= 0
                and window.col_off + window.width <= src.width
                and window.row_off + window.height <= src.height
            )
            return src.read(
                1, window=window, out_shape=shape, resampling=method, boundless=not inside, fill_value=0
            )
        with WarpedVRT(
            src,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=method,
            nodata=0,
        ) as vrt:
            return vrt.read(1, out_shape=shape)

    return retry_call(lambda a: _open(href, policy, a, _read), policy, what=f"reading {_short(href)}")


def read_chip(item, grid: Grid, spec: ChipSpec, policy: RetryPolicy) -> np.ndarray:
    """The requested bands of ``item`` on ``grid``, stacked (C, H, W) in ``spec.bands`` order."""
    bands = [read_window(asset_href(item, b), grid, policy, spec.resampling) for b in spec.bands]
    return np.stack(bands)


def scl_cloud_percent(scl: np.ndarray) -> float:
    """Percentage of SCL pixels in :data:`SCL_UNUSABLE`."""
    return float(np.isin(scl, SCL_UNUSABLE).mean() * 100.0)


def rank_candidates(
    items: list,
    lon: float,
    lat: float,
    target: dt.date,
    spec: ChipSpec,
    policy: RetryPolicy,
    max_candidates: int = 6,
) -> list[Candidate]:
    """Score scenes by cloud over the chip; best first.

    The ``max_candidates`` items with the least scene cloud (then nearest in
    time) are scored; order is chip cloud, then days from ``target``, then
    scene cloud. Scenes without cloud information come last.
    """

    def days(item) -> int:
        return abs((item_datetime(item).date() - target).days)

    pre = sorted(
        items, key=lambda it: (item_cloud_cover(it) is None, item_cloud_cover(it) or 0.0, days(it), it.id)
    )
    out = []
    for item in pre[:max_candidates]:
        grid = chip_grid(asset_href(item, spec.bands[0]), lon, lat, spec, policy)
        if find_asset(item, "SCL") is not None:
            scl = read_window(asset_href(item, "SCL"), grid, policy, "nearest")
            cloud, source = scl_cloud_percent(scl), "scl"
        else:
            cloud, source = item_cloud_cover(item), "item"
            source = source if cloud is not None else "unknown"
        out.append(Candidate(item, grid, cloud, source, days(item)))
    return sorted(out, key=Candidate.sort_key)


def write_chip(
    path: str | Path,
    data: np.ndarray,
    grid: Grid,
    bands: tuple[str, ...],
    tags: dict[str, object],
    scaling: tuple[list[float], list[float]] | None = None,
) -> Path:
    """Write a (C, H, W) chip as a GeoTIFF, atomically (``<path>.partial`` then rename).

    Band descriptions are the band codes; ``tags`` go into the dataset metadata;
    ``scaling`` = (scales, offsets) per band becomes GDAL's scale/offset metadata.
    """
    import rasterio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "compress": "deflate",
        "nodata": 0,
    }
    if data.dtype.kind in "ui":
        profile["predictor"] = 2
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, band in enumerate(bands, start=1):
                dst.set_band_description(i, band)
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
            if scaling is not None:
                dst.scales, dst.offsets = tuple(scaling[0]), tuple(scaling[1])
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


__all__ = [
    "Candidate",
    "ChipSpec",
    "Grid",
    "RemoteError",
    "chip_grid",
    "rank_candidates",
    "read_chip",
    "read_window",
    "scl_cloud_percent",
    "write_chip",
]
