"""``acquire series``: 12 monthly composites per point over one year, resumable.

For each point, every scene of the year at the point (up to ``max_scenes``,
least scene cloud first, scenes above ``max_scene_cloud`` dropped) is read on
the point's chip grid (the CRS and pixel grid of the first scene; scenes from
a neighbouring UTM zone are warped onto it). A pixel of a scene is clear when
its SCL class is not in :data:`~senclip.acquire.chips.SCL_UNUSABLE` (without
SCL: when no band is 0). The clear observations are composited by calendar
month with :func:`senclip.data.series.composite.monthly_composite`, and written
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from senclip.acquire.chips import SCL_UNUSABLE, ChipSpec, chip_grid, read_chip, read_window
from senclip.acquire.jobs import Journal, RunSummary, run_point_files
from senclip.acquire.points import safe_name
from senclip.acquire.stac import (
    asset_href,
    find_asset,
    item_cloud_cover,
    item_datetime,
    open_catalog,
    search_point,
)
from senclip.net import RemoteError, RetryPolicy

SERIES_DIR = "series"
SERIES_JOURNAL = "series.jsonl"


@dataclass(frozen=True)
class SeriesOptions:
    """Options of ``acquire series`` (see the command's ``--help``)."""

    stac_url: str
    year: int | None = None
    collection: str = "sentinel-2-l2a"
    spec: ChipSpec = field(default_factory=lambda: ChipSpec(chip_px=5))
    method: str = "median"
    max_scene_cloud: float = 80.0
    max_scenes: int = 80
    signer: str = "auto"
    concurrency: int = 4
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def identity(self) -> dict:
        """The options that shape the output (a resumed run must repeat them)."""
        return {
            "stac_url": self.stac_url,
            "year": self.year,
            "collection": self.collection,
            "method": self.method,
            "max_scene_cloud": self.max_scene_cloud,
            "max_scenes": self.max_scenes,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.spec).items()},
        }


def read_scene(item, grid, spec: ChipSpec, policy: RetryPolicy) -> tuple[np.ndarray, np.ndarray]:
    """Bands (C, H, W) of one scene on ``grid`` and its clear mask (H, W)."""
    data = read_chip(item, grid, spec, policy)
    clear = (data != 0).all(axis=0)
    if find_asset(item, "SCL") is not None:
        scl = read_window(asset_href(item, "SCL"), grid, policy, "nearest")
        clear &= ~np.isin(scl, SCL_UNUSABLE)
    return data, clear


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
        scenes = [read_scene(it, grid, opts.spec, opts.policy) for it in items]
    except RemoteError as exc:
        return {"status": "failed", "error": str(exc)}
    data = np.stack([s[0] for s in scenes])
    clear = np.stack([s[1] for s in scenes])
    dates = [item_datetime(it).date() for it in items]
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
    )
    clear_months = [round(float(v), 4) for v in month_valid.reshape(12, -1).mean(axis=1)]
    return {
        "status": "ok",
        "series_path": rel,
        "year": year,
        "scenes": len(items),
        "items": [it.id for it in items],
        "clear_months": clear_months,
    }


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
