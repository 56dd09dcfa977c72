"""A loopback STAC API (rustac serve) over the COGs of senclip.testing.areas, for the area tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from senclip.testing import RangeServerProcess, StacServer
from senclip.testing.areas import TEST_AREA, build_area_catalogue

BBOX = ",".join(f"{v:g}" for v in TEST_AREA.bbox)


@dataclass
class AreaStac:
    url: str
    root: Path
    cogs: RangeServerProcess

    @property
    def assets(self) -> Path:
        return self.root / "assets"


@pytest.fixture(scope="session")
def area_stac(tmp_path_factory) -> AreaStac:
    root = tmp_path_factory.mktemp("area_stac")
    (root / "assets").mkdir()
    cogs = RangeServerProcess(root / "assets").start()
    files = build_area_catalogue(root, cogs.url())
    stac = StacServer(files).start()
    yield AreaStac(stac.url, root, cogs)
    stac.stop()
    cogs.stop()


@pytest.fixture
def cogs(area_stac):
    """The COG server with faults cleared before and after the test."""
    area_stac.cogs.faults.clear()
    yield area_stac.cogs
    area_stac.cogs.faults.clear()


def composite_args(stac: AreaStac, out, catalogue: str = "earth-search", *extra) -> list[str]:
    return [
        "composite",
        "--bbox",
        BBOX,
        "--time",
        "2022-01-01/2022-03-31",
        "--stac-url",
        stac.url,
        "--collection",
        catalogue,
        "--out",
        str(out),
        "--no-progress",
        "--backoff",
        "0.01",
        *extra,
    ]
