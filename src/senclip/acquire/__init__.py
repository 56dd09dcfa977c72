"""Paired-data acquisition: survey points → Sentinel-2 chips / monthly series / ground photos via STAC.

Modules: :mod:`.points` (read and validate points), :mod:`.stac` (catalogue,
search, signing, band assets), :mod:`.chips` (grid, cloud ranking, windowed
reads, GeoTIFF chips), :mod:`.pipeline` (``acquire chips``), :mod:`.series`
(``acquire series``), :mod:`.photos` (ground photos), :mod:`.jobs` (journal,
thread pool). Retries, GDAL settings and downloads come from :mod:`senclip.net`;
the loopback test servers from :mod:`senclip.testing`. See ``docs/acquire.md``.
"""

from senclip.acquire.chips import ChipSpec
from senclip.acquire.pipeline import ChipsOptions, acquire_chips, write_paired_manifest
from senclip.acquire.points import read_points
from senclip.acquire.series import SeriesOptions, acquire_series
from senclip.net import RemoteError, RetryPolicy

__all__ = [
    "ChipSpec",
    "ChipsOptions",
    "RemoteError",
    "RetryPolicy",
    "SeriesOptions",
    "acquire_chips",
    "acquire_series",
    "read_points",
    "write_paired_manifest",
]
