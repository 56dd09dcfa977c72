"""The page in a real browser: Playwright driving Debian's Chromium against ``senclip explore``.

The server is the command itself (``senclip explore MAP --composite … --embeddings … --model …
--port 0 --no-browser``) in its own process. In CI (``CI`` set) these tests run or fail; elsewhere
they are skipped when ``/usr/bin/chromium`` is missing (``apt-get install chromium``).
"""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import rasterio
from explore_helpers import ServerProcess, cell_centres_lonlat
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI; .ci/run installs it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); the browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(made):
    s = ServerProcess(made.map, "--composite", made.scene, "--probabilities", made.probs,
                      "--embeddings", made.tiles, "--model", "senclip-tiny-vit", "--pretrained", made.weights)
    yield s
    status, err = s.stop(signal.SIGTERM)  # test_command.py stops its server with Ctrl-C
    assert status == 0 and err.strip().endswith("senclip explore: stopped"), err


class Page:
    """A fresh page at the explorer, with its console errors and every URL it requested."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1100, "height": 700}, device_scale_factor=1)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", lambda r: r.status < 400 or self.errors.append(f"{r.status}: {r.url}"))
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=true]", state="attached")
        self.settle()

    def settle(self) -> None:
        """Wait until the network is idle and Leaflet has drawn every tile it asked for (or the tile
        failed: Leaflet marks only loaded tiles, and a failure is then reported by :meth:`check_clean`)."""
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('img.leaflet-tile')].every(i =>"
            " i.classList.contains('leaflet-tile-loaded') || (i.complete && i.naturalWidth === 0))")

    def point_of(self, lon: float, lat: float) -> tuple[float, float]:
        """Where a WGS84 point is drawn, in pixels of the map element."""
        return tuple(self.page.evaluate(
            "([lat, lon]) => { const p = window.senclip.map.latLngToContainerPoint([lat, lon]);"
            " return [p.x, p.y]; }", [lat, lon]))

    def check_clean(self) -> None:
        assert self.errors == []
        hosts = {urlsplit(u).hostname for u in self.requests if not u.startswith("data:")}
        assert hosts == {"127.0.0.1"}, hosts

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, server):
    p = Page(browser, server.url)
    yield p
    p.close()


def test_page_loads_with_no_console_error_and_nothing_from_elsewhere(page):
    page.check_clean()
    tiles = [u for u in page.requests if "/tiles/classes/" in u]
    assert tiles and not [u for u in page.requests if "/tiles/composite/" in u]  # class map on top, alone
    assert page.page.title() == "senclip explore: map.tif"


def test_legend_lists_the_cogs_class_names_and_colours(page, made):
    with rasterio.open(made.map) as ds:
        names, table = json.loads(ds.tags()["CLASSES"]), ds.colormap(1)
    rows = page.page.eval_on_selector_all(
        "#legend-table tbody tr",
        "rows => rows.map(r => [r.querySelector('.name').textContent,"
        " getComputedStyle(r.querySelector('.swatch')).backgroundColor])")
    assert [r[0] for r in rows] == names
    assert [r[1] for r in rows] == ["rgb({}, {}, {})".format(*table[v][:3]) for v in range(len(names))]
    page.check_clean()


def test_screenshot_shows_the_class_colours(page, made):
    lon, lat, values = cell_centres_lonlat(made.map)
    with rasterio.open(made.map) as ds:
        table = ds.colormap(1)
    shot = np.asarray(Image.open(io.BytesIO(page.page.locator("#map").screenshot())).convert("RGB"))
    for lo, la, v in zip(lon, lat, values, strict=True):
        x, y = page.point_of(lo, la)
        got = shot[round(y), round(x)].astype(int)
        assert np.abs(got - np.array(table[v][:3])).max() <= 2, (v, got, table[v])
    page.check_clean()


def test_text_query_top_tile_is_senclip_searchs(page, made, tmp_path, capsys):
    from senclip.cli import main

    for phrase in ("River", "Forest"):
        assert main(["search", str(made.tiles), phrase, "--out", str(tmp_path / f"{phrase}.tif"), "--no-png",
                     "--no-progress"]) == 0
        expected = json.loads(capsys.readouterr().out)["best_tile"]
        page.page.fill("#query", phrase)
        page.page.click("#search-form button")
        page.page.wait_for_function("q => document.querySelector('#search-result').dataset.query === q",
                                    arg=phrase)
        page.settle()
        best = page.page.eval_on_selector("#best-tile", "e => [Number(e.dataset.row), Number(e.dataset.col)]")
        assert best == expected, phrase
        assert any("/tiles/search/" in u and f"q={phrase}" in u for u in page.requests)
        href = page.page.eval_on_selector("#download-tif", "a => a.href")  # absolute
        assert page.page.request.get(href).headers["content-type"] == "image/tiff"
        assert f"q={phrase}" in page.page.evaluate("location.hash")
    page.check_clean()


def test_click_shows_the_class_rasterio_reads_there(page, made):
    with rasterio.open(made.map) as ds:
        data = ds.read(1)
    lon, lat, _ = cell_centres_lonlat(made.map)
    for cell in (6, 9):  # cells (1, 2) and (2, 1) of the 4x4 map
        x, y = page.point_of(lon[cell], lat[cell])
        page.page.locator("#map").click(position={"x": x, "y": y})
        where = f"row {cell // 4}, col {cell % 4}"
        page.page.wait_for_function("w => document.querySelector('#point-info').textContent.includes(w)",
                                    arg=where)
        value = int(page.page.get_attribute("#point-class", "data-value"))
        assert value == data[divmod(cell, 4)]
        assert page.page.locator(".probability").count() == 3
        assert made.classes[value] in page.page.inner_text("#point-class")
    page.check_clean()


def test_a_class_map_alone(browser, made):
    """`senclip explore map.tif` with nothing else: the other layers' controls stay hidden, clicks work."""
    from senclip.explore import Explorer, resolve_files
    from senclip.explore.app import LOOPBACK_HOSTS, create_app
    from senclip.explore.server import ServerThread

    with ServerThread(create_app(Explorer(resolve_files(made.map)), LOOPBACK_HOSTS)) as server:
        page = Page(browser, server.url)
        try:
            for hidden in ("#search", "#layer-composite", "#layer-probability", "#layer-search"):
                assert page.page.locator(hidden).is_hidden(), hidden
            lon, lat, values = cell_centres_lonlat(made.map)
            x, y = page.point_of(lon[0], lat[0])
            page.page.locator("#map").click(position={"x": x, "y": y})
            page.page.wait_for_selector("#point-class")
            assert int(page.page.get_attribute("#point-class", "data-value")) == values[0]
            assert page.page.locator(".probability").count() == 0
            page.page.locator("#map").click(position={"x": 5, "y": 5})  # off the map: said, not asked
            page.page.wait_for_function("() => document.querySelector('#point-info').textContent"
                                        " === 'outside the map'")
            page.check_clean()
        finally:
            page.close()


