"""What an area composite is made of: the request's options and its STAC items as plain data.

:class:`CompositeSpec` holds the ``composite`` flags (bands, method, SCL classes masked,
resampling, monthly year and fill); :func:`search_area` finds the items of an area and a time
range; :func:`scene_refs` turns each into a :class:`SceneRef` (its band assets with unsigned
absolute hrefs, radiometry decision, solar day) that travels to the block tasks
(:mod:`senclip.acquire.composite`). Hrefs are signed (Planetary Computer) by the block that reads
them, right before reading (:func:`senclip.acquire.area_read.load_scenes`): tokens expire, and a
long run signing at plan time would meet 403s hours later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from senclip.acquire.area import Area
from senclip.acquire.chips import RESAMPLING
from senclip.acquire.radiometry import Decision, decide, warn
from senclip.acquire.stac import MAX_ITEMS, find_asset, item_cloud_cover, item_datetime
from senclip.bands import SCL_UNUSABLE
from senclip.data.series.io import QA_BAND
from senclip.errors import SenclipError
from senclip.net import RetryPolicy, retry_call

METHODS = ("median", "first-valid")
FILLS = ("median", "none")
NODATA = 0
MONTH_DAY = 15
"""Monthly composites are dated the 15th of their month (the ``dates`` tag that ``map-pixels`` reads)."""
SCL_CLASSES = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area (topographic shadow)",
    3: "cloud shadow",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow or ice",
}
"""The Sentinel-2 L2A scene classification (SCL) classes."""


@dataclass(frozen=True)
class CompositeSpec:
    """What to composite (the ``composite`` flags).

    Attributes:
        bands: Sentinel-2 bands, in output order.
        method: one of :data:`METHODS`.
        mask_classes: SCL classes that make a pixel unusable.
        resampling: resampling of bands coarser than 10 m (and of any reprojection).
        year: monthly composites of this year (12 x (bands + QA)); ``None``: one composite.
        fill: monthly gaps, one of :data:`FILLS`.
        threads: files read at once per block (odc-stac's pool).
    """

    bands: tuple[str, ...]
    method: str = "median"
    mask_classes: tuple[int, ...] = SCL_UNUSABLE
    resampling: str = "nearest"
    year: int | None = None
    fill: str = "median"
    threads: int = 4

    def __post_init__(self) -> None:
        if not self.bands:
            raise SenclipError("no bands to composite; pass e.g. --download-bands B04,B03,B02")
        if len(set(self.bands)) != len(self.bands) or "SCL" in self.bands:
            raise SenclipError(
                f"--download-bands {','.join(self.bands)}: list each band once, SCL is read "
                "for the mask anyway"
            )
        if self.method not in METHODS:
            raise SenclipError(
                f"unknown composite method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if self.resampling not in RESAMPLING:
            raise SenclipError(
                f"unknown resampling {self.resampling!r}; choose one of {', '.join(RESAMPLING)}"
            )
        if self.fill not in FILLS:
            raise SenclipError(f"unknown --fill {self.fill!r}; choose one of {', '.join(FILLS)}")
        bad = [c for c in self.mask_classes if c not in SCL_CLASSES]
        if bad:
            raise SenclipError(f"--mask-classes {bad[0]} is not an SCL class (0-11)")

    @property
    def monthly(self) -> bool:
        return self.year is not None

    @property
    def out_bands(self) -> list[str]:
        """Band names of the composite, in file order (monthly: 12 x (bands + QA), month-major)."""
        if not self.monthly:
            return list(self.bands)
        return [b for _ in range(12) for b in (*self.bands, QA_BAND)]

    def identity(self) -> dict:
        out = asdict(self)
        out.pop("threads")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass(frozen=True)
class SceneRef:
    """One STAC item as plain data (it travels to Dask workers): what loading and harmonising need.

    Attributes:
        id: the item id.
        when: acquisition time (ISO, UTC).
        solar_day: the local solar date (UTC date shifted by the footprint's longitude).
        cloud_cover: ``eo:cloud_cover`` (``None``: not stated).
        bbox: WGS84 footprint bounds.
        item: the item with its assets renamed to band codes (``B04``, ``SCL``) for odc-stac; hrefs
            absolute and unsigned.
        offset_dn, source, baseline: the radiometry decision, made once per item: from its metadata
            (:func:`senclip.acquire.radiometry.decide`), then checked against its values by
            :func:`senclip.acquire.area_read.check_radiometry` before any block runs.
        has_scl: the item has an SCL asset.
        check: ``"offset-not-in-data"`` when the values overruled the metadata, else ``None``.
        unread: why the item's values could not be read for that check (after the retries), else
            ``None``; the blocks it reaches then fail (a rerun plans, and reads, again).
    """

    id: str
    when: str
    solar_day: str
    cloud_cover: float | None
    bbox: tuple[float, float, float, float]
    item: dict
    offset_dn: dict[str, int] = field(default_factory=dict)
    source: str = ""
    baseline: str | None = None
    has_scl: bool = True
    check: str | None = None
    unread: str | None = None

    def decision(self) -> Decision:
        return Decision(dict(self.offset_dn), self.source, self.baseline, check=self.check)


def parse_time(text: str) -> tuple[dt.date, dt.date]:
    """``START/END`` (ISO dates, inclusive) → dates; one line on a bad or reversed range."""
    parts = str(text).split("/")
    if len(parts) != 2:
        raise SenclipError(f"--time must be START/END (e.g. 2022-04-01/2022-09-30), got {text!r}")
    try:
        start, end = (dt.date.fromisoformat(p.strip()[:10]) for p in parts)
    except ValueError:
        raise SenclipError(f"--time {text}: dates must be YYYY-MM-DD") from None
    if end < start:
        raise SenclipError(f"--time {text}: END {end} is before START {start}")
    return start, end


def search_area(
    client,
    collection: str,
    area: Area,
    start: dt.date,
    end: dt.date,
    policy: RetryPolicy,
    max_cloud: float = 100.0,
    max_items: int = MAX_ITEMS,
) -> list:
    """Items of ``collection`` acquired in [start, end] whose footprint meets the area, least first in time.

    The API is asked for the area's bbox (short, every API supports it); footprints are then
    intersected with the area itself, and items with more scene cloud than ``max_cloud`` dropped.

    Raises:
        SenclipError: the API holds more than ``max_items`` items for the request (it is never cut
            silently: a composite of the first N items is not the season's).
    """
    from shapely.geometry import shape

    when = f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"

    def _search(attempt: int) -> list:
        search = client.search(
            collections=[collection], bbox=list(area.bounds), datetime=when, max_items=max_items + 1
        )
        return list(search.items())

    items = retry_call(_search, policy, what=f"STAC search of {area.source}")
    if len(items) > max_items:
        raise SenclipError(
            f"the STAC search of {area.source} between {start} and {end} matches more than {max_items} "
            "items; split the area or shorten --time, or raise --max-items"
        )
    geom = area.geometry
    keep = []
    for it in items:
        foot = shape(it.geometry) if it.geometry else None
        cloud = item_cloud_cover(it)
        if (foot is None or foot.intersects(geom)) and (cloud is None or cloud <= max_cloud):
            keep.append(it)
    return sorted(keep, key=lambda it: (item_datetime(it), it.id))


def solar_day(when: dt.datetime, bbox) -> str:
    """The local solar date of an acquisition at ``when`` (UTC) over the WGS84 ``bbox``: one acquisition,
    cut into tiles (often in two UTM zones), has one solar day."""
    lon = (bbox[0] + bbox[2]) / 2
    return (when + dt.timedelta(hours=lon / 15.0)).date().isoformat()


def absolute_href(asset) -> str:
    """An asset's href as it can be read: URLs and absolute local paths as they are (a local path in an
    item served by an API is a path on this machine, not on the API's host), relative hrefs resolved
    against the item's own location."""
    import os

    href = asset.href
    if "://" in href or os.path.isabs(href):
        return href
    return asset.get_absolute_href() or href


def scene_refs(items: list, bands: tuple[str, ...]) -> list[SceneRef]:
    """Plain-data :class:`SceneRef` of each item: band assets found, radiometry decided (warned once).

    Raises:
        SenclipError: an item lacks one of ``bands``.
    """
    refs = []
    for it in items:
        keys = {}
        for band in bands:
            key = find_asset(it, band)
            if key is None:
                raise SenclipError(
                    f"STAC item {it.id} has no asset for band {band} (assets: "
                    f"{', '.join(sorted(it.assets))}); check --download-bands"
                )
            keys[band] = key
        scl = find_asset(it, "SCL")
        if scl is not None:
            keys["SCL"] = scl
        decision = decide(it, bands)
        warn(it.id, decision)
        assets = {}
        for band, key in keys.items():
            src = it.assets[key]
            asset = {
                "href": absolute_href(src),
                "type": src.media_type or "image/tiff; application=geotiff",
                "roles": ["data"],
                "raster:bands": [{"nodata": 0, "data_type": "uint8" if band == "SCL" else "uint16"}],
            }
            for k in ("proj:shape", "proj:transform", "proj:epsg", "proj:code"):
                if k in src.extra_fields:
                    asset[k] = src.extra_fields[k]
            assets[band] = asset
        props = {
            k: v
            for k, v in it.properties.items()
            if k in ("datetime", "start_datetime", "end_datetime", "proj:epsg", "proj:code", "eo:cloud_cover")
        }
        if it.datetime is None:
            props["datetime"] = item_datetime(it).isoformat()
        bbox = tuple(it.bbox) if it.bbox else (0.0, 0.0, 0.0, 0.0)
        doc = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": it.id,
            "geometry": it.geometry,
            "bbox": list(bbox),
            "properties": props,
            "links": [],
            "assets": assets,
            "stac_extensions": [
                "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            ],
        }
        when = item_datetime(it)
        refs.append(
            SceneRef(
                it.id,
                when.isoformat(),
                solar_day(when, bbox),
                item_cloud_cover(it),
                bbox,
                doc,
                dict(decision.offset_dn),
                decision.source,
                decision.baseline,
                scl is not None,
            )
        )
    return refs


__all__ = [
    "FILLS",
    "MAX_ITEMS",
    "METHODS",
    "MONTH_DAY",
    "NODATA",
    "SCL_CLASSES",
    "CompositeSpec",
    "SceneRef",
    "parse_time",
    "scene_refs",
    "search_area",
    "solar_day",
]
