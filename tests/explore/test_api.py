"""Every endpoint over HTTP (Starlette's test client): answers, bad requests, and the files it reads."""

from __future__ import annotations

import builtins
import json
import os

import httpx
import pytest
import rasterio
from explore_helpers import cell_centres_lonlat, tile_of

Z = 15


@pytest.fixture(scope="module")
def spot(made):
    """A point inside the map, and the web-mercator tile holding it."""
    lon, lat, _ = cell_centres_lonlat(made.map)
    x, y, *_ = tile_of(lon[5], lat[5], Z)
    return {"lon": float(lon[5]), "lat": float(lat[5]), "tile": f"{Z}/{x}/{y}"}


def endpoints(spot) -> list[tuple[str, str]]:
    """``(url, content type)`` of one good request to every endpoint."""
    t = spot["tile"]
    return [
        ("/", "text/html"),
        ("/static/explore.js", "text/javascript"),
        ("/static/explore.css", "text/css"),
        ("/static/vendor/leaflet/leaflet.js", "text/javascript"),
        ("/static/vendor/leaflet/leaflet.css", "text/css"),
        ("/static/vendor/leaflet/LICENSE", "text/plain"),
        ("/api/info", "application/json"),
        ("/api/legend", "application/json"),
        (f"/api/point?lon={spot['lon']}&lat={spot['lat']}", "application/json"),
        ("/api/search?q=River", "application/json"),
        ("/api/search.tif?q=River", "image/tiff"),
        ("/api/search.geojson?q=River&threshold=0", "application/geo+json"),
        (f"/tiles/classes/{t}.png", "image/png"),
        (f"/tiles/composite/{t}.png", "image/png"),
        (f"/tiles/composite/{t}.png?min=10&max=200", "image/png"),
        (f"/tiles/composite/{t}.png?month=1", "image/png"),
        (f"/tiles/probability/{t}.png?class=2", "image/png"),
        (f"/tiles/search/{t}.png?q=River&threshold=0.01", "image/png"),
    ]


def test_every_endpoint_answers(client, spot):
    for url, kind in endpoints(spot):
        r = client.get(url)
        assert r.status_code == 200, (url, r.text)
        assert r.headers["content-type"].startswith(kind), url
        assert "default-src 'self'" in r.headers["content-security-policy"]
    info = client.get("/api/info").json()
    assert info["layers"]["search"]["max_query_chars"] == 300 and info["basemap"] is None
    assert client.get(f"/tiles/classes/{spot['tile']}.png").content[:4] == b"\x89PNG"
    assert client.get("/api/search.tif?q=River").headers["content-disposition"].startswith("attachment")
    assert client.get("/static/vendor/leaflet/LICENSE").text.startswith("BSD 2-Clause License")
    # no source-map comment: the .map is not vendored, and developer tools would ask for it (a 404)
    assert "sourceMappingURL" not in client.get("/static/vendor/leaflet/leaflet.js").text


