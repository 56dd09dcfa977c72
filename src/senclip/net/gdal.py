"""The GDAL settings for remote COG reads (``/vsicurl/``), which GDAL performs itself.

Rasterio reads windows of remote Cloud-Optimised GeoTIFFs through GDAL's
curl client, not through Python; this module only says how GDAL should
behave so that :func:`senclip.net.retry_call` stays in charge of retries.

``GDAL_HTTP_MAX_RETRY=0``
    no retries inside GDAL; ours apply (with backoff, logged, counted).
``GDAL_HTTP_TIMEOUT`` / ``GDAL_HTTP_CONNECTTIMEOUT``
    the request timeout of the :class:`~senclip.net.RetryPolicy`.
``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``
    no directory listing of the asset's folder on open (saves a request).
``CPL_VSIL_CURL_ALLOWED_EXTENSIONS=.tif,.tiff,.TIF,.jp2``
    only raster files are probed (no ``.aux.xml``/``.ovr`` side-car requests).
``GDAL_HTTP_MULTIRANGE=YES``, ``GDAL_HTTP_MERGE_CONSECUTIVE_RANGES=YES``
    fewer, larger range requests for the tiles of a window.
``CPL_VSIL_CURL_NON_CACHED`` (retries only)
    GDAL caches a failed open ("HTTP 503") per URL; a retry sets this so the
    URL is fetched again instead of failing from the cache.
``AWS_NO_SIGN_REQUEST=YES``
    public ``s3://`` hrefs (Earth Search alternates) are read anonymously.
"""

from __future__ import annotations

from senclip.net.retry import RetryPolicy


def gdal_env(policy: RetryPolicy, retry_of: str | None = None) -> dict[str, str]:
    """GDAL config options for remote COG reads (see the module docstring).

    Args:
        policy: its ``timeout`` becomes GDAL's request timeout.
        retry_of: the href being retried, if this is a retry: its cached
            state in GDAL is bypassed.
    """
    env = {
        "GDAL_HTTP_MAX_RETRY": "0",
        "GDAL_HTTP_TIMEOUT": str(max(1, round(policy.timeout))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, round(policy.timeout))),
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2",
        "GDAL_HTTP_MULTIRANGE": "YES",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "AWS_NO_SIGN_REQUEST": "YES",
    }
    if retry_of and "://" in retry_of:
        env["CPL_VSIL_CURL_NON_CACHED"] = "/vsicurl/" + retry_of.split("?", 1)[0]
    return env
