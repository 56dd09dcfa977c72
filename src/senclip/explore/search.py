"""Text queries over tile embeddings, as ``senclip search`` answers them, kept in memory for the page.

:class:`TextSearch` loads an ``embed`` GeoParquet file once and scores a phrase with the library's
one scoring rule (:func:`senclip.mapping.embeddings.tile_similarity` against the unit embeddings,
then :func:`~senclip.mapping.embeddings.cell_mean` on the cell grid), so its heat map and best tile
are those of ``senclip search`` for the same model and phrase. A result is an in-memory GeoTIFF
(GDAL ``/vsimem/``) of the heat map, which gives the page's tiles (through
:class:`~senclip.explore.layers.RasterLayer`, as every layer) and the GeoTIFF download; the
GeoJSON download holds the tiles whose score reaches a threshold.

The last few results are kept. A phrase is scored outside the lock that guards the kept results, so
a slow text tower never holds up a request for a kept phrase; a result pushed out of the kept ones
closes its in-memory file only once the last request reading tiles from it is done.

The threshold means the same on both sides as far as each can: the page's slider hides the heat
map's *cells* whose score (the mean of the tiles over the cell) is below it, while the GeoJSON
download keeps the *tiles* whose own score reaches it; where tiles overlap (stride < tile) a cell
and the tiles over it can fall on different sides.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.io import MemoryFile
from rasterio.warp import transform as transform_coords

from senclip.errors import SenclipError
from senclip.explore.errors import BadRequest, Unprocessable
from senclip.explore.layers import MERCATOR, WGS84, RasterLayer, leaflet_bounds, render_ramp
from senclip.mapping.embeddings import (
    cell_mean,
    check_query,
    read_tiles,
    tile_similarity,
    tiles_grid,
    unit_rows,
)
from senclip.mapping.writers import tiff_profile
from senclip.models.model import text_embed_dim

MAX_QUERY_CHARS = 300
"""Longest phrase taken (CLIP's text tower reads 77 tokens; a sentence or two)."""
KEEP_RESULTS = 8
HEAT_RAMP = "magma"


def check_phrase(query: str) -> None:
    """Refuse what ``senclip search`` refuses (an empty phrase) and one over :data:`MAX_QUERY_CHARS`
    (status 422)."""
    try:
        check_query(query)
    except SenclipError as exc:
        raise Unprocessable(str(exc)) from None
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
    users: int = 0          # requests reading it now (guarded by TextSearch's lock)
    kept: bool = field(default=True)

    def close(self) -> None:
        self.raster.close()


class TextSearch:
    """A ``senclip embed`` file and the model whose text tower scores phrases against it."""

    def __init__(self, model, tiles: str | Path) -> None:
        from rasterio.warp import transform_bounds

        self.model, self.path = model, Path(tiles)
        self.rows, self.cols, emb, self.meta = read_tiles(self.path)
        self.unit = unit_rows(emb)
        self.grid, self.crs = tiles_grid(self.meta)
        if self.crs is None:
            raise SenclipError(f"{self.path} records no CRS; the explorer needs one to draw its heat maps")
        if text_embed_dim(model) != self.unit.shape[1]:
            raise SenclipError(f"{self.path} holds {self.unit.shape[1]}-d embeddings but the model's text "
                               f"tower gives {text_embed_dim(model)}-d; use the model that wrote the file")
        t, w, h = self.grid.cell_transform, self.grid.cells_x, self.grid.cells_y
        xs, ys = (t.c, t.c + t.a * w), (t.f, t.f + t.e * h)
        self.mercator = transform_bounds(self.crs, MERCATOR, min(xs), min(ys), max(xs), max(ys),
                                         densify_pts=21)
        self._results: OrderedDict[str, SearchResult] = OrderedDict()
        self._lock = threading.Lock()

    def extent(self) -> dict:
        """The heat map's bounds in WGS84, as :meth:`RasterLayer.extent` gives them."""
        return {"bounds": leaflet_bounds(self.mercator)}

    def result(self, query: str) -> SearchResult:
        """The phrase's result (computed once, then kept among the last :data:`KEEP_RESULTS`).

        For reading its in-memory file, use :meth:`using`: a result pushed out of the kept ones
        meanwhile is closed only when its last reader is done.
        """
        with self.using(query) as r:
            return r

    @contextmanager
    def using(self, query: str) -> Iterator[SearchResult]:
        """The phrase's result, held open while the ``with`` block reads it."""
        check_phrase(query)
        with self._lock:
            r = self._results.get(query)
            if r is not None:
                self._results.move_to_end(query)
                r.users += 1
        if r is None:
            r = self._compute(query)  # outside the lock: the text tower takes tens of milliseconds
            with self._lock:
                kept = self._results.get(query)
                if kept is not None:  # another request scored the same phrase meanwhile
                    r.close()
                    r = kept
                else:
                    self._results[query] = r
                    self._evict()
                r.users += 1
        try:
            yield r
        finally:
            with self._lock:
                r.users -= 1
                if not r.kept and r.users == 0:
                    r.close()

    def _evict(self) -> None:
        while len(self._results) > KEEP_RESULTS:
            old = self._results.popitem(last=False)[1]
            old.kept = False
            if old.users == 0:
                old.close()

    def _compute(self, query: str) -> SearchResult:
        scores = tile_similarity(self.model, self.unit, query, self.path)
        heat = cell_mean(self.grid, self.rows, self.cols, scores)
        raster = self._geotiff(heat, query)
        return SearchResult(query, scores, heat, int(np.argmax(scores)), raster, RasterLayer(raster.name))

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
        with self.using(query) as r:
            img = r.layer.read_tile(z, x, y, indexes=1)
        if img is not None and threshold is not None:
            img.array.mask = np.ma.getmaskarray(img.array) | (np.ma.getdata(img.array) < threshold)
        return render_ramp(img, float(r.scores.min()), float(r.scores.max()), HEAT_RAMP)

    def geotiff(self, query: str) -> bytes:
        """The heat map as a GeoTIFF file: the values ``senclip search`` writes for the phrase."""
        with self.using(query) as r:
            return bytes(r.raster.getbuffer())

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