BAD = [  # url (tile as {t}), status, words of the error
    ("/tiles/nope/{t}.png", 404, "unknown layer"),
    ("/tiles/classes/15/0/0.png", 404, "outside the map"),
    ("/tiles/classes/a/1/1.png", 400, "z: "),
    ("/tiles/classes/15/1.5/3.png", 400, "x: "),
    ("/tiles/classes/15/-1/3.png", 400, "does not exist"),
    ("/tiles/classes/3/8/1.png", 400, "does not exist"),
    ("/tiles/classes/25/0/0.png", 400, "zoom 25"),
    ("/tiles/classes/{t}.jpg", 404, "no such page"),
    ("/tiles/classes/15/3.png", 404, "no such page"),
    ("/tiles/probability/{t}.png?class=10", 404, "class 10"),
    ("/tiles/probability/{t}.png?class=forest", 400, "class: "),
    ("/tiles/composite/{t}.png?min=5&max=1", 400, "min < max"),
    ("/tiles/composite/{t}.png?min=nan&max=1", 400, "min < max"),
    ("/tiles/composite/{t}.png?month=2", 404, "month 2 is not in the composite"),
    ("/tiles/composite/{t}.png?month=July", 400, "month: "),
    ("/tiles/search/{t}.png", 422, "empty search query"),
    ("/tiles/search/{t}.png?q=River&threshold=inf", 400, "threshold"),
    ("/api/search?q=", 422, "empty search query"),
    ("/api/search?q=%20%20", 422, "empty search query"),
    ("/api/search?q=" + "x" * 301, 422, "limit is 300"),
    ("/api/search.tif?q=", 422, "empty search query"),
    ("/api/search.geojson?q=" + "x" * 301, 422, "limit is 300"),
    ("/api/search.geojson?q=River&threshold=x", 400, "threshold: "),
    ("/api/point?lon=abc&lat=1", 400, "lon: "),
    ("/api/point?lon=1", 400, "lat: "),
    ("/api/point?lon=500&lat=1", 400, "not a longitude"),
    ("/api/point?lon=0&lat=0", 404, "outside the map"),
    ("/api/nothing", 404, "no such page"),
]


@pytest.mark.parametrize(("url", "status", "words"), BAD, ids=[b[0][:48] for b in BAD])
def test_bad_requests_get_their_status_and_a_json_error(client, spot, url, status, words):
    r = client.get(url.format(t=spot["tile"]))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == status and words in body["error"], body


def test_a_layer_whose_file_was_not_given(made, spot):
    from fastapi.testclient import TestClient

    from senclip.explore import Explorer, resolve_files
    from senclip.explore.app import create_app

    with TestClient(create_app(Explorer(resolve_files(made.map)))) as c:
        assert c.get("/api/info").json()["layers"].keys() == {"classes"}
        for url, flag in [(f"/tiles/composite/{spot['tile']}.png", "--composite"),
                          (f"/tiles/probability/{spot['tile']}.png", "--probabilities"),
                          ("/api/search?q=River", "--embeddings")]:
            r = c.get(url)
            assert r.status_code == 404 and flag in r.json()["error"], url
        p = c.get(f"/api/point?lon={spot['lon']}&lat={spot['lat']}").json()
        assert "probabilities" not in p and p["class"] is not None


def test_wrong_method_and_foreign_host(client):
    r = client.post("/api/info")
    assert r.status_code == 405 and r.json()["status"] == 405
    r = client.get("/api/info", headers={"host": "attacker.example:8765"})
    assert r.status_code == 400 and "127.0.0.1" in r.json()["error"]
    assert client.get("/api/info", headers={"host": "localhost:8765"}).status_code == 200
    assert client.get("/api/info", headers={"host": "[::1]:8765"}).status_code == 200


def test_the_host_check_follows_the_bound_address():
    """127.0.0.2 (or any bound address) is answered by its own name; off loopback, this machine's names;
    on 0.0.0.0, any IP address too (a request through a DNS name that is not the machine's is refused)."""
    import socket

    from senclip.explore.app import Hosts

    other = Hosts.bound_to("127.0.0.2")
    assert other.allows("127.0.0.2:8765") and other.allows("localhost:1") and other.allows("[::1]:2")
    assert not other.allows("attacker.example:8765") and not other.allows("127.0.0.3:8765")
    lan = Hosts.bound_to("192.168.7.9")
    assert lan.allows("192.168.7.9:80") and lan.allows(socket.gethostname()) and not lan.allows("10.0.0.1")
    anywhere = Hosts.bound_to("0.0.0.0")
    assert anywhere.allows("192.168.7.9:8765") and anywhere.allows("[fe80::1]:8765")
    assert anywhere.allows("127.0.0.1:8765") and not anywhere.allows("attacker.example:8765")
    assert not anywhere.allows("")


