"""Loopback STAC API (rustac serve) + Range-capable COG server over BigEarthNet-derived scenes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from senclip.testing import RangeServerProcess, SceneSpec, StacServer, build_sample_catalog

P1 = "S2A_MSIL2A_20170613T101031_87_48"  # UTM 33N
P2 = "S2A_MSIL2A_20170617T113321_36_85"  # UTM 29N
P3 = "S2A_MSIL2A_20170617T113321_4_55"  # UTM 29N
P4 = "S2A_MSIL2A_20171221T112501_56_35"  # UTM 29N
P5 = "S2B_MSIL2A_20170924T93020_69_24"  # UTM 35N

SCENES = [
    # P1: three scenes. A: scene cloudy (60 %) but clear over the point; B: 5 % scene cloud but a cloud
    # over the point; C: cloud-free but outside the ±30 day window of the survey date (2017-06-20).
    SceneSpec("P1_A_20170613", P1, "2017-06-13T10:10:31Z", 60.0, "clear", 0),
    SceneSpec("P1_B_20170618", P1, "2017-06-18T10:10:31Z", 5.0, "cloud-centre", 1000),
    SceneSpec("P1_C_20170801", P1, "2017-08-01T10:10:31Z", 0.0, "clear", 2000),
    SceneSpec("P2_20170617", P2, "2017-06-17T11:33:21Z", 10.0, "clear", 0),
    SceneSpec("P3_20170617", P3, "2017-06-17T11:33:21Z", 3.0, "cloud-all", 0),  # no clear scene
    SceneSpec("P4_20171221", P4, "2017-12-21T11:25:01Z", 15.0, "none", 0),  # no SCL asset
    SceneSpec("P5_20170924", P5, "2017-09-24T09:30:20Z", 1.0, "clear", 0, common_names=True),
]

# (point id, patch, pixel row, pixel col of the point in the patch's 10 m grid, survey date)
POINTS = [
    ("pt1", P1, 60, 61, "2017-06-20"),
    ("pt2", P2, 50, 70, "2017-06-25"),
    ("pt3", P3, 60, 60, "2017-06-17"),
    ("pt4", P4, 64, 57, "2017-12-30"),
    ("pt5", P5, 58, 66, "2017-09-20"),
]


@dataclass
class Loopback:
    cogs: RangeServerProcess
    stac: StacServer
    root: Path
    assets: Path
    bigearthnet: Path

    @property
    def url(self) -> str:
        return self.stac.url


def point_lonlat(bigearthnet: Path, patch: str, row: int, col: int) -> tuple[float, float]:
    """WGS84 lon/lat of the centre of pixel (row, col) of a patch's 10 m grid."""
    import rasterio
    from rasterio.warp import transform

    with rasterio.open(bigearthnet / patch / f"{patch}_B02.tif") as src:
        x, y = src.xy(row, col)
        xs, ys = transform(src.crs, "EPSG:4326", [x], [y])
    return xs[0], ys[0]


@pytest.fixture(scope="session")
def loopback(tmp_path_factory, bigearthnet_root) -> Loopback:
    root = tmp_path_factory.mktemp("stac")
    (root / "assets").mkdir()
    cogs = RangeServerProcess(root / "assets").start()
    paths = build_sample_catalog(bigearthnet_root, root, SCENES, cogs.url())
    stac = StacServer([paths["collection"], paths["items"]]).start()
    yield Loopback(cogs, stac, root, paths["assets"], bigearthnet_root)
    stac.stop()
    cogs.stop()


@pytest.fixture(scope="session")
def points_csv(tmp_path_factory, bigearthnet_root) -> Path:
    rows = []
    for pid, patch, r, c, date in POINTS:
        lon, lat = point_lonlat(bigearthnet_root, patch, r, c)
        rows.append({"point_id": pid, "lat": lat, "lon": lon, "date": date, "lc1": f"C{len(rows)}"})
    rows.append({"point_id": "pt_far", "lat": 45.0, "lon": 5.0, "date": "2017-06-20", "lc1": "X"})  # no scene
    path = tmp_path_factory.mktemp("points") / "points.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def cogs(loopback):
    """The COG server with faults cleared and counters reset before and after the test."""
    loopback.cogs.faults.clear()
    loopback.cogs.reset_stats()
    yield loopback.cogs
    loopback.cogs.faults.clear()
