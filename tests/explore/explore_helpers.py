"""Helpers of the explorer tests: web-mercator tile and pixel arithmetic, the server in its own process."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
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


class ServerProcess:
    """``senclip explore ARGS --port 0 --no-browser`` in its own process; ``url`` once it listens."""

    def __init__(self, *args: str, startup_s: float = 180) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "senclip.cli", "explore", *map(str, args), "--port", "0", "--no-browser"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=startup_s)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"senclip explore printed no URL in {startup_s} s") from None
        found = re.search(r"http://\S+/", first)
        if not found:
            _, err = self.stop()
            raise RuntimeError(f"senclip explore did not start: {first!r} {err}")
        self.url = found.group(0)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> tuple[int, str]:
        """Send ``sig`` (Ctrl-C by default); the exit status and everything written on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err
