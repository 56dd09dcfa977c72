"""Run the explorer's app with uvicorn on a socket bound here (so ``port 0`` gives a known free port).

:func:`serve` binds the socket, prints the page's URL, opens the browser once the server listens
(unless told not to), and returns when the server stops: Ctrl-C or SIGTERM let uvicorn finish the
requests in flight and close, then ``serve`` returns normally.
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
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(app, sock: socket.socket, open_browser: bool = True) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (or SIGTERM); print the URL first."""
    import uvicorn

    url = url_of(sock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=5))
    print(f"senclip explore: {url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        threading.Thread(target=_open_when_ready, args=(server, url), daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled once it has shut down
        pass
    finally:
        sock.close()
    print("senclip explore: stopped", file=sys.stderr, flush=True)


def _open_when_ready(server, url: str) -> None:
    import time
    import webbrowser

    for _ in range(200):
        if server.started:
            webbrowser.open(url)
            return
        time.sleep(0.05)