def test_a_server_on_another_loopback_address_answers(made):
    """``--host 127.0.0.2`` answered 400 to every request (the Host check knew 127.0.0.1 only)."""
    from senclip.explore import Explorer, resolve_files
    from senclip.explore.app import Hosts, create_app
    from senclip.explore.server import ServerThread

    explorer = Explorer(resolve_files(made.map))
    with ServerThread(create_app(explorer, Hosts.bound_to("127.0.0.2")), host="127.0.0.2") as server:
        assert server.url.startswith("http://127.0.0.2:")
        assert httpx.get(server.url + "api/info", timeout=30).json()["title"] == "map.tif"
        r = httpx.get(server.url + "api/info", headers={"host": "attacker.example"}, timeout=30)
        assert r.status_code == 400


TRAVERSALS = [
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/vendor/../../app.py",
    "/static/..%5c..%5capp.py",
    "/static/__init__.py",
    "/static/../__init__.py",
    "/static/index.html%00.py",
    "/tiles/..%2F..%2F..%2Fetc%2Fpasswd/15/1/1.png",
    "/tiles/%2Fetc%2Fpasswd/15/1/1.png",
    "/api/point?lon=1&lat=1&path=/etc/passwd",
    "/api/search?q=../../../../etc/passwd",
    "/api/search.tif?q=/etc/passwd",
    "/api/search.geojson?q=file:///etc/passwd",
    "/tiles/search/{t}.png?q=/etc/passwd",
    "/tiles/composite/{t}.png?min=0&max=1&file=/etc/passwd",
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
]


def test_no_request_reads_a_file_that_was_not_given(client, made, spot, monkeypatch):
    """Every file opened while answering requests (good ones, bad ones, traversal attempts) is one
    named when the explorer was made; static files come from memory; /etc/passwd never leaks."""
    given = {str(p.resolve()) for p in (made.map, made.scene, made.probs)}
    opened = []

    def spy(real):
        def wrapper(path, *args, **kwargs):
            opened.append(os.fspath(path) if isinstance(path, str | os.PathLike) else repr(path))
            return real(path, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(builtins, "open", spy(builtins.open))
    monkeypatch.setattr(os, "open", spy(os.open))
    monkeypatch.setattr(rasterio, "open", spy(rasterio.open))
    urls = [u for u, _ in endpoints(spot)] + [u.format(t=spot["tile"]) for u, *_ in BAD] + \
        [u.format(t=spot["tile"]) for u in TRAVERSALS]
    for url in urls:
        r = client.get(url)
        assert b"root:" not in r.content, url
        if url in TRAVERSALS and "?" not in url:
            assert r.status_code == 404, (url, r.status_code)
    files = {str(os.path.realpath(p)) for p in opened if not p.startswith("/vsimem/")}
    assert files <= given, files - given
    assert {str(os.path.realpath(made.map)), str(os.path.realpath(made.scene))} <= files  # the spy saw reads


def test_content_policy_names_the_basemap_origin_only(made):
    from fastapi.testclient import TestClient

    from senclip.errors import SenclipError
    from senclip.explore import Explorer, resolve_files
    from senclip.explore.app import create_app

    template = "https://{s}.tile.example.org/{z}/{x}/{y}.png"
    with TestClient(create_app(Explorer(resolve_files(made.map), basemap=template))) as c:
        r = c.get("/api/info")
        assert r.json()["basemap"] == template
        assert "img-src 'self' data: https://*.tile.example.org;" in r.headers["content-security-policy"]
        assert "connect-src 'self';" in r.headers["content-security-policy"]
    for bad in ("file:///etc/{z}/{x}/{y}", "https://tiles.example.org/a.png", "https://x y/{z}/{x}/{y}"):
        with pytest.raises(SenclipError):
            Explorer(resolve_files(made.map), basemap=bad)


def test_geojson_download_is_valid_geojson(client):
    r = client.get("/api/search.geojson?q=River&threshold=0")
    body = json.loads(r.content)
    assert body["type"] == "FeatureCollection" and body["query"] == "River"
    ring = body["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5 and all(-180 <= p[0] <= 180 for p in ring)
