"""Fetching files over HTTP(S): resumable, verified, atomic, retried, with a clear offline error.

Used by dataset downloads (:mod:`senclip.data.download`), pretrained weights
(:mod:`senclip.models.registry`) and ground photos
(:mod:`senclip.acquire.photos`). requests is the one HTTP client senclip
drives itself (pystac-client uses it too); it is imported only when a transfer
starts, so ``senclip download`` and ``import senclip.net`` stay light.

* :func:`fetch` downloads ``url`` to ``dest`` through ``dest.partial``. A
  partial file left by an interrupted run is resumed with an HTTP ``Range``
  request; a dropped connection, a timeout or a 5xx answer is retried with
  exponential backoff (:class:`~senclip.net.RetryPolicy`), resuming from where
  the transfer stopped. The file is verified (size, MD5, SHA-256: whichever are
  known) *before* it is renamed to ``dest``; a file that fails is deleted and
  :class:`~senclip.errors.SenclipError` says so.
* No route to the host, a refused connection at the first try or an offline
  switch (``SENCLIP_OFFLINE=1``; ``HF_HUB_OFFLINE=1`` for Hugging Face hosts)
  fail in seconds with :class:`OfflineError`, a one-line message naming the
  cache path and the offline alternative.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import urllib.parse
from pathlib import Path

from senclip.errors import SenclipError
from senclip.net.retry import RemoteError, RetryPolicy, is_transient, retry_call

CHUNK = 1 << 20
HF_HOSTS = ("huggingface.co", "hf.co")
TRUTHY = ("1", "true", "yes", "on")


class OfflineError(RemoteError):
    """The network is unreachable (or switched off) and the file is not cached."""


def cache_dir() -> Path:
    """senclip's cache root: ``$SENCLIP_CACHE`` or ``~/.cache/senclip``."""
    env = os.environ.get("SENCLIP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "senclip"


def connect_timeout() -> float:
    """Seconds to wait for a connection or a read (``SENCLIP_DOWNLOAD_TIMEOUT``, default 10)."""
    try:
        return float(os.environ.get("SENCLIP_DOWNLOAD_TIMEOUT", "10"))
    except ValueError as exc:
        raise SenclipError("SENCLIP_DOWNLOAD_TIMEOUT must be a number of seconds") from exc


def is_hf_url(url: str) -> bool:
    host = (urllib.parse.urlparse(url).hostname or "").lower()
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "")).hostname
    return host.endswith(HF_HOSTS) or (endpoint is not None and host == endpoint.lower())


def offline_switch(url: str) -> str | None:
    """Name of the environment variable that forbids fetching ``url``, if one is set."""
    if os.environ.get("SENCLIP_OFFLINE", "").lower() in TRUTHY:
        return "SENCLIP_OFFLINE"
    if is_hf_url(url) and os.environ.get("HF_HUB_OFFLINE", "").lower() in TRUTHY:
        return "HF_HUB_OFFLINE"
    return None


