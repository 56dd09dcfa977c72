"""A loopback HTTP file server with Range support and fault injection.

Used by the acquisition tests and ``benchmarks/acquire_throughput.py`` to
serve Cloud-Optimised GeoTIFFs the way object stores do (``Accept-Ranges``,
``206 Partial Content``), and to inject the failures seen at scale: a 503, a
truncated body, or a slow response. It binds to 127.0.0.1 only.

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
from collections import defaultdict
from dataclasses import dataclass, field
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
        kind: ``"503"``, ``"404"``, ``"truncate"`` (send half the body, then
            close) or ``"delay"`` (sleep ``seconds`` before answering).
        times: how many matching requests get it (``None``: all of them).
        seconds: the delay of a ``"delay"`` fault.
    """

    match: str
    kind: str
    times: int | None = 1
    seconds: float = 0.0


@dataclass
class FaultPlan:
    """Faults consumed in order by matching requests; thread-safe."""

    faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, match: str, kind: str, times: int | None = 1, seconds: float = 0.0) -> None:
        """Inject ``kind`` into the next ``times`` requests whose path contains ``match``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        with self._lock:
            self.faults.append(Fault(match, kind, times, seconds))

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


class RangeServer:
    """Serve the files under ``root`` on 127.0.0.1 with HTTP Range support.

    Args:
        root: folder whose files are served (``GET /<relative path>``).
        latency: seconds added to every response (simulates a remote store).

    Attributes:
        faults: the :class:`FaultPlan` applied to incoming requests.
        requests: number of requests per path.
        bytes_sent: body bytes sent per path.
    """

    def __init__(self, root: str | Path, latency: float = 0.0) -> None:
        self.root = Path(root).resolve()
        self.latency = latency
        self.faults = FaultPlan()
        self.requests: dict[str, int] = defaultdict(int)
        self.bytes_sent: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    def url(self, relpath: str | Path = "") -> str:
        """The http URL of ``relpath`` (relative to ``root``)."""
        rel = Path(relpath).as_posix()
        return f"http://127.0.0.1:{self.port}/{'' if rel == '.' else rel}"

    def reset_stats(self) -> None:
        """Zero the request and byte counters."""
        with self._lock:
            self.requests.clear()
            self.bytes_sent.clear()

    def _count(self, path: str, nbytes: int) -> None:
        with self._lock:
            self.requests[path] += 1
            self.bytes_sent[path] += nbytes

    def start(self) -> RangeServer:
        """Bind a free loopback port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many parallel range requests: a short listen backlog stalls clients
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    server_ref: RangeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format, *args) -> None:
        pass

    def _file(self) -> Path | None:
        rel = self.path.split("?", 1)[0].lstrip("/")
        path = (self.server_ref.root / rel).resolve()
        if self.server_ref.root not in path.parents or not path.is_file():
            return None
        return path

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
            srv.faults.add(spec["match"], spec["kind"], spec.get("times", 1), spec.get("seconds", 0.0))
        elif what == "faults" and self.command == "DELETE":
            srv.faults.clear()
        elif what == "reset" and self.command == "POST":
            srv.reset_stats()
        elif what == "stats":
            with srv._lock:
                body = json.dumps({"requests": srv.requests, "bytes_sent": srv.bytes_sent}).encode()
        else:
            return self._error(404)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    def _error(self, code: int) -> None:
        self.send_response(code)
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
            srv._count(self.path, 0)
            return self._error(int(fault.kind))
        path = self._file()
        if path is None:
            srv._count(self.path, 0)
            return self._error(404)
        size = path.stat().st_size
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
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
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
            srv._count(self.path, 0)
            return None
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(length)
        if fault is not None and fault.kind == "truncate":
            body = body[: max(len(body) // 2, 1)]
            self.close_connection = True
        srv._count(self.path, len(body))  # before sending: a client that has the body sees the count
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
        self.base = base

    def add(self, match: str, kind: str, times: int | None = 1, seconds: float = 0.0) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        _call(
            self.base + "faults", "POST", {"match": match, "kind": kind, "times": times, "seconds": seconds}
        )

    def clear(self) -> None:
        _call(self.base + "faults", "DELETE")


def wait_or_kill(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait for a server process asked to exit; kill it if it is still running after ``timeout`` s."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _call(url: str, method: str = "GET", payload: dict | None = None) -> dict:
    import urllib.request

    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


class RangeServerProcess:
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
            [sys.executable, "-m", "senclip.acquire.testing", str(self.root), "--latency", str(self.latency)],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"range server did not start (said {line!r})")
        self.port = int(line)
        self.faults = _RemoteFaults(f"http://127.0.0.1:{self.port}{CONTROL}")
        return self

    def url(self, relpath: str | Path = "") -> str:
        """The http URL of ``relpath`` (relative to ``root``)."""
        rel = Path(relpath).as_posix()
        return f"http://127.0.0.1:{self.port}/{'' if rel == '.' else rel}"

    def _stats(self) -> dict:
        return _call(f"http://127.0.0.1:{self.port}{CONTROL}stats")

    @property
    def requests(self) -> dict[str, int]:
        return defaultdict(int, self._stats()["requests"])

    @property
    def bytes_sent(self) -> dict[str, int]:
        return defaultdict(int, self._stats()["bytes_sent"])

    def reset_stats(self) -> None:
        """Zero the request and byte counters."""
        _call(f"http://127.0.0.1:{self.port}{CONTROL}reset", "POST", {})

    def stop(self) -> None:
        """End the server process."""
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()  # the server exits when its stdin closes
            wait_or_kill(self.proc)
            self.proc = None

    def __enter__(self) -> RangeServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _main(argv: list[str] | None = None) -> None:
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


if __name__ == "__main__":
    _main()
