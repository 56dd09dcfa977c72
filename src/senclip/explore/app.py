"""The web layer: a FastAPI app over one :class:`~senclip.explore.explorer.Explorer`.

Each route parses typed parameters and returns what one Explorer method gives; nothing else happens
here. Errors are JSON, ``{"error": message, "status": status}``: the explorer's own (400, 404, 422,
see :mod:`senclip.explore.errors`), parameters that do not parse (400), routes that do not exist
(404), anything unexpected (500, logged). The page and its JavaScript are served from memory: the
files under ``static/`` are read once when the app is made, and a request path is only ever a key
of that table. Every response carries a Content-Security-Policy that lets the page load from this
server alone (plus the ``--basemap`` origin, if one was given). A request must name this server in
its Host header (:class:`Hosts`: a guard against DNS rebinding, where a web page elsewhere reads
the map through a name of its own that resolves to this machine).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import mimetypes
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from senclip.errors import SenclipError
from senclip.explore.errors import ExploreError, NotFound
from senclip.explore.explorer import Explorer
from senclip.explore.server import is_loopback

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
WILDCARDS = ("0.0.0.0", "::", "")
log = logging.getLogger("senclip.explore")


@dataclass(frozen=True)
class Hosts:
    """The Host headers a server answers: names (without port), and, on a wildcard address, any IP
    address written as one (DNS rebinding needs a name; a page loaded from an address is that
    address's own page)."""

    names: frozenset[str]
    any_address: bool = False

    @classmethod
    def bound_to(cls, host: str) -> Hosts:
        """The Host headers of a server listening on ``host``: the loopback names, ``host`` itself,
        and off loopback this machine's names; on 0.0.0.0 or :: also any IP address."""
        names = {*LOOPBACK_HOSTS, host, f"[{host}]" if ":" in host else host}
        if not is_loopback(host):
            names |= {socket.gethostname(), socket.getfqdn()}
        return cls(frozenset(n.lower() for n in names if n), any_address=host in WILDCARDS)

    def allows(self, header: str) -> bool:
        name = _hostname(header).lower()
        if name in self.names:
            return True
        if not self.any_address:
            return False
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return ", ".join(sorted(self.names)) + (" or an IP address" if self.any_address else "")


def static_files() -> dict[str, tuple[bytes, str]]:
    """``relative name -> (content, media type)`` of every file under ``senclip/explore/static``."""
    files = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
            else:
                kind = mimetypes.guess_type(child.name)[0] or "text/plain"
                files[name] = (child.read_bytes(), kind + ("; charset=utf-8" if kind.startswith("text/") or
                                                            kind.endswith("javascript") else ""))

    walk(resources.files("senclip.explore").joinpath("static"), "")
    return files


def content_policy(basemap_origin: str | None) -> str:
    images = "'self' data:" + (f" {basemap_origin}" if basemap_origin else "")
    return ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            f"img-src {images}; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


def _hostname(header: str) -> str:
    """The host of a Host header without its port (``[::1]:8000`` -> ``[::1]``)."""
    return header[:header.find("]") + 1] if header.startswith("[") else header.split(":", 1)[0]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')} (got {e.get('input')!r})")
    return "; ".join(parts)


def create_app(explorer: Explorer, allowed_hosts: Hosts | Iterable[str] | None = None) -> FastAPI:
    """The app serving ``explorer``; ``allowed_hosts``: the Host headers answered (``None``: any)."""
    app = FastAPI(title="senclip explore", docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts is not None and not isinstance(allowed_hosts, Hosts):
        allowed_hosts = Hosts(frozenset(allowed_hosts))
    _guard(app, allowed_hosts, content_policy(explorer.basemap_origin))
    _errors(app)
    _pages(app, static_files())
    _api(app, explorer)
    return app


def _guard(app: FastAPI, hosts: Hosts | None, policy: str) -> None:
    """Refuse foreign Host headers; add the security headers to every response."""

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if hosts is not None and not hosts.allows(request.headers.get("host", "")):
            response = _error(400, f"this server answers requests for {hosts} only")
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def _errors(app: FastAPI) -> None:
    """Every error as JSON ``{"error", "status"}`` with its status."""

    @app.exception_handler(ExploreError)
    async def explore_error(request: Request, exc: ExploreError):
        return _error(exc.status, str(exc))

    @app.exception_handler(SenclipError)
    async def senclip_error(request: Request, exc: SenclipError):
        return _error(500, str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError):
        return _error(400, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = "no such page or endpoint" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, message)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        log.exception("explore: %s failed", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")


def _pages(app: FastAPI, static: dict[str, tuple[bytes, str]]) -> None:
    """The page and its static files, from memory: a request path is only a key of ``static``."""

    @app.get("/")
    def page() -> Response:
        content, kind = static["index.html"]
        return Response(content, media_type=kind)

    @app.get("/static/{name:path}")
    def static_file(name: str) -> Response:
        if name not in static:
            raise NotFound(f"no static file {name!r}")
        content, kind = static[name]
        return Response(content, media_type=kind)


def _api(app: FastAPI, explorer: Explorer) -> None:
    """The endpoints of docs/explore.md, one Explorer method each."""

    @app.get("/api/info")
    def info() -> dict:
        return explorer.info()

    @app.get("/api/legend")
    def legend() -> dict:
        return explorer.legend()

    @app.get("/api/point")
    def point(lon: float, lat: float) -> dict:
        return explorer.point(lon, lat)

    @app.get("/api/search")
    def search(q: str = "") -> dict:
        return explorer.search_summary(q)

    @app.get("/api/search.tif")
    def search_tif(q: str = "") -> Response:
        return Response(explorer.search_geotiff(q), media_type="image/tiff",
                        headers={"Content-Disposition": 'attachment; filename="senclip-search.tif"'})

    @app.get("/api/search.geojson")
    def search_geojson(q: str = "", threshold: float | None = None) -> Response:
        body = json.dumps(explorer.search_geojson(q, threshold)).encode()
        return Response(body, media_type="application/geo+json",
                        headers={"Content-Disposition": 'attachment; filename="senclip-search.geojson"'})

    @app.get("/tiles/{layer}/{z}/{x}/{y}.png")
    def tile(layer: str, z: int, x: int, y: int, lo: float | None = Query(None, alias="min"),
             hi: float | None = Query(None, alias="max"), cls: int | None = Query(None, alias="class"),
             month: int | None = None, q: str = "", threshold: float | None = None) -> Response:
        png = explorer.tile(layer, z, x, y, lo=lo, hi=hi, index=cls, month=month, query=q,
                            threshold=threshold)
        return Response(png, media_type="image/png")
