"""The area's outputs, assembled from block files: the composite COG and the class-map COG, with Items.

Blocks are written into one tiled GeoTIFF window by window (memory: one block), which GDAL's COG
driver then copies into a Cloud-Optimized GeoTIFF (tiled, DEFLATE, overviews) moved into place in
one rename (:func:`senclip.mapping.writers.write_cog`). One COG per output rather than a VRT over
the block files: a single file is what viewers, ``senclip map`` and STAC tools open without
knowing about blocks, it can be moved or uploaded alone, and its overviews cover the whole area
(a VRT would need every block file kept beside it, and no overviews across blocks); the price is
one copy of the pixels at the end (measured in ``benchmarks/area_throughput.py``: the "write"
share of the time split).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from senclip.acquire.area import AreaGrid, Block
from senclip.acquire.area_items import MONTH_DAY, NODATA, SCL_CLASSES, CompositeSpec
from senclip.data.radiometry import CONVENTION, REFLECTANCE_SCALE, convention_tags
from senclip.data.series.io import QA_BAND, QA_CLASSES
from senclip.mapping.writers import tiff_profile, write_cog
from senclip.outputs import write_text
from senclip.stacitem import eo_bands, item_path, raster_item


def block_windows(
    blocks: list[Block], records: list[dict], paths: dict[str, Path], unit: int = 1
) -> Iterator[tuple[Window, np.ndarray]]:
    """``(window, values)`` of each block that has a file, in block order (``unit``: pixels per cell)."""
    for b, rec in zip(blocks, records, strict=True):
        if rec.get("status") != "ok":
            continue
        with rasterio.open(paths[b.name]) as src:
            data = src.read()
        yield Window(b.x // unit, b.y // unit, data.shape[2], data.shape[1]), data


ASSEMBLY_CACHE = 256 * 2**20
"""GDAL block cache while assembling: the COG copy reads the intermediate file in any order, and GDAL's
default cache (5 % of the RAM) would grow with the area; 256 MiB holds several block rows."""


def assemble(out: Path, work: Path, windows, profile: dict, resampling: str, decorate) -> Path:
    """Blocks into one COG at ``out``: an uncompressed intermediate GeoTIFF (written once, read once:
    compressing it cost a third of the assembly time, measured), then GDAL's COG copy."""
    profile = {k: v for k, v in profile.items() if k != "compress"}
    with rasterio.Env(GDAL_CACHEMAX=ASSEMBLY_CACHE):
        return write_cog(out, work, windows, profile, resampling, decorate)


def month_dates(year: int) -> list[dt.date]:
    return [dt.date(year, m, MONTH_DAY) for m in range(1, 13)]


def composite_tags(spec: CompositeSpec, provenance: dict) -> dict[str, str]:
    """GeoTIFF tags of a composite: where it came from and how it was made."""
    tags = {
        "senclip_product": "monthly-composite" if spec.monthly else "composite",
        "stac_api": provenance["stac_url"],
        "collection": provenance["collection"],
        "items": ",".join(provenance["items"]),
        "time_start": provenance["start"],
        "time_end": provenance["end"],
        "mask_classes": ",".join(map(str, spec.mask_classes)),
        "mask_meaning": "; ".join(f"{c} {SCL_CLASSES[c]}" for c in spec.mask_classes),
        "composite_method": spec.method,
        "resampling": spec.resampling,
        "grid": provenance["grid"],
        "area": provenance["area"],
        **convention_tags(CONVENTION, 0, "per item (senclip.acquire.radiometry)", None),
    }
    tags.pop("processing_baseline")
    tags["processing_baselines"] = ",".join(provenance["baselines"])
    if spec.monthly:
        tags |= {
            "dates": ",".join(d.isoformat() for d in month_dates(spec.year)),
            "bands": ",".join(spec.bands),
            "monthly_fill": spec.fill,
            "year": str(spec.year),
            QA_BAND: "0 = nodata (no clear observation all year, or outside the area), 1 = the month is "
            "composited from clear observations, 2 = no clear observation in the month (the values are the "
            "fill)",
        }
    return tags


def write_composite(
    out: Path,
    work: Path,
    grid: AreaGrid,
    blocks: list[Block],
    records: list[dict],
    paths: dict[str, Path],
    spec: CompositeSpec,
    provenance: dict,
) -> Path:
    """The composite COG (uint16, scale 0.0001, nodata 0, band descriptions, tags) and its STAC Item."""
    names = spec.out_bands
    profile = tiff_profile(grid.width, grid.height, len(names), "uint16", grid.crs, grid.transform, NODATA)
    scales = [1.0 if n == QA_BAND else REFLECTANCE_SCALE for n in names]
    tags = composite_tags(spec, provenance)

    def decorate(dst) -> None:
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
        dst.scales, dst.offsets = tuple(scales), tuple(0.0 for _ in names)
        dst.update_tags(**tags)

    assemble(out, work, block_windows(blocks, records, paths), profile, "average", decorate)
    write_text(item_path(out), json.dumps(composite_item(out, grid, spec, provenance), indent=1))
    return out


