"""``acquire series``: 12 monthly composites per point over one year, resumable.

For each point, every scene of the year at the point (up to ``max_scenes``,
least scene cloud first, scenes above ``max_scene_cloud`` dropped) is read on
the point's chip grid (the CRS and pixel grid of the first scene; scenes from
a neighbouring UTM zone are warped onto it). A pixel of a scene is clear when
its SCL class is not in :data:`~senclip.bands.SCL_UNUSABLE` (without
SCL: when no band is 0). Items of one solar day (one acquisition cut into tiles,
often in two UTM zones) are fused into one observation, the first clear pixel in
item-id order (:func:`senclip.acquire.composite.fuse_days`, the rule of ``composite
--monthly`` and of the ``stac-area`` source, so an acquisition counts once in the
training series as at inference). The clear observations are composited by calendar
month with :func:`senclip.data.series.composite.monthly_composite` (the median of
the clear observations: the same value ``composite --monthly`` stores rounded half up
to whole DN in its uint16 file; this float32 stack keeps a ``.5``), and written
with :func:`senclip.data.series.rasters.write_stack`: a GeoTIFF of 12 steps,
each ``C`` float32 bands plus a ``CLM`` band (1 = no clear observation that
month), tagged with the months' mid dates, so
:class:`senclip.data.series.rasters.StackSource` reads it back.

Output folder::

    OUT/series/<point_id>.tif   the 12-month stack of each point
    OUT/series.jsonl            journal (status, scenes used, clear months)
    OUT/series.options.json     the options the folder was made with
    OUT/series_manifest.csv     point_id, lat, lon, date, series_path, photo_N … photo_P, year,
                                scenes, clear_months: a paired manifest for the timesen tower
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from senclip.acquire.area_items import solar_day
from senclip.acquire.chips import ChipSpec, chip_grid, read_chip, read_window
from senclip.acquire.composite import fuse_days
from senclip.acquire.jobs import Journal, RunSummary, run_point_files
from senclip.acquire.pipeline import StacOptions
from senclip.acquire.points import safe_name
from senclip.acquire.radiometry import Decision, check_data, decide, harmonise_float, warn
from senclip.acquire.stac import (
    asset_href,
    find_asset,
    item_cloud_cover,
    item_datetime,
    open_catalog,
    search_point,
)
from senclip.bands import SCL_UNUSABLE
from senclip.data.radiometry import CONVENTION, RAW, REFLECTANCE_SCALE, convention_tags
from senclip.net import RemoteError, RetryPolicy

SERIES_DIR = "series"
SERIES_JOURNAL = "series.jsonl"


@dataclass(frozen=True)
class SeriesOptions(StacOptions):
    """Options of ``acquire series`` (see the command's ``--help``); 5 x 5 pixel chips by default."""

    spec: ChipSpec = field(default_factory=lambda: ChipSpec(chip_px=5))
    year: int | None = None
    method: str = "median"
    max_scene_cloud: float = 80.0
    max_scenes: int = 80

    def _own_identity(self) -> dict:
        return {"year": self.year, "method": self.method, "max_scene_cloud": self.max_scene_cloud,
                "max_scenes": self.max_scenes}


def read_scene(item, grid, spec: ChipSpec, policy: RetryPolicy,
               radiometry: str = CONVENTION) -> tuple[np.ndarray, np.ndarray, Decision]:
    """Bands (C, H, W) of one scene on ``grid`` (float32), its clear mask (H, W) and radiometry decision.

    With ``radiometry="harmonised"`` the scene's BOA offset is removed here, before
    compositing, so months on both sides of the 2022 baseline change agree.
    """
    data = read_chip(item, grid, spec, policy)
    clear = (data != 0).all(axis=0)
    decision = check_data(data, decide(item, spec.bands), spec.bands)
    warn(item.id, decision)
    harmonised = radiometry == CONVENTION
    values = harmonise_float(data, decision, spec.bands) if harmonised else data.astype(np.float32)
    if find_asset(item, "SCL") is not None:
        scl = read_window(asset_href(item, "SCL"), grid, policy, "nearest")
        clear &= ~np.isin(scl, SCL_UNUSABLE)
    return values, clear, decision


def series_point(client, row: dict, opts: SeriesOptions, out: Path) -> dict:
    """Search, read and composite one point's year; returns its journal record."""
    from senclip.data.series.composite import monthly_composite
    from senclip.data.series.rasters import write_stack

    year = opts.year or pd.Timestamp(row["date"]).year
    try:
        items = search_point(
            client,
            opts.collection,
            row["lon"],
            row["lat"],
            dt.date(year, 1, 1),
            dt.date(year, 12, 31),
            opts.policy,
            max_items=max(opts.max_scenes * 4, 100),
        )
        items = [it for it in items if (item_cloud_cover(it) or 0.0) <= opts.max_scene_cloud]
        items = sorted(items, key=lambda it: (item_cloud_cover(it) or 0.0, it.id))[: opts.max_scenes]
        if not items:
            return {"status": "no-scene", "year": year}
        items.sort(key=item_datetime)
        grid = chip_grid(
            asset_href(items[0], opts.spec.bands[0]), row["lon"], row["lat"], opts.spec, opts.policy
        )
        scenes = [read_scene(it, grid, opts.spec, opts.policy, opts.radiometry) for it in items]
    except RemoteError as exc:
        return {"status": "failed", "error": str(exc)}
    decisions = [s[2] for s in scenes]
    radiometry = _series_radiometry(items, decisions, opts)
    days = [solar_day(item_datetime(it), it.bbox or (row["lon"], row["lat"], row["lon"], row["lat"]))
            for it in items]
    data, clear, days = fuse_days(np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes]), days,
                                  [it.id for it in items])
    dates = [dt.date.fromisoformat(d) for d in days]
    composite, month_valid = monthly_composite(data, dates, clear, method=opts.method, year=year)
    rel = f"{SERIES_DIR}/{safe_name(row['point_id'])}.tif"
    (out / SERIES_DIR).mkdir(parents=True, exist_ok=True)
    mids = [dt.date(year, m, 15) for m in range(1, 13)]
    write_stack(
        out / rel,
        composite,
        mids,
        list(opts.spec.bands),
        valid=month_valid,
        crs=grid.crs,
        transform=grid.transform,
        tags=radiometry["tags"],
        scaling=radiometry["scaling"],
    )
    clear_months = [round(float(v), 4) for v in month_valid.reshape(12, -1).mean(axis=1)]
    return {
        "status": "ok",
        "series_path": rel,
        "year": year,
        "scenes": len(items),
        "items": [it.id for it in items],
        "clear_months": clear_months,
        "radiometry": radiometry["record"],
    }


