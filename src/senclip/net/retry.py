"""Retries with exponential backoff, for every remote operation senclip makes itself.

Retrying happens here, in our code, not inside GDAL or requests (GDAL's own
retries are off, see :mod:`senclip.net.gdal`): :func:`retry_call` decides
whether a failure is transient (HTTP 5xx or 429, a timeout, a reset or
truncated transfer), logs it and waits before the next try. One
:class:`RetryPolicy` governs downloads, photos, STAC calls and COG reads alike.

Only failures of input/output become a :class:`RemoteError` (:func:`is_remote`: ``OSError`` and
what requests, urllib3, GDAL/rasterio and pystac-client raise for a failed request or read); a
programming error (``TypeError``, ``KeyError``, …) raised inside a remote operation is a bug and
propagates as it is, so it is never counted as "a block that failed, retry it later".
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
    import requests  # here, not at the top: importing senclip.net stays cheap

    if isinstance(exc, TimeoutError | ConnectionError | requests.ConnectionError | requests.Timeout
                  | requests.exceptions.ChunkedEncodingError):
        return True
    text = str(exc).lower()
    return any(word in text for word in _TRANSIENT_WORDS)


def is_remote(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed request, transfer or read (I/O, HTTP, GDAL, a STAC API's answer).

    :class:`~senclip.errors.SenclipError` other than :class:`RemoteError` is ours (a one-line user
    error) and not remote; a ``json.JSONDecodeError`` is a garbled answer and remote; any other
    exception is a bug.
    """
    import http.client
    import json

    if isinstance(exc, RemoteError):
        return True
    if isinstance(exc, SenclipError):
        return False
    if isinstance(exc, OSError | http.client.HTTPException | json.JSONDecodeError):
        return True  # requests', rasterio's RasterioIOError and socket errors are OSErrors
    if http_status(exc) is not None and getattr(exc, "response", None) is not None:
        return True
    kinds = []
    for module, name in (("urllib3.exceptions", "HTTPError"), ("rasterio.errors", "RasterioError"),
                         ("rasterio._err", "CPLE_BaseError"), ("pystac_client.exceptions", "APIError")):
        try:
            kinds.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):  # pragma: no cover - declared dependencies
            continue
    return isinstance(exc, tuple(kinds))


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
        Exception: anything that is not a remote failure (:func:`is_remote`: a bug, a user
            error) propagates unchanged at once.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn(attempt)
        except Exception as exc:
            if not is_remote(exc):
                raise
            retry = transient(exc) and attempt < policy.attempts
            first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            code = http_status(exc)
            if code is not None and str(code) not in first:  # pystac-client's APIError may carry no text
                first = f"HTTP {code} ({first})"
            if not retry:
                tries = f" after {attempt} tries" if attempt > 1 else ""
                raise RemoteError(f"{what} failed{tries}: {first}") from exc
            delay = policy.wait(attempt)
            log.warning("%s: %s; retry %d/%d in %.1fs", what, first, attempt, policy.attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover

