"""Planning an area request: the grid, the size check, the search, each item's radiometry; and the work
folders senclip keeps for a request (resumable, identified by what they depend on).

The steps of the area pipeline (``senclip composite``, ``map --bbox``, ``map-pixels --bbox``), each
resumable on its own:

1. **plan** (:func:`plan_area`): check the area and the time, choose the grid
   (:func:`senclip.acquire.area.area_grid`), refuse an area above ``--max-area-km2``, search the
   catalogue, decide each item's radiometry. Nothing is written before this succeeds.
2. **composite** (:mod:`senclip.areas.composites`): every block composited on its own
   (:func:`senclip.acquire.composite.run_block`), here or on a Dask cluster, journalled in
   ``WORK/blocks.jsonl``; then the blocks are assembled into one COG with its STAC Item.
3. **map** (:mod:`senclip.areas.maps`): every block mapped on its own from the composite,
   journalled likewise, then assembled into the class-map COG with legend, quick-look, QGIS style
   and STAC Item (:mod:`senclip.areas.mosaic`).

A killed run, rerun with the same arguments, skips the journalled blocks and gives the same
bytes; a block whose reads failed after the retries is reported and retried by the rerun.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from senclip.acquire.area import Area, AreaGrid, Block, area_grid, check_size
from senclip.acquire.area_items import MAX_ITEMS, CompositeSpec, SceneRef, scene_refs, search_area
from senclip.acquire.area_read import check_radiometry
from senclip.acquire.stac import href_signer, open_catalog, resolve_signer
from senclip.errors import SenclipError
from senclip.net import RetryPolicy
from senclip.outputs import write_text

IDENTITY = "identity.json"


class NothingClearError(SenclipError):
    """Every pixel of the area is clouded (or nodata) in every scene: nothing is written."""


@dataclass(frozen=True)
class AreaRequest:
    """What to composite: catalogue, area, time, bands and method, grid options (the shared flags)."""

    stac_url: str
    area: Area
    start: dt.date
    end: dt.date
    spec: CompositeSpec
    collection: str = "sentinel-2-l2a"
    signer: str = "auto"
    crs: str | None = None
    max_cloud: float = 80.0
    block_size: int = 1024
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    max_items: int = MAX_ITEMS


@dataclass(frozen=True)
class AreaPlan:
    """A checked request: its grid, the scenes found (radiometry decided), the composite's blocks.

    ``signer``: the request's signer resolved (``none`` or ``planetary-computer``); the scenes' hrefs
    are unsigned and each block signs what it reads.
    """

    request: AreaRequest
    grid: AreaGrid
    scenes: tuple[SceneRef, ...]
    signer: str = "none"

    @property
    def blocks(self) -> list[Block]:
        return self.grid.blocks(self.request.block_size)

    def identity(self) -> dict:
        """Everything the composite depends on (a cache holding another identity is not reused)."""
        r = self.request
        return {
            "stac_url": r.stac_url,
            "collection": r.collection,
            "area": r.area.wkt,
            "mask": r.area.mask,
            "start": r.start.isoformat(),
            "end": r.end.isoformat(),
            "spec": r.spec.identity(),
            "grid": self.grid.identity(),
            "block_size": r.block_size,
            "max_cloud": r.max_cloud,
            "items": [s.id for s in self.scenes],
        }

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def provenance(self) -> dict:
        r = self.request
        start, end = (
            (r.start, r.end)
            if not r.spec.monthly
            else (dt.date(r.spec.year, 1, 1), dt.date(r.spec.year, 12, 31))
        )
        return {
            "stac_url": r.stac_url,
            "collection": r.collection,
            "items": [s.id for s in self.scenes],
            "start": start.isoformat(),
            "end": end.isoformat(),
            "area": r.area.source,
            "grid": f"EPSG:{self.grid.epsg} {self.grid.resolution:g} m, origin ({self.grid.x0:.0f}, "
            f"{self.grid.y1:.0f}), {self.grid.width} x {self.grid.height} px",
            "baselines": sorted({s.baseline or "unknown" for s in self.scenes}),
        }


def plan_area(request: AreaRequest, max_area_km2: float = 1000.0, yes: bool = False) -> AreaPlan:
    """Grid, size check, search and radiometry of ``request``; one-line errors, nothing written.

    Each item's BOA offset is decided from its metadata and checked against its values here, once
    (:func:`senclip.acquire.area_read.check_radiometry`: a decimated read of each of its bands).

    Raises:
        SenclipError: area too large without ``yes``, no item in the range, more than
            ``max_items`` items, an item without a band; :class:`~senclip.net.RemoteError` when the
            catalogue or an item cannot be reached after the retries.
    """
    r = request
    grid = area_grid(r.area, r.crs)
    check_size(grid, max_area_km2, yes)
    signer = resolve_signer(r.signer, r.stac_url)
    href_signer(signer)  # a missing signing package stops here, before the search
    client = open_catalog(r.stac_url, r.policy, "none")  # unsigned: the blocks sign what they read
    items = search_area(client, r.collection, r.area, r.start, r.end, r.policy, r.max_cloud, r.max_items)
    if not items:
        raise SenclipError(
            f"no item of collection {r.collection} at {r.stac_url} covers {r.area.source} between "
            f"{r.start} and {r.end} with at most {r.max_cloud:g} % scene cloud; widen --time "
            "or --max-cloud"
        )
    scenes = check_radiometry(scene_refs(items, r.spec.bands), r.spec, r.policy, signer)
    return AreaPlan(r, grid, tuple(scenes), signer)


def _is_ours(folder: Path) -> bool:
    """A work folder senclip made: it holds its identity file (a JSON object), or nothing at all."""
    if not any(folder.iterdir()):
        return True
    try:
        return isinstance(json.loads((folder / IDENTITY).read_text()), dict)
    except (OSError, ValueError):
        return False


def _read_identity(folder: Path) -> dict:
    try:
        old = json.loads((folder / IDENTITY).read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def _differences(old: dict, new: dict) -> str:
    """What differs between two identities, for one line: the keys, and for the items which ones."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = []
    for k in keys:
        if k == "items" and isinstance(old.get(k), list) and isinstance(new.get(k), list):
            gone = [i for i in old[k] if i not in new[k]]
            added = [i for i in new[k] if i not in old[k]]
            said = [f"{len(ids)} {how} ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''})"
                    for ids, how in ((gone, "gone"), (added, "new")) if ids]
            parts.append("items: " + "; ".join(said) if said else "items: reordered")
        else:
            parts.append(k)
    return ", ".join(parts) or "all"


