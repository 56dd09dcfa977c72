"""A loopback HTTP server with Range support, dropped connections and a request log."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FileServer(ThreadingHTTPServer):
    """Serves ``files[path] -> bytes``; ``drop[path] = n`` cuts the next transfer after n bytes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.drop: dict[str, int] = {}
        self.log: list[tuple[str, str | None, int]] = []  # (path, Range header, bytes sent)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def requests_for(self, path: str) -> list[tuple[str, str | None, int]]:
        return [r for r in self.log if r[0] == path]


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        data = self.server.files.get(self.path)
        rng = self.headers.get("Range")
        if data is None:
            self.server.log.append((self.path, rng, 0))  # logged before answering, as below
            self.send_error(404)
            return
        start = 0
        if rng:
            m = re.match(r"bytes=(\d+)-$", rng)
            start = int(m.group(1)) if m else 0
            if start >= len(data):
                self.server.log.append((self.path, rng, 0))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = self.server.drop.pop(self.path, None)
        if cut is not None:
            body = body[:cut]
            self.close_connection = True
        # log before answering (here and above): the client can only send its next request, or
        # return, after the answer, so the log is complete and in order although handler threads
        # run concurrently
        self.server.log.append((self.path, rng, len(body)))
        self.wfile.write(body)
        self.wfile.flush()


@pytest.fixture()
def http_server():
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own SENCLIP_CACHE and no user registry."""
    monkeypatch.setenv("SENCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SENCLIP_REGISTRY", raising=False)
    monkeypatch.delenv("SENCLIP_OFFLINE", raising=False)
    monkeypatch.setenv("SENCLIP_DOWNLOAD_TIMEOUT", "5")
