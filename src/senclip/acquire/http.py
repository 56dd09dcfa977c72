"""Retries with exponential backoff, and the GDAL settings for remote COG reads.

Retrying happens here, in our code, not inside GDAL or requests: GDAL's own
retries are switched off (``GDAL_HTTP_MAX_RETRY=0``) so that every failure
reaches :func:`retry_call`, which decides whether it is transient (HTTP 5xx or
429, a timeout, a reset or truncated transfer) and waits before the next try.

GDAL environment used for ``/vsicurl/`` reads (see :func:`gdal_env`):

``GDAL_HTTP_MAX_RETRY=0``
    no retries inside GDAL; ours apply (with backoff, logged, counted).
``GDAL_HTTP_TIMEOUT`` / ``GDAL_HTTP_CONNECTTIMEOUT``
    the request timeout of the :class:`RetryPolicy`.
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

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from senclip.errors import SenclipError

log = logging.getLogger(__name__)
T = TypeVar("T")

_HTTP_CODE = re.compile(r"(?:HTTP response code|HTTP error code|status)\D{0,5}(\d{3})", re.I)
_TRANSIENT_WORDS = (
    "timed out",
    "timeout",
    "connection reset",
    "connection refused",
    "connection aborted",
    "transferred a partial file",
    "partial file",
    "read failed",
    "eof",
    "broken pipe",
    "remotedisconnected",
    "incomplete",
    "chunked",
    "empty reply",
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one remote operation.

    Attributes:
        attempts: tries in all (1 = no retry).
        backoff: seconds before the 2nd try; doubles on each later try.
        max_backoff: ceiling of the wait between tries.
        timeout: seconds before one HTTP request is abandoned.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise SenclipError(f"retries: need at least 1 attempt, got {self.attempts}")
        if self.timeout <= 0:
            raise SenclipError(f"timeout must be positive, got {self.timeout}")

    def wait(self, attempt: int) -> float:
        """Seconds to sleep after failed try number ``attempt`` (1-based), with ±20 % jitter."""
        base = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return base * random.uniform(0.8, 1.2)


class RemoteError(SenclipError):
    """A remote read or request failed (after retries, when it was transient)."""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status code carried by ``exc`` (requests, GDAL message), if any."""
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", getattr(exc, "status_code", None))  # requests / pystac-client
    if isinstance(code, int):
        return code
    m = _HTTP_CODE.search(str(exc))
    return int(m.group(1)) if m else None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` may help: 5xx, 429, timeouts, resets, truncated bodies."""
    if isinstance(exc, SenclipError) and not isinstance(exc, RemoteError):
        return False
    code = http_status(exc)
    if code is not None:
        return code >= 500 or code in (408, 429)
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    try:
        import requests

        if isinstance(
            exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
        ):
            return True
    except ImportError:  # pragma: no cover - requests comes with pystac-client
        pass
    text = str(exc).lower()
    return any(word in text for word in _TRANSIENT_WORDS)


def retry_call(
    fn: Callable[[int], T],
    policy: RetryPolicy,
    what: str = "request",
    transient: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn(attempt)`` until it succeeds, retrying transient failures.

    Args:
        fn: the operation; receives the 1-based attempt number (so that a
            retry can, e.g., bypass a cache).
        policy: attempts, backoff and timeout.
        what: short description for log messages and the final error.
        transient: decides whether an exception is worth another try.
        sleep: the wait function (tests pass a no-op).

    Returns:
        What ``fn`` returned.

    Raises:
        RemoteError: the last failure, after ``policy.attempts`` tries, or at
            once for a failure that is not transient (HTTP 404, bad data).
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn(attempt)
        except Exception as exc:
            retry = transient(exc) and attempt < policy.attempts
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not retry:
                tries = f" after {attempt} tries" if attempt > 1 else ""
                raise RemoteError(f"{what} failed{tries}: {first}") from exc
            delay = policy.wait(attempt)
            log.warning("%s: %s; retry %d/%d in %.1fs", what, first, attempt, policy.attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


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
