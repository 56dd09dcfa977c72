"""A small Sentinel-2 L2A STAC collection built from BigEarthNet patches, for tests and benchmarks.

:func:`build_sample_catalog` turns BigEarthNet-S2 patch folders (one GeoTIFF
per band, true UTM CRS) into Cloud-Optimised GeoTIFF assets plus a synthetic
20 m SCL band, and writes ``collection.json`` and ``items.json`` (a STAC
FeatureCollection) whose footprints are the patches' true extents. Items are
described by :class:`SceneSpec`: which patch, date, scene cloud cover, SCL
pattern and an offset added to the band values (so two scenes of one patch
differ). :class:`StacServer` serves them with ``rustac serve`` (a real STAC
API from PyPI, in-memory backend) on a free loopback port; the assets are
served by :class:`senclip.testing.RangeServerProcess`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from senclip.testing.servers import wait_or_kill

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B8A", "B11")
# Earth Search v1's asset keys, mimicked by ``common_names`` scenes; written out, not imported from
# senclip.acquire.stac: fixtures sit below the code they test (and check its table independently)
EARTH_SEARCH_KEYS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B05": "rededge1",
                     "B8A": "nir08", "B11": "swir16", "SCL": "scl"}
SCL_PATTERNS = ("clear", "cloud-centre", "cloud-all", "none")


@dataclass(frozen=True)
class SceneSpec:
    """One STAC item of the sample collection.

    Attributes:
        item_id: the item id (also its asset folder).
        patch: BigEarthNet patch folder name.
        datetime: ISO acquisition time (UTC).
        cloud_cover: ``eo:cloud_cover`` of the item.
        scl: ``clear`` (all class 4), ``cloud-centre`` (class 9 in the middle
            half of the patch), ``cloud-all`` (class 8 everywhere) or ``none``
            (no SCL asset).
        offset: added to every band value (distinguishes scenes of one patch).
        common_names: name band assets like Earth Search (``red``) instead of ``B04``.
    """

    item_id: str
    patch: str
    datetime: str
    cloud_cover: float
    scl: str = "clear"
    offset: int = 0
    common_names: bool = False


def _band_file(root: Path, patch: str, band: str) -> Path:
    return root / patch / f"{patch}_{band}.tif"


def _tile(a: np.ndarray, factor: int) -> np.ndarray:
    """Mirror-tile a (H, W) array ``factor`` times each way (a larger, seamless scene)."""
    if factor == 1:
        return a
    row = np.concatenate([a if i % 2 == 0 else a[:, ::-1] for i in range(factor)], axis=1)
    return np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(factor)], axis=0)


def _write_cog(path: Path, data: np.ndarray, crs, transform, blocksize: int) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "blocksize": blocksize,
        "overviews": "NONE",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _scl(pattern: str, shape: tuple[int, int]) -> np.ndarray:
    scl = np.full(shape, 4, dtype=np.uint8)  # 4 = vegetation
    if pattern == "cloud-centre":
        h, w = shape
        scl[h // 3 : h - h // 3, w // 3 : w - w // 3] = 9
    elif pattern == "cloud-all":
        scl[:] = 8
    return scl


def _footprint(crs, bounds) -> dict:
    from rasterio.warp import transform as warp

    x0, y0, x1, y1 = bounds
    xs, ys = warp(crs, "EPSG:4326", [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
    return {"type": "Polygon", "coordinates": [[[x, y] for x, y in zip(xs, ys, strict=True)]]}


def build_scene(
    root: Path, out: Path, scene: SceneSpec, base_url: str, tile: int = 1, blocksize: int = 32
) -> dict:
    """Write the COG assets of one scene under ``out/<item_id>/`` and return its STAC item dict."""
    import rasterio
    from affine import Affine
    from rasterio.transform import array_bounds

    assets, epsg, footprint, bbox = {}, None, None, None
    for band in (*BANDS_10M, *BANDS_20M):
        with rasterio.open(_band_file(root, scene.patch, band)) as src:
            data = _tile(src.read(1), tile)
            crs, t = src.crs, src.transform
        data = (data.astype(np.int64) + scene.offset).clip(0, 65535).astype(np.uint16)
        transform = Affine(t.a, 0.0, t.c, 0.0, t.e, t.f)
        _write_cog(out / scene.item_id / f"{band}.tif", data, crs, transform, blocksize)
        key = EARTH_SEARCH_KEYS[band] if scene.common_names else band
        assets[key] = {
            "href": f"{base_url}/{scene.item_id}/{band}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [{"name": band}],
            "gsd": abs(t.a),
        }
        if band == BANDS_10M[0]:
            epsg = crs.to_epsg()
            bounds = array_bounds(data.shape[0], data.shape[1], transform)
            footprint = _footprint(crs, bounds)
            xs = [p[0] for p in footprint["coordinates"][0]]
            ys = [p[1] for p in footprint["coordinates"][0]]
            bbox = [min(xs), min(ys), max(xs), max(ys)]
            scl_shape = (data.shape[0] // 2, data.shape[1] // 2)
            scl_transform = Affine(t.a * 2, 0.0, t.c, 0.0, t.e * 2, t.f)
    if scene.scl != "none":
        _write_cog(
            out / scene.item_id / "SCL.tif",
            _scl(scene.scl, scl_shape),
            f"EPSG:{epsg}",
            scl_transform,
            blocksize,
        )
        assets[EARTH_SEARCH_KEYS["SCL"] if scene.common_names else "SCL"] = {
            "href": f"{base_url}/{scene.item_id}/SCL.tif",
            "type": "image/tiff",
            "roles": ["data"],
        }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": scene.item_id,
        "collection": "sentinel-2-l2a",
        "geometry": footprint,
        "bbox": bbox,
        "links": [],
        "assets": assets,
        "stac_extensions": [],
        "properties": {
            "datetime": scene.datetime,
            "eo:cloud_cover": scene.cloud_cover,
            "proj:epsg": epsg,
            "platform": "sentinel-2b" if scene.patch.startswith("S2B") else "sentinel-2a",
        },
    }


def build_sample_catalog(
    root: str | Path,
    out: str | Path,
    scenes: list[SceneSpec],
    base_url: str,
    tile: int = 1,
    blocksize: int = 32,
    collection: str = "sentinel-2-l2a",
) -> dict[str, Path]:
    """Build COG assets and STAC JSON for ``scenes`` under ``out``.

    Args:
        root: BigEarthNet-S2 example folder (patch folders).
        out: where assets (``out/assets/<item>/<band>.tif``) and JSON go.
        scenes: the items to make.
        base_url: URL at which ``out/assets`` will be served.
        tile: mirror-tile each patch ``tile`` x ``tile`` times (bigger scenes for benchmarks).
        blocksize: COG tile size in pixels.

    Returns:
        ``{"collection": path, "items": path, "assets": folder}``.
    """
    out = Path(out)
    assets = out / "assets"
    items = [build_scene(Path(root), assets, s, base_url.rstrip("/"), tile, blocksize) for s in scenes]
    for item in items:
        item["collection"] = collection
    coll = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection,
        "description": "Sentinel-2 L2A sample scenes made from BigEarthNet patches",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[None, None]]},
        },
        "links": [],
    }
    paths = {"collection": out / "collection.json", "items": out / "items.json", "assets": assets}
    paths["collection"].write_text(json.dumps(coll), encoding="utf-8")
    paths["items"].write_text(json.dumps({"type": "FeatureCollection", "features": items}), encoding="utf-8")
    return paths


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rustac_executable() -> str:
    """The ``rustac`` console script of this Python environment (from ``pip install rustac``)."""
    import shutil
    import sysconfig

    exe = Path(sysconfig.get_path("scripts")) / ("rustac.exe" if os.name == "nt" else "rustac")
    if exe.is_file():
        return str(exe)
    found = shutil.which("rustac")
    if found is None:
        raise RuntimeError("the rustac command is missing: pip install rustac (or pip install -e '.[test]')")
    return found


class StacServer:
    """``rustac serve`` (in-memory STAC API) on a free loopback port, as a subprocess.

    Args:
        hrefs: collection and item files to load.
        startup: seconds to wait for the landing page.
    """

    def __init__(self, hrefs: list[str | Path], startup: float = 30.0) -> None:
        self.hrefs = [str(h) for h in hrefs]
        self.startup = startup
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StacServer:
        """Start the server and wait until it answers."""
        import requests

        self.port = free_port()
        self.proc = subprocess.Popen(
            [rustac_executable(), "serve", "--addr", f"127.0.0.1:{self.port}", *self.hrefs],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
        )
        deadline = time.monotonic() + self.startup
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"rustac serve exited with {self.proc.returncode}: {err[-500:]}")
            try:
                if requests.get(self.url + "/", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"rustac serve did not answer on {self.url} within {self.startup}s")

    def stop(self) -> None:
        """Terminate the server process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            wait_or_kill(self.proc)
        self.proc = None

    def __enter__(self) -> StacServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
