"""Final outputs: class COG with colour table, probability COG, legend, PNGs.

All rasters are first written block-wise to a tiled GeoTIFF inside the
work folder, then copied to a Cloud-Optimized GeoTIFF (GDAL ``COG`` driver:
tiled, DEFLATE, nearest/average overviews) and moved into place with
``os.replace``, so an output path only ever holds a complete file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

from senclip.outputs import atomic_path, write_text

NODATA_CLASS = 255
EUROSAT_COLORS = {
    "AnnualCrop": (230, 171, 2), "Forest": (27, 120, 55), "HerbaceousVegetation": (166, 217, 106),
    "Highway": (99, 99, 99), "Industrial": (215, 25, 28), "Pasture": (255, 237, 111),
    "PermanentCrop": (153, 112, 171), "Residential": (244, 109, 67), "River": (67, 147, 195),
    "SeaLake": (33, 49, 140),
}
LULC_COLORS = {
    "cultivated land": (255, 211, 0), "forest": (34, 139, 34), "grassland": (154, 205, 50),
    "shrubland": (160, 120, 60), "water": (30, 100, 220), "wetlands": (100, 200, 200),
    "tundra": (200, 200, 160), "artificial surface": (220, 30, 30), "bareland": (190, 190, 190),
    "snow and ice": (250, 250, 255),
}
"""Fixed colours of the EuroSAT classes and of the eo-learn LULC classes (``map-pixels``)."""


def class_colors(classes: list[str]) -> list[tuple[int, int, int]]:
    """One RGB colour per class: a fixed palette that names every class (case aside), else tab20/hsv."""
    for palette in (EUROSAT_COLORS, LULC_COLORS):
        named = {k.lower(): v for k, v in palette.items()}
        if all(c.lower() in named for c in classes):
            return [named[c.lower()] for c in classes]
    from matplotlib import colormaps

    cmap = colormaps["tab20"] if len(classes) <= 20 else colormaps["hsv"]
    n = max(len(classes), 1)
    picks = [cmap(i if len(classes) <= 20 else i / n) for i in range(len(classes))]
    return [tuple(round(255 * float(v)) for v in rgba[:3]) for rgba in picks]


def cog_blocksize(width: int, height: int) -> int:
    big = max(width, height)
    return 512 if big > 8192 else 256 if big > 1024 else 128


def tiff_profile(width: int, height: int, count: int, dtype: str, crs, transform: Affine, nodata) -> dict:
    block = 256
    return {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype,
            "crs": crs, "transform": transform, "nodata": nodata, "tiled": True,
            "blockxsize": block, "blockysize": block, "compress": "deflate", "BIGTIFF": "IF_SAFER"}


def write_cog(
    path: str | Path,
    work: Path,
    strips: Iterator[tuple[int, np.ndarray]],
    profile: dict,
    resampling: str = "nearest",
    decorate: Callable | None = None,
    blocksize: int | None = None,
) -> Path:
    """Write ``strips`` (``(row0, (count, h, width) array)`` or ``(Window, (count, h, w) array)``) as a COG.

    Args:
        path: final output path (replaced atomically).
        work: folder for the intermediate files (same file system).
        strips: row blocks (or windows: blocks of the area pipeline) in any order, covering the raster.
        profile: rasterio profile of the raster.
        resampling: overview resampling (``nearest`` for classes).
        decorate: ``f(dataset)`` called before closing the intermediate file
            (colour table, tags, band descriptions).
        blocksize: COG tile size (default: by raster size, :func:`cog_blocksize`).
    """
    path = Path(path)
    tmp = work / f"{path.name}.tmp.tif"
    cog = work / f"{path.name}.cog.tif"
    with rasterio.open(tmp, "w", **profile) as dst:
        for where, block in strips:
            window = where if isinstance(where, Window) else Window(0, where, block.shape[2], block.shape[1])
            dst.write(block, window=window)
        if decorate is not None:
            decorate(dst)
    rasterio.shutil.copy(
        tmp, cog, driver="COG", compress="DEFLATE", overview_resampling=resampling, bigtiff="IF_SAFER",
        blocksize=blocksize or cog_blocksize(profile["width"], profile["height"]),
    )
    os.replace(cog, path)
    tmp.unlink(missing_ok=True)
    return path


def class_strips(classes: np.ndarray, stride: int, upsample_to: tuple[int, int] | None,
                 valid_rows: Callable[[int, int], np.ndarray] | None, rows_per_strip: int = 256):
    """Class rows at cell resolution, or repeated ``stride`` times to input resolution.

    Args:
        classes: ``(cells_y, cells_x)`` uint8 classes (memory-mapped is fine).
        stride: cell size in input pixels.
        upsample_to: ``(height, width)`` of the input, or ``None`` for cells.
        valid_rows: ``f(y0, y1)`` → input validity mask, to blank invalid
            input pixels in upsampled output.
        rows_per_strip: cell rows per yielded block (cell resolution).
    """
    if upsample_to is None:
        for j in range(0, classes.shape[0], rows_per_strip):
            yield j, np.asarray(classes[j:j + rows_per_strip])[None]
        return
    height, width = upsample_to
    for j in range(classes.shape[0]):
        y0, y1 = j * stride, min((j + 1) * stride, height)
        row = np.repeat(np.asarray(classes[j]), stride)[:width]
        block = np.broadcast_to(row, (y1 - y0, width)).copy()
        if valid_rows is not None:
            block[~valid_rows(y0, y1)] = NODATA_CLASS
        yield y0, block[None]


def decorate_classes(classes: list[str], colors, tags: dict) -> Callable:
    """Colour table, class names (tags and band description) for the class raster."""
    def apply(dst) -> None:
        cmap = {i: (*colors[i], 255) for i in range(len(classes))}
        cmap[NODATA_CLASS] = (0, 0, 0, 0)
        dst.write_colormap(1, cmap)
        dst.update_tags(CLASSES=json.dumps(classes), NODATA_CLASS=str(NODATA_CLASS),
                        **{f"CLASS_{i}": name for i, name in enumerate(classes)}, **tags)
        dst.set_band_description(1, "class")
    return apply


def write_qml(path: str | Path, classes: list[str], colors) -> Path:
    """A QGIS style (``.qml``) beside a class map: a paletted renderer naming and colouring each class.

    QGIS applies ``<map>.qml`` by itself when the map is added, so the layer shows class names
    in its legend and 255 (nodata) transparent.
    """
    from xml.sax.saxutils import quoteattr

    entries = "\n".join(
        f'        <paletteEntry value="{i}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" label={quoteattr(c)}/>'
        for i, (c, (r, g, b)) in enumerate(zip(classes, colors, strict=True)))
    text = f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""
    return write_text(path, text)


def class_map_item(path: str | Path, classes: list[str], colors, crs, transform, shape: tuple[int, int],
                   when: dict, model: dict, extra: dict | None = None) -> dict:
    """The STAC Item of a class map (``senclip:product: class-map``, classification extension).

    Args:
        path: the class map.
        classes, colors: value ``i`` is ``classes[i]`` in ``colors[i]``.
        crs, transform, shape: the map's grid.
        when: ``{"start": ..., "end": ...}`` (a range) or ``{"start": ...}`` (a date or time).
        model: the model's identity (:func:`senclip.mapping.provenance.model_identity`).
        extra: more properties (``senclip:*``).
    """
    from senclip.stacitem import classification_classes, raster_item

    res = abs(transform.a)
    classification = classification_classes(classes, colors)
    band = {"nodata": NODATA_CLASS, "data_type": "uint8", "spatial_resolution": res,
            "classification:classes": classification}
    props = {"senclip:model": model, "senclip:classes": list(classes), "senclip:nodata": NODATA_CLASS,
             **(extra or {})}
    return raster_item(path, "class-map", item_id=Path(path).stem, crs=crs, transform=transform, shape=shape,
                       raster_bands=[band], start=when["start"], end=when.get("end"), properties=props,
                       asset_fields={"classification:classes": classification}, title="land-use classes")


def probabilities_item(path: str | Path, classes: list[str], crs, transform, shape: tuple[int, int],
                       when: dict, model: dict) -> dict:
    """The STAC Item of a per-class score raster (``senclip:product: probabilities``): one float32 band
    per class, in class order, named after it."""
    from senclip.stacitem import raster_item

    bands = [{"name": c, "description": c, "data_type": "float32", "nodata": "nan",
              "spatial_resolution": abs(transform.a)} for c in classes]
    return raster_item(path, "probabilities", item_id=Path(path).stem, crs=crs, transform=transform,
                       shape=shape, raster_bands=bands, start=when["start"], end=when.get("end"),
                       properties={"senclip:classes": list(classes), "senclip:model": model},
                       title="class scores")


def write_item(path: str | Path, item: dict) -> Path:
    """Write a STAC Item dictionary beside its raster (:func:`senclip.stacitem.item_path`), atomically."""
    from senclip.stacitem import item_path

    return write_text(item_path(path), json.dumps(item, indent=1))


def write_legend(path: str | Path, classes: list[str], colors, info: dict) -> Path:
    """Sidecar legend JSON: value, name and colour of each class, plus run facts."""
    path = Path(path)
    legend = {
        "classes": [{"value": i, "name": c, "color": "#{:02x}{:02x}{:02x}".format(*colors[i])}
                    for i, c in enumerate(classes)],
        "nodata": NODATA_CLASS,
        **info,
    }
    return write_text(path, json.dumps(legend, indent=2, default=str))


def _decimate(arr: np.ndarray, max_side: int = 1024) -> np.ndarray:
    step = max(1, int(np.ceil(max(arr.shape[:2]) / max_side)))
    return np.asarray(arr[::step, ::step])


def write_quicklook(path: str | Path, classes_grid: np.ndarray, classes: list[str], colors,
                    title: str) -> Path:
    """PNG of the class map (decimated to ≤ 1024 px) with a legend of the classes present."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    grid = _decimate(classes_grid)
    rgba = np.zeros((*grid.shape, 4), dtype=np.uint8)
    for i, col in enumerate(colors):
        rgba[grid == i] = (*col, 255)
    present = [i for i in range(len(classes)) if (grid == i).any()]
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    ax.imshow(rgba, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    handles = [Patch(facecolor=np.array(colors[i]) / 255, edgecolor="k", label=classes[i]) for i in present]
    if (grid == NODATA_CLASS).any():
        handles.append(Patch(facecolor="white", edgecolor="k", label="nodata"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    return _save_fig(fig, Path(path))


def write_heat_png(path: str | Path, values: np.ndarray, title: str) -> Path:
    """PNG of a score grid (NaN = nodata) with a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    im = ax.imshow(np.ma.masked_invalid(_decimate(values)), cmap="magma", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="cosine similarity")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    return _save_fig(fig, Path(path))


def _save_fig(fig, path: Path) -> Path:
    from matplotlib import pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return path