def test_layers_of_different_extents_and_the_months_of_a_composite(browser, made, tmp_path):
    """A monthly composite over the class map's top-left quarter only: switched on, it asks for no tile
    off its own bounds (no 404, no console error); its month list opens on the clearest month and a
    change of month asks for that month's tiles."""
    from explore_helpers import monthly_composite

    from senclip.explore import Explorer, resolve_files
    from senclip.explore.app import LOOPBACK_HOSTS, create_app
    from senclip.explore.server import ServerThread

    quarter = monthly_composite(tmp_path / "monthly.tif", 128, ["B02", "B03", "B04"], clear_month=5)
    explorer = Explorer(resolve_files(made.map, composite=quarter))
    with ServerThread(create_app(explorer, LOOPBACK_HOSTS)) as server:
        page = Page(browser, server.url)
        try:
            page.page.check("#show-composite")
            page.settle()
            composite = [u for u in page.requests if "/tiles/composite/" in u]
            assert composite and all("month=5" in u for u in composite)
            assert page.page.locator("#composite-month option").count() == 12
            assert page.page.input_value("#composite-month") == "5"
            page.page.select_option("#composite-month", "2")
            page.settle()
            assert any("month=2" in u for u in page.requests if "/tiles/composite/" in u)
            page.check_clean()
        finally:
            page.close()