def file_digest(path: Path, algorithm: str, progress: bool = False) -> str:
    """Hex digest of a file (``md5`` or ``sha256``), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    size = path.stat().st_size
    with open(path, "rb") as f, _bar(size, f"{algorithm} {path.name}", progress) as bar:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def verify_file(path: Path, size: int | None = None, md5: str | None = None,
                sha256: str | None = None, progress: bool = False, name: str | None = None) -> None:
    """Check a file's size and checksums; delete it and raise if one differs.

    ``name`` is the file name used in the message (default: ``path.name``).

    Raises:
        SenclipError: naming the file, the expected and the actual value.
    """
    problem = None
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        problem = f"size {actual_size} bytes, expected {size}"
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if problem is None and expected:
            actual = file_digest(path, algorithm, progress)
            if actual.lower() != expected.lower():
                problem = f"{algorithm} {actual}, expected {expected}"
    if problem is not None:
        path.unlink(missing_ok=True)
        raise SenclipError(f"checksum mismatch for {name or path.name}: {problem}; the file was removed, "
                           "run the command again to download it afresh")


def fetch(url: str, dest: Path, *, size: int | None = None, md5: str | None = None,
          sha256: str | None = None, progress: bool = True, policy: RetryPolicy | None = None,
          what: str | None = None, offline_hint: str = "") -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic). Returns ``dest``.

    An existing ``dest`` is trusted (it was verified when it was written).

    Args:
        url: http(s) URL.
        dest: final path; the transfer goes to ``dest.partial``.
        size, md5, sha256: expected values; ``None`` skips that check.
        progress: show a tqdm bar.
        policy: tries, backoff and request timeout (default: 4 tries, 0.5 s
            doubling backoff, ``SENCLIP_DOWNLOAD_TIMEOUT`` seconds).
        what: what is downloaded, for messages (default: the file name).
        offline_hint: the offline alternative, appended to offline errors.

    Raises:
        OfflineError: offline switch set, no route, DNS failure, refused connection.
        RemoteError: HTTP error (``__cause__`` carries the status), transfer
            that keeps failing.
        SenclipError: checksum mismatch.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    what = what or dest.name
    switch = offline_switch(url)
    if switch:
        raise OfflineError(f"{what} is not in {dest.parent} and {switch}=1 forbids downloading it "
                           f"from {url}{offline_hint}")
    policy = policy or RetryPolicy(timeout=connect_timeout())
    partial = dest.with_name(dest.name + ".partial")
    try:
        retry_call(lambda attempt: _transfer(url, partial, policy.timeout, progress, what, attempt == 1),
                   policy, what=f"downloading {what} from {url}", transient=_retryable)
    except RemoteError as exc:
        cause = exc.__cause__
        if isinstance(cause, _Unreachable):
            raise OfflineError(f"cannot reach {urllib.parse.urlparse(url).netloc or url} to download "
                               f"{what} ({_reason(cause.__cause__)}); nothing cached at {dest}"
                               f"{offline_hint}") from cause.__cause__
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if status is not None:
            raise RemoteError(f"cannot download {what}: HTTP {status} {cause.response.reason} "
                              f"from {url}") from cause
        if _retryable(cause):
            raise RemoteError(f"download of {what} from {url} kept failing ({_reason(cause)}); "
                              f"run again to resume from {partial}") from cause
        raise cause from cause.__cause__  # ours (a SenclipError) or a local failure (disk full)
    verify_file(partial, size, md5, sha256, progress, name=dest.name)
    os.replace(partial, dest)
    return dest


class _Truncated(OSError):
    """The connection broke before the server sent everything it announced."""


class _Unreachable(OSError):
    """No connection could be opened at the first try: offline, not worth retrying."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Truncated) or (not isinstance(exc, SenclipError | _Unreachable)
                                           and is_transient(exc))


def _transfer(url: str, partial: Path, timeout: float, progress: bool, what: str, first: bool) -> None:
    """One HTTP request: resume ``partial`` from its current size to the end."""
    from importlib.metadata import version

    import requests
    import urllib3

    have = partial.stat().st_size if partial.exists() else 0
    # identity: the bytes on disk are the file's bytes, so Range offsets and checksums apply to them
    headers = {"User-Agent": f"senclip/{version('senclip')}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.ConnectionError as exc:
        dropped = bool(exc.args) and isinstance(exc.args[0], urllib3.exceptions.ProtocolError)
        if first and not dropped:
            raise _Unreachable() from exc
        raise
    with response:
        if response.status_code == 416 and have:  # nothing left to send: the partial file is complete
            total = _total_from_content_range(response.headers.get("Content-Range"))
            if total in (None, have):
                return
            partial.unlink()
            raise _Truncated("stale partial file larger than the remote file")
        response.raise_for_status()
        if have and response.status_code == 206:
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != have:
                raise SenclipError(f"server sent bytes from {start}, asked for {have}: {url}")
            mode = "ab"
        else:
            have, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = have
        partial.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, mode) as f, _bar(total, what, progress, initial=have) as bar:
            try:  # raw, undecoded reads: each chunk is written as it arrives, kept for the resume
                for chunk in response.raw.stream(CHUNK, decode_content=False):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except urllib3.exceptions.HTTPError as exc:  # reset, read timeout, short body
                raise _Truncated(f"got {received} of {total or '?'} bytes") from exc
        if total is not None and received < total:
            raise _Truncated(f"got {received} of {total} bytes")


def _start_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-", value or "")
    return int(m.group(1)) if m else None


def _total_from_content_range(value: str | None) -> int | None:
    m = re.search(r"/(\d+)\s*$", value or "")
    return int(m.group(1)) if m else None


def _reason(exc: BaseException) -> str:
    """The innermost cause of ``exc``, one line: requests and urllib3 wrap the socket error twice."""
    for _ in range(4):
        inner = getattr(exc, "reason", None) or (exc.args[0] if exc.args else None)
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return re.sub(r"^\S*(<[^>]*>|\([^)]*\)): ", "", text)  # drop urllib3's "<connection object>: "


def _bar(total: int | None, desc: str, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, disable=not enabled, leave=False)


def network_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host can be opened within ``timeout`` seconds."""
    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False

