"""Source kind ``stac-area``: an area and a time range in a STAC API, read as a dated series.

A small JSON file names the request::

    {"type": "senclip-stac-area", "stac_url": "https://earth-search.aws.element84.com/v1",
     "collection": "sentinel-2-l2a", "bbox": [11.30, 46.45, 11.45, 46.55],
     "time": "2022-01-01/2022-12-31"}

(``"area": "fields.gpkg"`` instead of ``bbox``, relative to the JSON file; optional ``crs``,
``max_cloud`` (default 80), ``mask_classes``, ``signer``, ``max_items``). Opened through
:func:`senclip.data.sources.open_series` (``senclip map-pixels request.json out.tif``), it is a
:class:`~senclip.data.series.io.SeriesSource` on the area's grid whose time steps are the
acquisition days: each row block is loaded, harmonised, masked and fused by day exactly as a block
of ``senclip composite`` (:mod:`senclip.acquire.composite`), and whoever reads it composites it
(``map-pixels`` by calendar month). Without blocks on disk or a cache: for small areas; the area
commands (``map-pixels --bbox``) are the resumable way.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from senclip.acquire.area import Block, area_grid, block_mask, parse_bbox, read_area
from senclip.acquire.area_items import MAX_ITEMS, CompositeSpec, parse_time, scene_refs, search_area
from senclip.acquire.area_read import check_radiometry, load_scenes
from senclip.acquire.composite import fuse_days, observations
from senclip.acquire.stac import href_signer, open_catalog, resolve_signer
from senclip.data.series.io import S2_BANDS, SeriesSource
from senclip.data.sources import SourceKind, register_source
from senclip.errors import SenclipError
from senclip.net import RemoteError, RetryPolicy

TYPE = "senclip-stac-area"


def is_area_request(path: Path) -> bool:
    """A ``.json`` file whose ``type`` is ``senclip-stac-area``."""
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("type") == TYPE
    except (OSError, ValueError, AttributeError):
        return False


class StacAreaSource(SeriesSource):
    """The scenes of an area request as a series: see the module docstring.

    Args:
        path: the request file.
        bands: the bands to load (default: TimeSenCLIP's ten).
        policy: retries and timeouts of the catalogue and the reads.
    """

    def __init__(self, path, bands=None, policy: RetryPolicy | None = None) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        try:
            req = json.loads(self.path.read_text(encoding="utf-8"))
            area = (parse_bbox(",".join(map(str, req["bbox"]))) if "bbox" in req
                    else read_area(self.path.parent / req["area"]))
            start, end = parse_time(req["time"])
            url = req["stac_url"]
        except KeyError as exc:
            raise SenclipError(f"{self.path}: an area request needs stac_url, time and bbox or area "
                               f"({exc.args[0]} missing)") from None
        self.policy = policy or RetryPolicy()
        self.area = area
        self.grid = area_grid(area, req.get("crs"))
        self.bands = tuple(bands or S2_BANDS)
        self.spec = CompositeSpec(bands=self.bands, **({"mask_classes": tuple(req["mask_classes"])}
                                                       if "mask_classes" in req else {}))
        self.signer = resolve_signer(req.get("signer", "auto"), url)
        href_signer(self.signer)
        client = open_catalog(url, self.policy, "none")  # unsigned: each read signs its hrefs
        items = search_area(client, req.get("collection", "sentinel-2-l2a"), area, start, end, self.policy,
                            float(req.get("max_cloud", 80.0)), int(req.get("max_items", MAX_ITEMS)))
        if not items:
            raise SenclipError(f"{self.path}: no item covers {area.source} between {start} and {end}")
        self.scenes = check_radiometry(scene_refs(items, self.bands), self.spec, self.policy, self.signer)
        self.days = sorted({s.solar_day for s in self.scenes})
        self.dates = [dt.date.fromisoformat(d) for d in self.days]
        self.height, self.width = self.grid.shape
        self.crs, self.transform = self.grid.crs, self.grid.transform

    def read(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        rows = self._check_rows(rows)
        block = Block(0, 0, 0, rows.start, self.width, rows.stop - rows.start)
        data = np.zeros((len(self.days), len(self.bands), block.height, block.width), dtype=np.float32)
        valid = np.zeros((len(self.days), block.height, block.width), dtype=bool)
        unread = next((s for s in self.scenes if s.unread), None)
        if unread is not None:
            raise RemoteError(f"item {unread.id}: {unread.unread}")
        raw, scl = load_scenes(self.scenes, self.grid, block, self.spec, self.policy, self.signer)
        inside = block_mask(self.area, self.grid, block)
        values, keep, _ = observations(raw, scl, self.scenes, self.spec, inside)
        days_of, ids = [s.solar_day for s in self.scenes], [s.id for s in self.scenes]
        fused, ok, days = fuse_days(values, keep, days_of, ids)
        for j, day in enumerate(days):
            i = self.days.index(day)
            data[i], valid[i] = fused[j], ok[j]
        return data, valid

    def _identity(self) -> dict:
        st = self.path.stat()
        return super()._identity() | {"size": st.st_size, "mtime": st.st_mtime,
                                      "items": [s.id for s in self.scenes]}


register_source(SourceKind(
    "stac-area", detect=is_area_request, priority=30,
    open=lambda path, bands=None, **_: StacAreaSource(path, bands=bands),
    description="JSON request: an area and a time range in a STAC API (senclip-stac-area)"))


__all__ = ["TYPE", "StacAreaSource", "is_area_request"]