def composite_item(out: Path, grid: AreaGrid, spec: CompositeSpec, provenance: dict) -> dict:
    """The composite's STAC Item (``composite`` or ``monthly-composite``; eo and raster extensions)."""
    names = spec.out_bands
    qa_classes = [{"value": v, "name": t.replace(" ", "-"), "description": t} for v, t in QA_CLASSES.items()]
    if spec.monthly:
        eo = []
        for d in month_dates(spec.year):
            for b in eo_bands([*spec.bands, QA_BAND]):
                text = "quality: 1 clear, 2 no clear observation (filled), 0 nodata" if b["name"] == QA_BAND \
                    else b["name"]
                eo.append(b | {"description": f"{d:%Y-%m} {text}"})
    else:
        eo = eo_bands(names)
    raster = [
        {
            "nodata": NODATA,
            "data_type": "uint16",
            "spatial_resolution": grid.resolution,
            **(
                {"scale": 1.0, "offset": 0.0, "classification:classes": qa_classes}
                if n == QA_BAND
                else {"scale": REFLECTANCE_SCALE, "offset": 0.0, "unit": "reflectance x 10000 (DN)"}
            ),
        }
        for n in names
    ]
    props = {
        "senclip:stac_api": provenance["stac_url"],
        "senclip:collection": provenance["collection"],
        "senclip:items": list(provenance["items"]),
        "senclip:mask_classes": list(spec.mask_classes),
        "senclip:composite_method": spec.method,
        "senclip:resampling": spec.resampling,
        "senclip:radiometry": "harmonised: reflectance = DN x 0.0001, the BOA offset of baseline >= 04.00 "
        "removed per item",
        "senclip:bands": list(spec.bands),
        "senclip:area": provenance["area"],
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "gsd": grid.resolution,
    }
    if spec.monthly:
        props |= {
            "senclip:year": spec.year,
            "senclip:fill": spec.fill,
            "senclip:dates": [d.isoformat() for d in month_dates(spec.year)],
        }
    product = "monthly-composite" if spec.monthly else "composite"
    return raster_item(
        out,
        product,
        item_id=out.stem,
        crs=grid.crs,
        transform=grid.transform,
        shape=grid.shape,
        raster_bands=raster,
        start=dt.date.fromisoformat(provenance["start"]),
        end=dt.date.fromisoformat(provenance["end"]),
        properties=props,
        asset_fields={"eo:bands": eo},
        title=f"Sentinel-2 L2A {product}",
    )


@dataclass(frozen=True)
class ClassMap:
    """What an area's class map says about itself, beside its pixels.

    Attributes:
        classes: class names; value ``i`` is ``classes[i]`` (255 nodata).
        model_id: the model's identity (:func:`senclip.mapping.provenance.model_identity`).
        tags: GeoTIFF tags of the COG.
        item_extra: more Item properties (``senclip:tile``, ``senclip:composite``, …).
        provenance: the plan's provenance (:meth:`senclip.areas.plan.AreaPlan.provenance`).
        unit: composite pixels per map cell.
        quicklook: write the PNG quick-look.
    """

    classes: list[str]
    model_id: dict
    tags: dict
    item_extra: dict
    provenance: dict
    unit: int = 1
    quicklook: bool = True


def write_class_map(
    out: Path, work: Path, grid: AreaGrid, blocks: list[Block], records: list[dict], paths: dict[str, Path],
    spec: ClassMap,
) -> None:
    """The area's class-map COG (colour table, names), then its STAC Item, QGIS style, legend, quick-look.

    The COG is moved into place first, so a run killed in between leaves no Item without its raster
    (the rerun, whose blocks are all journalled, writes both again).
    """
    from affine import Affine

    from senclip.mapping.mapper import sidecar_paths
    from senclip.mapping.writers import (
        NODATA_CLASS,
        class_colors,
        class_map_item,
        decorate_classes,
        write_item,
        write_legend,
        write_qml,
        write_quicklook,
    )

    width, height = math.ceil(grid.width / spec.unit), math.ceil(grid.height / spec.unit)
    transform = grid.transform @ Affine.scale(spec.unit)
    colors = class_colors(spec.classes)
    profile = tiff_profile(width, height, 1, "uint8", grid.crs, transform, NODATA_CLASS)
    windows = block_windows(blocks, records, paths, spec.unit)
    assemble(out, work, windows, profile, "nearest", decorate_classes(spec.classes, colors, spec.tags))
    prov, side = spec.provenance, sidecar_paths(out)
    when = {"start": dt.date.fromisoformat(prov["start"]), "end": dt.date.fromisoformat(prov["end"])}
    extra = spec.item_extra | {"senclip:stac_api": prov["stac_url"], "senclip:collection": prov["collection"],
                               "senclip:items": prov["items"], "senclip:area": prov["area"]}
    item = class_map_item(out, spec.classes, colors, grid.crs, transform, (height, width), when,
                          spec.model_id, extra)
    write_item(out, item)
    write_qml(side["style"], spec.classes, colors)
    info = {"model": spec.model_id, **spec.item_extra, "crs": f"EPSG:{grid.epsg}", "area": prov["area"]}
    write_legend(side["legend"], spec.classes, colors, info)
    if spec.quicklook:
        title = f"{out.name}: senclip map of {prov['area']} ({width}x{height})"
        write_quicklook(side["quicklook"], read_decimated(out), spec.classes, colors, title)


def read_decimated(path: Path, max_side: int = 1024) -> np.ndarray:
    """Band 1 of a raster read at most ``max_side`` pixels a side (from its overviews)."""
    with rasterio.open(path) as src:
        step = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
        shape = (-(-src.height // step), -(-src.width // step))
        return src.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)


__all__ = [
    "ASSEMBLY_CACHE",
    "ClassMap",
    "assemble",
    "block_windows",
    "composite_item",
    "composite_tags",
    "month_dates",
    "read_decimated",
    "write_class_map",
    "write_composite",
]
