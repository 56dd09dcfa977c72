"""Whole-scene mapping: tiles of a GeoTIFF/COG → class maps, embeddings, text search.

* :func:`map_scene` (``senclip map``): classify tiles, write a COG + legend + PNG.
* :func:`embed_scene` (``senclip embed``): tile embeddings as GeoParquet.
* :func:`search_tiles` (``senclip search``): text query → heat-map GeoTIFF.
* :func:`map_many` (``senclip map --inputs``): many scenes, optionally on Dask.

See ``docs/mapping.md``.
"""

from senclip.mapping.classify import (
    LinearClassifier,
    ZeroShotClassifier,
    probe_classifier,
    zeroshot_classifier,
)
from senclip.mapping.embeddings import embed_scene, read_tiles, search_tiles
from senclip.mapping.grid import TileGrid
from senclip.mapping.mapper import MapOptions, map_scene
from senclip.mapping.scenes import ClassifierSpec, MapJob, ModelSpec, map_many
from senclip.mapping.source import RasterSource, SourceOptions

__all__ = [
    "ClassifierSpec", "LinearClassifier", "MapJob", "MapOptions", "ModelSpec", "RasterSource",
    "SourceOptions", "TileGrid", "ZeroShotClassifier", "embed_scene", "map_many", "map_scene",
    "probe_classifier", "read_tiles", "search_tiles", "zeroshot_classifier",
]
