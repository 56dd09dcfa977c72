"""STAC Items beside the rasters senclip writes: ``landuse.tif`` -> ``landuse.item.json``.

Every raster of the area pipeline (composites, class maps) and every class map of ``senclip map``
gets one, so that a folder of outputs can be catalogued, served or explored without guessing:
a valid STAC 1.1 Item (core schema), footprint and bbox in WGS84, one asset ``data`` whose href
is relative (``./landuse.tif``: the folder can be moved), the projection extension v2
(``proj:code``, ``proj:shape``, ``proj:transform``, ``proj:bbox``, on the item and the asset),
the raster extension (``raster:bands``: nodata, data type, scale/offset, resolution), and per
product (``senclip:product``):

* ``composite`` / ``monthly-composite``: the eo extension (``eo:bands``: Sentinel-2 names and
  common names); a monthly composite's ``QA`` bands carry their coded values as
  ``classification:classes`` in their ``raster:bands`` entry;
* ``class-map``: the classification extension v2 (``classification:classes``: ``value``,
  ``name`` (letters, digits, ``-`` and ``_`` only, as the schema asks), ``title`` (the class name
  as written), ``color_hint`` (six upper-case hex digits));
* ``probabilities``: one raster band per class, named after it.

Items carry no creation time, so the same run writes the same bytes. This module only builds
the dictionaries; callers write them atomically (:func:`senclip.outputs.write_text`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

from senclip.bands import S2_COMMON_NAMES, S2_WAVELENGTH_UM

EXTENSIONS = {
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
}
PRODUCTS = ("composite", "monthly-composite", "class-map", "probabilities")
STAC_VERSION = "1.1.0"


def item_path(raster: str | Path) -> Path:
    """The Item file beside ``raster``: its path without ``.tif`` plus ``.item.json``."""
    raster = Path(raster)
    return raster.with_name(raster.stem + ".item.json")


def footprint(crs, transform, shape: tuple[int, int], points: int = 16) -> tuple[dict, list[float]]:
    """WGS84 polygon (edges densified) and bbox of a raster grid."""
    from rasterio.warp import transform as warp

    h, w = shape
    cols = [w * i / points for i in range(points)]
    rows = [h * i / points for i in range(points)]
    ring = (
        [(c, 0) for c in cols]
        + [(w, r) for r in rows]
        + [(w - c, h) for c in cols]
        + [(0, h - r) for r in rows]
    )
    xs = [transform.c + transform.a * c + transform.b * r for c, r in ring]
    ys = [transform.f + transform.d * c + transform.e * r for c, r in ring]
    lons, lats = warp(crs, "EPSG:4326", xs, ys)
    coords = [[round(x, 7), round(y, 7)] for x, y in zip(lons, lats, strict=True)]
    coords.append(coords[0])
    bbox = [
        min(c[0] for c in coords),
        min(c[1] for c in coords),
        max(c[0] for c in coords),
        max(c[1] for c in coords),
    ]
    return {"type": "Polygon", "coordinates": [coords]}, bbox


def _iso(value: dt.datetime | dt.date) -> str:
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def proj_fields(crs, transform, shape: tuple[int, int]) -> dict:
    """The projection extension's fields of a grid."""
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    h, w = shape
    x0, y1 = transform.c, transform.f
    x1, y0 = x0 + transform.a * w, y1 + transform.e * h
    fields = {
        "proj:code": f"EPSG:{epsg}" if epsg else None,
        "proj:shape": [h, w],
        "proj:transform": [transform.a, transform.b, transform.c, transform.d, transform.e, transform.f],
        "proj:bbox": [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)],
    }
    if epsg is None:
        fields["proj:wkt2"] = crs.to_wkt() if crs is not None else None
    return fields


def safe_name(name: str) -> str:
    """A class name as the classification extension's ``name`` (``[0-9A-Za-z_-]+``)."""
    text = re.sub(r"[^0-9A-Za-z_-]+", "_", name.strip()).strip("_")
    return text or "class"


def classification_classes(classes: Sequence[str], colors: Sequence[tuple[int, int, int]]) -> list[dict]:
    """``classification:classes`` of a class map: value ``i`` is ``classes[i]`` (nodata 255 not listed)."""
    return [
        {
            "value": i,
            "name": safe_name(c),
            "title": c,
            "description": c,
            "color_hint": "{:02X}{:02X}{:02X}".format(*colors[i]),
        }
        for i, c in enumerate(classes)
    ]


def eo_bands(bands: Sequence[str]) -> list[dict]:
    """``eo:bands`` of Sentinel-2 bands (``B04``, ...); other names (``CLM``) only get a name."""
    out = []
    for b in bands:
        entry = {"name": b}
        if b in S2_COMMON_NAMES:
            entry |= {"common_name": S2_COMMON_NAMES[b], "center_wavelength": S2_WAVELENGTH_UM[b]}
        out.append(entry)
    return out


def raster_item(
    raster: str | Path,
    product: str,
    *,
    item_id: str,
    crs,
    transform,
    shape: tuple[int, int],
    raster_bands: list[dict],
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime | None = None,
    properties: dict | None = None,
    asset_fields: dict | None = None,
    title: str | None = None,
) -> dict:
    """The Item dictionary of one raster (see the module docstring).

    Args:
        raster: the raster file; the asset href is ``./<its name>``.
        product: one of :data:`PRODUCTS` (``properties["senclip:product"]``).
        item_id: the item's id.
        crs, transform, shape: its grid (rasterio CRS, affine, ``(height, width)``).
        raster_bands: one ``raster:bands`` object per band.
        start, end: the time the data stand for (``end`` given: a range, ``datetime`` null).
        properties: more item properties (``senclip:*``, ``eo:cloud_cover`` ...).
        asset_fields: more asset fields (``eo:bands``, ``classification:classes``).
        title: the asset's title.
    """
    if product not in PRODUCTS:
        raise ValueError(f"unknown product {product!r}")
    geometry, bbox = footprint(crs, transform, shape)
    proj = proj_fields(crs, transform, shape)
    props: dict = {"senclip:product": product}
    if end is None:
        props["datetime"] = _iso(start)
    else:
        props |= {"datetime": None, "start_datetime": _iso(start), "end_datetime": _iso(end)}
    props |= proj
    props |= properties or {}
    asset = {
        "href": f"./{Path(raster).name}",
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        **({"title": title} if title else {}),
        **proj,
        "raster:bands": raster_bands,
        **(asset_fields or {}),
    }
    used = ["projection", "raster"]
    if "eo:bands" in asset:
        used.append("eo")
    if "classification:classes" in asset or any("classification:classes" in b for b in raster_bands):
        used.append("classification")
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EXTENSIONS[k] for k in used],
        "id": item_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "links": [],
        "assets": {"data": asset},
    }


__all__ = [
    "EXTENSIONS",
    "PRODUCTS",
    "classification_classes",
    "eo_bands",
    "footprint",
    "item_path",
    "proj_fields",
    "raster_item",
    "safe_name",
]
