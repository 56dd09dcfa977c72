"""Run the explorer's app with uvicorn on a socket bound here (so ``port 0`` gives a known free port).

:func:`serve` runs the app on a socket :func:`bind` made; once the server listens, it prints the
page's URL and opens the browser (unless told not to), and it returns when the server stops:
Ctrl-C or SIGTERM let uvicorn finish the requests in flight and close, then ``serve`` returns.
"""

from __future__ import annotations

import socket
import sys
import threading

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port`` 0: a free one)."""
    from senclip.errors import SenclipError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on sockets that say they are TCP;
    # with it on, a response written in two parts waits for the browser's delayed ACK (+40 ms each)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SenclipError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    return sock


def url_of(sock: socket.socket) -> str:
    """The page's URL for a browser on this machine (on 0.0.0.0 or ::, the loopback address's)."""
    host, port = sock.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _where(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        return f"listening on {host}:{port}, every address of this machine; Ctrl-C to stop"
    return "Ctrl-C to stop"


def serve(app, sock: socket.socket, open_browser: bool = True) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (or SIGTERM); print the URL first."""
    import signal

    url = url_of(sock)
    server = _uvicorn(app)
    threading.Thread(target=_announce, args=(server, url, _where(sock), open_browser), daemon=True).start()
    # uvicorn handles Ctrl-C and SIGTERM itself (finishing the requests in flight), then sends the
    # signal again to the handler that was there before: Ctrl-C's KeyboardInterrupt is caught below,
    # and SIGTERM finds a handler that lets serve() return instead of the default that kills.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    print("senclip explore: stopped", file=sys.stderr, flush=True)


def _uvicorn(app):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                         timeout_graceful_shutdown=5))


class ServerThread:
    """An app served by uvicorn in a background thread (a notebook, a test, a benchmark).

    ``with ServerThread(app) as s: ... s.url ...``; the socket is bound as :func:`serve` binds it.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import time

        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = _uvicorn(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _announce(server, url: str, where: str, open_browser: bool) -> None:
    """Print the URL (and open it) once the server listens and handles Ctrl-C and SIGTERM."""
    import time
    import webbrowser

    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.02)
    print(f"senclip explore: {url} ({where})", flush=True)
    if open_browser:
        webbrowser.open(url)
