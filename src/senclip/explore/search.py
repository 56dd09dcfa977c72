"""Text queries over tile embeddings, as ``senclip search`` answers them, kept in memory for the page.

:class:`TextSearch` loads an ``embed`` GeoParquet file once and scores a phrase with the library's
one scoring rule (:func:`senclip.mapping.embeddings.tile_similarity` against the unit embeddings,
then :func:`~senclip.mapping.embeddings.cell_mean` on the cell grid), so its heat map and best tile
are those of ``senclip search`` for the same model and phrase. A result is an in-memory GeoTIFF
(GDAL ``/vsimem/``) of the heat map, which gives the page's tiles (through
:class:`~senclip.explore.layers.RasterLayer`, as every layer) and the GeoTIFF download; the
GeoJSON download holds the tiles whose score reaches a threshold. The last few results are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.io import MemoryFile
from rasterio.warp import transform as transform_coords

from senclip.errors import SenclipError
from senclip.explore.errors import BadRequest, Unprocessable
from senclip.explore.layers import WGS84, RasterLayer, render_ramp
from senclip.mapping.embeddings import cell_mean, read_tiles, tile_similarity, tiles_grid, unit_rows
from senclip.mapping.writers import tiff_profile
from senclip.models.model import text_embed_dim

MAX_QUERY_CHARS = 300
"""Longest phrase taken (CLIP's text tower reads 77 tokens; a sentence or two)."""
KEEP_RESULTS = 8
HEAT_RAMP = "magma"


def check_phrase(query: str) -> None:
    """Refuse an empty phrase and one over :data:`MAX_QUERY_CHARS` (status 422)."""
    if not query.strip():
        raise Unprocessable("empty query; type a phrase such as 'a river'")
    if len(query) > MAX_QUERY_CHARS:
        raise Unprocessable(f"query of {len(query)} characters; the limit is {MAX_QUERY_CHARS}")


def check_threshold(value: float | None) -> None:
    if value is not None and not np.isfinite(value):
        raise BadRequest(f"threshold {value} is not a finite number")


@dataclass
class SearchResult:
    """One phrase's tile scores, heat map (cell grid) and in-memory GeoTIFF."""

    query: str
    scores: np.ndarray      # (N,) cosine similarity of each tile in the file
    heat: np.ndarray        # (cells_y, cells_x) mean score of the tiles covering each cell, NaN if none
    best: int               # index of the highest tile
    raster: MemoryFile      # float32 GeoTIFF of ``heat`` (NaN nodata, QUERY tag)
    layer: RasterLayer

    def close(self) -> None:
        self.raster.close()


class TextSearch:
    """A ``senclip embed`` file and the model whose text tower scores phrases against it."""

    def __init__(self, model, tiles: str | Path) -> None:
        self.model, self.path = model, Path(tiles)
        self.rows, self.cols, emb, self.meta = read_tiles(self.path)
        self.unit = unit_rows(emb)
        self.grid, self.crs = tiles_grid(self.meta)
        if self.crs is None:
            raise SenclipError(f"{self.path} records no CRS; the explorer needs one to draw its heat maps")
        if text_embed_dim(model) != self.unit.shape[1]:
            raise SenclipError(f"{self.path} holds {self.unit.shape[1]}-d embeddings but the model's text "
                               f"tower gives {text_embed_dim(model)}-d; use the model that wrote the file")
        self._results: OrderedDict[str, SearchResult] = OrderedDict()
        self._lock = threading.Lock()

    def result(self, query: str) -> SearchResult:
        """The phrase's result (computed once, then kept among the last :data:`KEEP_RESULTS`)."""
        check_phrase(query)
        with self._lock:
            if query in self._results:
                self._results.move_to_end(query)
                return self._results[query]
            scores = tile_similarity(self.model, self.unit, query, self.path)
            heat = cell_mean(self.grid, self.rows, self.cols, scores)
            raster = self._geotiff(heat, query)
            best = int(np.argmax(scores))
            result = SearchResult(query, scores, heat, best, raster, RasterLayer(raster.name))
            self._results[query] = result
            while len(self._results) > KEEP_RESULTS:
                self._results.popitem(last=False)[1].close()
            return result

    def _geotiff(self, heat: np.ndarray, query: str) -> MemoryFile:
        profile = tiff_profile(self.grid.cells_x, self.grid.cells_y, 1, "float32", self.crs,
                               self.grid.cell_transform, float("nan"))
        raster = MemoryFile(ext=".tif")
        with raster.open(**profile) as dst:
            dst.write(heat[None])
            dst.update_tags(QUERY=query, SOURCE=self.path.name)
            dst.set_band_description(1, "cosine similarity")
        return raster

    def summary(self, query: str) -> dict:
        """Scores in brief: range, quantiles, and the best tile (row, col as ``senclip search``)."""
        r = self.result(query)
        row, col = int(self.rows[r.best]), int(self.cols[r.best])
        ring = self._rings(np.array([r.best]))[0]
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        q = np.quantile(r.scores, [0.5, 0.9, 0.99])
        return {"query": query, "tiles": int(r.scores.size), "min": float(r.scores.min()),
                "max": float(r.scores.max()), "median": float(q[0]), "p90": float(q[1]), "p99": float(q[2]),
                "best_tile": [row, col], "best_score": float(r.scores[r.best]),
                "best_bounds": [[min(lats), min(lons)], [max(lats), max(lons)]]}

    def tile(self, query: str, z: int, x: int, y: int, threshold: float | None = None) -> bytes:
        """A heat-map tile: the magma ramp over the phrase's score range, cells below ``threshold`` clear."""
        check_threshold(threshold)
        r = self.result(query)
        img = r.layer.read_tile(z, x, y, indexes=1)
        if threshold is not None:
            img.array.mask = np.ma.getmaskarray(img.array) | (np.ma.getdata(img.array) < threshold)
        return render_ramp(img, float(r.scores.min()), float(r.scores.max()), HEAT_RAMP)

    def geotiff(self, query: str) -> bytes:
        """The heat map as a GeoTIFF file: the values ``senclip search`` writes for the phrase."""
        raster = self.result(query).raster
        raster.seek(0)
        return raster.read()

    def geojson(self, query: str, threshold: float | None = None) -> dict:
        """The tiles scoring at least ``threshold`` (all without one) as WGS84 polygons, best first."""
        check_threshold(threshold)
        r = self.result(query)
        keep = np.flatnonzero(r.scores >= threshold) if threshold is not None else np.arange(r.scores.size)
        keep = keep[np.argsort(-r.scores[keep], kind="stable")]
        features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                     "properties": {"row": int(self.rows[i]), "col": int(self.cols[i]),
                                    "score": float(r.scores[i])}}
                    for i, ring in zip(keep, self._rings(keep), strict=True)]
        return {"type": "FeatureCollection", "query": query, "threshold": threshold, "features": features}

    def _rings(self, index: np.ndarray) -> list[list[list[float]]]:
        """Closed WGS84 rings (counter-clockwise, RFC 7946) of the tiles at ``index``."""
        b = self.grid.tile_bounds(self.rows[index], self.cols[index])  # (n, 4) left, bottom, right, top
        xs = np.stack([b[:, 0], b[:, 2], b[:, 2], b[:, 0], b[:, 0]], axis=1)
        ys = np.stack([b[:, 1], b[:, 1], b[:, 3], b[:, 3], b[:, 1]], axis=1)
        lon, lat = transform_coords(self.crs, WGS84, xs.ravel(), ys.ravel())
        lon, lat = np.round(np.reshape(lon, xs.shape), 7), np.round(np.reshape(lat, ys.shape), 7)
        return [[[float(a), float(c)] for a, c in zip(ring_lon, ring_lat, strict=True)]
                for ring_lon, ring_lat in zip(lon, lat, strict=True)]
