"""Paired-data acquisition: survey points → Sentinel-2 chips / monthly series / ground photos via STAC.

Modules: :mod:`.points` (read and validate points), :mod:`.stac` (catalogue,
search, signing, band assets), :mod:`.chips` (grid, cloud ranking, windowed
reads, GeoTIFF chips), :mod:`.pipeline` (``acquire chips``), :mod:`.series`
(``acquire series``), :mod:`.photos` (ground photos), :mod:`.jobs` (journal,
thread pool). Retries, GDAL settings and downloads come from :mod:`senclip.net`;
the loopback test servers from :mod:`senclip.testing`. See ``docs/acquire.md``.

The names below are imported on first use (PEP 562): the command line lists its flags' defaults from
the light modules (:mod:`.stac`) without loading the acquisition pipeline.
"""

import importlib

_WHERE = {
    "ChipSpec": "senclip.acquire.chips",
    "ChipsOptions": "senclip.acquire.pipeline",
    "acquire_chips": "senclip.acquire.pipeline",
    "write_paired_manifest": "senclip.acquire.pipeline",
    "read_points": "senclip.acquire.points",
    "SeriesOptions": "senclip.acquire.series",
    "acquire_series": "senclip.acquire.series",
    "RemoteError": "senclip.net",
    "RetryPolicy": "senclip.net",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'senclip.acquire' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
