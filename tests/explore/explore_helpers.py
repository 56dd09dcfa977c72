"""Helpers of the explorer tests: web-mercator tile and pixel arithmetic, the server in its own process."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading

import numpy as np
import rasterio
from rasterio.warp import transform as transform_coords


def cell_centres_lonlat(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 ``lon``, ``lat`` of every pixel centre of a raster, and the pixel values (band 1)."""
    with rasterio.open(path) as ds:
        rows, cols = np.mgrid[0:ds.height, 0:ds.width]
        xs, ys = rasterio.transform.xy(ds.transform, rows.ravel(), cols.ravel())
        lon, lat = transform_coords(ds.crs, "EPSG:4326", xs, ys)
        return np.array(lon), np.array(lat), ds.read(1).ravel()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, float, float]:
    """The web-mercator tile ``(x, y)`` holding a point, and the point's pixel in that 256-px tile."""
    n = 2**z
    fx = (lon + 180) / 360 * n
    fy = (1 - np.log(np.tan(np.radians(lat)) + 1 / np.cos(np.radians(lat))) / np.pi) / 2 * n
    x, y = int(fx), int(fy)
    return x, y, (fx - x) * 256, (fy - y) * 256


WHEN = {"start": dt.date(2023, 6, 1), "end": dt.date(2023, 8, 31)}
PROVENANCE = {"stac_url": "http://127.0.0.1:1/", "collection": "sentinel-2-l2a", "items": ["S2A_1"],
              "start": "2023-06-01", "end": "2023-08-31", "area": "test", "grid": "EPSG:32632 10 m",
              "baselines": ["05.09"]}


def write_item(tif, item: dict):
    """``item`` as ``<tif without .tif>.item.json``."""
    path = tif.with_name(tif.stem + ".item.json")
    path.write_text(json.dumps(item))
    return path


def composite_item(tif, bands, year=None):
    """The Item the area pipeline writes beside a composite of ``bands`` (monthly: of ``year``)."""
    from senclip.acquire.area import AreaGrid
    from senclip.acquire.composite import CompositeSpec
    from senclip.areas.mosaic import composite_item as item

    with rasterio.open(tif) as ds:
        t = ds.transform
        grid = AreaGrid(ds.crs.to_epsg(), t.c, t.f, ds.width, ds.height, t.a)
    return write_item(tif, item(tif, grid, CompositeSpec(tuple(bands), year=year), PROVENANCE))


def monthly_composite(path, size: int, bands, clear_month: int):
    """A ``size``² monthly composite (12 x bands + CLM, month-major, uint16, nodata 0) and its Item:
    month ``m`` has ``m`` x 100 in every band, CLM flags every pixel but in ``clear_month`` (and half
    of month 3's)."""
    from senclip.testing.rasters import write_raster

    stack = []
    for m in range(1, 13):
        clm = np.full((size, size), 0 if m == clear_month else 1, np.uint16)
        if m == 3:
            clm[: size // 2] = 0
        stack += [np.full((size, size), 100 * m, np.uint16) for _ in bands] + [clm]
    write_raster(path, np.stack(stack), [*bands, "CLM"] * 12, nodata=0)
    composite_item(path, bands, year=2022)
    return path


class ServerProcess:
    """``senclip explore ARGS --port 0 --no-browser`` in its own process; ``url`` once it listens.

    Its stderr goes to a file (a pipe nobody reads would block the server once its buffer is full).
    """

    def __init__(self, *args: str, startup_s: float = 180) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "senclip.cli", "explore", *map(str, args), "--port", "0", "--no-browser"],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            self.first_line = lines.get(timeout=startup_s)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"senclip explore printed no URL in {startup_s} s") from None
        found = re.search(r"http://\S+/", self.first_line)
        if not found:
            _, err = self.stop()
            raise RuntimeError(f"senclip explore did not start: {self.first_line!r} {err}")
        self.url = found.group(0)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> tuple[int, str]:
        """Send ``sig`` (Ctrl-C by default); the exit status and everything written on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        self.stderr.seek(0)
        err = self.stderr.read()
        self.stderr.close()
        return self.proc.returncode, err
