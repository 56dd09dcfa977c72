"""The one loopback HTTP file server of the tests and benchmarks: Range support, faults, a request log.

It serves files the way object stores and download hosts do (``Accept-Ranges``,
``206 Partial Content``, ``416`` past the end) and injects the failures seen at
scale: a 503 or 404, a body cut short (half of it, or after ``after`` bytes),
or a slow response. Files come from a folder (COG assets, photos) or from the
in-memory ``files`` dict (archives and checkpoints built by a test). Every
answer is logged as ``(path, Range header, body bytes)`` *before* it is sent,
so a client that has its answer also sees it in the log. It binds to
127.0.0.1 only.

Example:
    >>> server = RangeServer(root)            # doctest: +SKIP
    >>> server.start()
    >>> server.faults.add("B04", "503", times=2)
    >>> url = server.url("scene/B04.tif")
    >>> server.stop()
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAULT_KINDS = ("503", "404", "truncate", "delay")
CONTROL = "/__control__/"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Fault:
    """One injected failure: ``kind`` for requests whose path contains ``match``.

    Attributes:
        match: substring of the request path that triggers the fault.
        kind: ``"503"``, ``"404"``, ``"truncate"`` (send ``after`` bytes of
            the body, default half of it, then close) or ``"delay"`` (sleep
            ``seconds`` before answering).
        times: how many matching requests get it (``None``: all of them).
        seconds: the delay of a ``"delay"`` fault.
        after: body bytes sent before a ``"truncate"`` fault closes the connection.
    """

    match: str
    kind: str
    times: int | None = 1
    seconds: float = 0.0
    after: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {self.kind!r}")


@dataclass
class FaultPlan:
    """Faults consumed in order by matching requests; thread-safe."""

    faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, match: str, kind: str, **options) -> None:
        """Inject ``kind`` into requests whose path contains ``match`` (``options``: see :class:`Fault`)."""
        fault = Fault(match, kind, **options)
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        """Remove every pending fault."""
        with self._lock:
            self.faults.clear()

    def take(self, path: str, method: str = "GET") -> Fault | None:
        """The fault for a ``method`` request to ``path`` (consuming one use), or ``None``.

        ``truncate`` faults apply to GET requests only (a HEAD has no body).
        """
        with self._lock:
            for fault in self.faults:
                if fault.kind == "truncate" and method != "GET":
                    continue
                if fault.match in path and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None


class _Loopback:
    """What a server in a thread and one in its own process both offer: URLs and the request log."""

    port: int
    log: list[tuple[str, str | None, int]]

    def url(self, relpath: str | Path = "") -> str:
        """The http URL of ``relpath`` (relative to ``root``; a leading ``/`` is allowed)."""
        rel = Path(str(relpath).lstrip("/")).as_posix()
        return f"http://127.0.0.1:{self.port}/{'' if rel == '.' else rel}"

    @property
    def requests(self) -> Counter[str]:
        """Number of requests per path."""
        return Counter(path for path, _, _ in self.log)

    @property
    def bytes_sent(self) -> Counter[str]:
        """Body bytes sent per path."""
        sent: Counter[str] = Counter()
        for path, _, nbytes in self.log:
            sent[path] += nbytes
        return sent

    def requests_for(self, path: str) -> list[tuple[str, str | None, int]]:
        """The log entries of one path."""
        return [entry for entry in self.log if entry[0] == path]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RangeServer(_Loopback):
    """Serve ``files`` and the files under ``root`` on 127.0.0.1 with HTTP Range support.

    Args:
        root: folder whose files are served (``GET /<relative path>``), or
            ``None`` to serve only ``files``.
        latency: seconds added to every response (simulates a remote store).

    Attributes:
        files: ``{"/path": bytes}`` served before anything under ``root``.
        faults: the :class:`FaultPlan` applied to incoming requests.
        log: ``(path, Range header or None, body bytes sent)`` per request, in order.
    """

    def __init__(self, root: str | Path | None = None, latency: float = 0.0) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.latency = latency
        self.files: dict[str, bytes] = {}
        self.faults = FaultPlan()
        self.log: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    def reset_stats(self) -> None:
        """Empty the request log (and so the counters)."""
        with self._lock:
            self.log.clear()

    def _count(self, path: str, range_header: str | None, nbytes: int) -> None:
        with self._lock:
            self.log.append((path, range_header, nbytes))

    def start(self) -> RangeServer:
        """Bind a free loopback port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        serve.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many parallel range requests: a short listen backlog stalls clients
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    server_ref: RangeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format, *args) -> None:
        pass

    def _file(self) -> bytes | Path | None:
        """The in-memory bytes or the file under ``root`` that the request names."""
        srv = self.server_ref
        key = self.path.split("?", 1)[0]
        if key in srv.files or srv.root is None:
            return srv.files.get(key)
        path = (srv.root / key.lstrip("/")).resolve()
        return path if srv.root in path.parents and path.is_file() else None

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        if self.path.startswith(CONTROL):
            return self._control()
        self._serve(head=False)
        return None

    def do_POST(self) -> None:
        self._control()

    def do_DELETE(self) -> None:
        self._control()

    def _control(self) -> None:
        """Fault and counter control for a server run in another process."""
        srv = self.server_ref
        what = self.path[len(CONTROL) :]
        body = b"{}"
        if what == "faults" and self.command == "POST":
            spec = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            srv.faults.add(**spec)
        elif what == "faults" and self.command == "DELETE":
            srv.faults.clear()
        elif what == "reset" and self.command == "POST":
            srv.reset_stats()
        elif what == "log":
            with srv._lock:
                body = json.dumps(srv.log).encode()
        else:
            return self._error(404)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    def _error(self, code: int, size: int | None = None) -> None:
        """An empty answer with status ``code``, logged before it is sent."""
        self.server_ref._count(self.path, self.headers.get("Range"), 0)
        self.send_response(code)
        if size is not None:
            self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, head: bool) -> None:
        srv = self.server_ref
        if srv.latency:
            time.sleep(srv.latency)
        fault = srv.faults.take(self.path, "HEAD" if head else "GET")
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind in ("503", "404"):
            return self._error(int(fault.kind))
        source = self._file()
        if source is None:
            return self._error(404)
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        start, end = 0, size - 1
        status = 200
        header = self.headers.get("Range")
        if header:
            m = _RANGE.match(header.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self._error(416)
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start = max(size - int(m.group(2)), 0)
            if start >= size or start > end:
                return self._error(416, size)
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            srv._count(self.path, header, 0)
            return None
        if isinstance(source, bytes):
            body = source[start : end + 1]
        else:
            with open(source, "rb") as f:
                f.seek(start)
                body = f.read(length)
        if fault is not None and fault.kind == "truncate":
            body = body[: fault.after if fault.after is not None else max(len(body) // 2, 1)]
            self.close_connection = True
        srv._count(self.path, header, len(body))  # before sending: a client that has the body sees it
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        if fault is not None and fault.kind == "truncate":
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return None


class _RemoteFaults:
    """``add``/``clear`` of a :class:`RangeServerProcess`'s faults, over its control URL."""

    def __init__(self, base: str) -> None:
        self.base = base + "/"

    def add(self, match: str, kind: str, **options) -> None:
        _call(self.base + "faults", "POST", asdict(Fault(match, kind, **options)))  # checked here, not there

    def clear(self) -> None:
        _call(self.base + "faults", "DELETE")


def wait_or_kill(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait for a server process asked to exit; kill it if it is still running after ``timeout`` s."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _call(url: str, method: str = "GET", payload: dict | None = None):
    import requests

    response = requests.request(method, url, json=payload, timeout=10)
    response.raise_for_status()
    return response.json()


class RangeServerProcess(_Loopback):
    """A :class:`RangeServer` in its own Python process, with the same interface.

    Clients that hold the GIL while they wait for a response (GDAL called from
    Python threads) would stall a server living in their own process; this
    one cannot be stalled that way. Faults and counters go through
    ``/__control__/`` URLs.
    """

    def __init__(self, root: str | Path, latency: float = 0.0) -> None:
        self.root = Path(root).resolve()
        self.latency = latency
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> RangeServerProcess:
        """Start the server process and read its port."""
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from senclip.testing.servers import main; main()", str(self.root),
             "--latency", str(self.latency)],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"range server did not start (said {line!r})")
        self.port = int(line)
        self.faults = _RemoteFaults(self.url(CONTROL))
        return self

    @property
    def log(self) -> list[tuple[str, str | None, int]]:
        """The server's request log, fetched from it."""
        return [tuple(entry) for entry in _call(self.url(CONTROL + "log"))]

    def reset_stats(self) -> None:
        """Empty the request log (and so the counters)."""
        _call(self.url(CONTROL + "reset"), "POST", {})

    def stop(self) -> None:
        """End the server process."""
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()  # the server exits when its stdin closes
            wait_or_kill(self.proc)
            self.proc = None


def main(argv: list[str] | None = None) -> None:
    """The server of a :class:`RangeServerProcess`: ``ROOT [--latency S]``, stops when stdin closes."""
    import argparse

    p = argparse.ArgumentParser(
        description="Serve a folder on 127.0.0.1 with HTTP Range support; "
        "prints the port, stops when stdin closes."
    )
    p.add_argument("root")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    args = p.parse_args(argv)
    server = RangeServer(args.root, latency=args.latency).start()
    print(server.port, flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    server.stop()