def _series_radiometry(items: list, decisions: list[Decision], opts: SeriesOptions) -> dict:
    """Journal record, tags and GDAL scaling of a series from its scenes' decisions.

    Harmonised: every scene had its own offset removed, so the stack is in the
    one convention (scale 1e-4, offset 0). Raw: the stack keeps the scenes' DN;
    its GDAL offset is the scenes' common offset, and when scenes disagree (a
    year across the 2022 change) the offset is left out and a warning is kept.
    """
    bands = opts.spec.bands
    offsets = {it.id: d.offset for it, d in zip(items, decisions, strict=True)}
    warnings = [f"{it.id}: {w}" for it, d in zip(items, decisions, strict=True) for w in d.warnings]
    record = {"mode": opts.radiometry, "offset_dn": offsets,
              "sources": sorted({d.source for d in decisions})}
    common = set(offsets.values())
    if opts.radiometry == CONVENTION:
        first = decisions[0]
        tags = convention_tags(CONVENTION, 0, ",".join(record["sources"]), first.baseline)
        tags["boa_offset_dn"] = ",".join(sorted({str(v) for v in common}))
        scaling = ([REFLECTANCE_SCALE] * len(bands), [0.0] * len(bands))
    elif len(common) == 1:
        (off,) = common
        tags = convention_tags(RAW, off, ",".join(record["sources"]), decisions[0].baseline)
        scaling = ([REFLECTANCE_SCALE] * len(bands), [-off * REFLECTANCE_SCALE] * len(bands))
    else:
        tags = convention_tags(RAW, max(common), "mixed", None)
        tags["boa_offset_dn"] = "mixed"
        scaling = None
        warnings.append("raw series mixes scenes with and without the BOA offset; its months are not "
                        "comparable (use --radiometry harmonised)")
    if warnings:
        record["warnings"] = warnings
    return {"record": record, "tags": tags, "scaling": scaling}


def acquire_series(
    points: pd.DataFrame, out: str | Path, opts: SeriesOptions, progress: bool = True
) -> RunSummary:
    """Write the 12-month composite stack of every point into ``out/series`` (resumable).

    Returns:
        The run's :class:`~senclip.acquire.jobs.RunSummary`.
    """
    out = Path(out)

    def make_worker():
        client = open_catalog(opts.stac_url, opts.policy, opts.signer)
        return lambda row: series_point(client, row, opts, out)

    summary = run_point_files(points, out, "series.options.json", opts.identity(), SERIES_JOURNAL,
                              make_worker, "series_path", opts.concurrency, progress, desc="series")
    write_series_manifest(points, out)
    return summary


def write_series_manifest(points: pd.DataFrame, out: str | Path) -> Path | None:
    """Write ``out/series_manifest.csv`` from the series journal; ``None`` if no series exists yet.

    Rows are the points with a series, in input order: ``point_id, lat, lon,
    date, series_path`` (relative to ``out``), ``photo_N`` … ``photo_P`` (as in
    the chips manifest: downloaded photos or the points file's own photo
    columns), ``year, scenes, clear_months``. It is a paired manifest
    (:mod:`senclip.data.manifest`) for training the timesen tower.
    """
    from senclip.acquire.photos import photo_columns
    from senclip.data.manifest import write_manifest

    out = Path(out)
    journal = Journal(out / SERIES_JOURNAL)
    table = []
    for row, photos in zip(points.to_dict("records"), photo_columns(points, out, out), strict=True):
        rec = journal.get(row["point_id"])
        if rec and rec.get("status") == "ok":
            table.append({
                "point_id": row["point_id"], "lat": row["lat"], "lon": row["lon"],
                "date": pd.Timestamp(row["date"]).date().isoformat(), "series_path": rec["series_path"],
                **photos, "year": rec["year"], "scenes": rec["scenes"],
                "clear_months": sum(v > 0 for v in rec["clear_months"]),
            })
    return write_manifest(pd.DataFrame(table), out / "series_manifest.csv") if table else None