def claim_work(folder: Path, identity: dict, overwrite: bool, what: str, hint: str,
               restart: bool = False) -> bool:
    """Take the work folder ``folder`` for a job of ``identity``; whether it already holds that job's work.

    senclip marks every work folder it makes with ``identity.json`` and deletes only folders so
    marked. A folder holding another job's work is refused (``restart=False``: the composite, which
    other runs reuse; the one line says what differs, for a catalogue whose items changed which
    ones) or restarted (``restart=True``: a map's private blocks, whose output the command's claim
    protects); a folder senclip did not make is refused. ``overwrite`` lifts both refusals.

    Args:
        folder: the work folder.
        identity: everything its content depends on.
        overwrite: ``--overwrite``: replace another job's folder, or one senclip did not make.
        what: what the folder holds, for messages (``composite``, ``map``).
        hint: how to choose another folder, for messages (``pass another --cache folder``).
        restart: start over silently when the folder is senclip's but of another job.

    Raises:
        SenclipError: refused, as above.
    """
    if folder.exists() and not folder.is_dir():
        raise SenclipError(f"{folder} is a file where senclip keeps its {what} work folder; {hint}")
    if folder.is_dir():
        if not _is_ours(folder):
            if not overwrite:
                raise SenclipError(f"{folder} exists and was not made by senclip (no {IDENTITY}); move it "
                                   f"away, {hint}, or pass --overwrite to replace it")
            shutil.rmtree(folder)
        else:
            old = _read_identity(folder)
            if old == identity:
                return True
            if old and not restart and not overwrite:
                raise SenclipError(f"{folder} holds the {what} of another request "
                                   f"({_differences(old, identity)} differ); {hint}, or pass --overwrite to "
                                   "replace it")
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / IDENTITY, json.dumps(identity, indent=1, sort_keys=True, default=str))
    return False


__all__ = ["IDENTITY", "AreaPlan", "AreaRequest", "NothingClearError", "claim_work", "plan_area"]
