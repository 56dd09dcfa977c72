"""``acquire chips``: one cloud-ranked Sentinel-2 chip per survey point, resumable.

Output folder layout::

    OUT/chips/<point_id>.tif     one GeoTIFF chip per point (bands in --download-bands order)
    OUT/chips.jsonl              journal: one line per finished point (status, scene, cloud)
    OUT/chips.options.json       the options the folder was made with (a rerun must match)
    OUT/manifest.csv             the paired manifest (senclip.data.manifest format)

Point statuses: ``ok`` (chip written), ``no-scene`` (no item at the point in
the window), ``cloudy`` (items, but none with cloud ≤ ``max_cloud`` over the
chip), ``failed`` (remote errors after retries; redone by a rerun).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from senclip.acquire.chips import ChipSpec, rank_candidates, read_chip, write_chip
from senclip.acquire.jobs import Journal, RunSummary, run_point_files
from senclip.acquire.points import safe_name
from senclip.acquire.radiometry import check_data, decide, gdal_scaling, harmonise, warn
from senclip.acquire.stac import item_cloud_cover, item_datetime, open_catalog, search_point
from senclip.data.radiometry import CONVENTION
from senclip.errors import SenclipError
from senclip.net import RetryPolicy

CHIPS_DIR = "chips"
CHIPS_JOURNAL = "chips.jsonl"


@dataclass(frozen=True)
class StacOptions:
    """What ``acquire chips`` and ``acquire series`` share: catalogue, chip, network, radiometry."""

    stac_url: str
    collection: str = "sentinel-2-l2a"
    spec: ChipSpec = field(default_factory=ChipSpec)
    signer: str = "auto"
    concurrency: int = 4
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    radiometry: str = "harmonised"

    def identity(self) -> dict:
        """The options that shape the output (a resumed run must repeat them)."""
        return {
            "stac_url": self.stac_url,
            "collection": self.collection,
            "radiometry": self.radiometry,
            **self._own_identity(),
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.spec).items()},
        }

    def _own_identity(self) -> dict:
        """The options of one command that shape its output."""
        return {}


@dataclass(frozen=True)
class ChipsOptions(StacOptions):
    """Options of ``acquire chips`` (see the command's ``--help``)."""

    window_days: int = 30
    max_cloud: float = 20.0
    max_candidates: int = 6

    def _own_identity(self) -> dict:
        return {"window_days": self.window_days, "max_cloud": self.max_cloud,
                "max_candidates": self.max_candidates}


def _iso(value) -> str:
    return pd.Timestamp(value).date().isoformat()


def chip_point(client, row: dict, opts: ChipsOptions, out: Path) -> dict:
    """Search, rank and cut the chip of one point; returns its journal record."""
    from senclip.net import RemoteError

    date = pd.Timestamp(row["date"]).date()
    window = dt.timedelta(days=opts.window_days)
    try:
        items = search_point(
            client, opts.collection, row["lon"], row["lat"], date - window, date + window, opts.policy
        )
        if not items:
            return {"status": "no-scene"}
        ranked = rank_candidates(
            items, row["lon"], row["lat"], date, opts.spec, opts.policy, opts.max_candidates
        )
        best = ranked[0]
        if best.cloud is not None and best.cloud > opts.max_cloud:
            return {"status": "cloudy", "best_item": best.item.id, "cloud_percent": round(best.cloud, 3)}
        data = read_chip(best.item, best.grid, opts.spec, opts.policy)
    except RemoteError as exc:
        return {"status": "failed", "error": str(exc)}
    decision = check_data(data, decide(best.item, opts.spec.bands), opts.spec.bands)
    warn(best.item.id, decision)
    if opts.radiometry == CONVENTION:
        data = harmonise(data, decision, opts.spec.bands)
    rel = f"{CHIPS_DIR}/{safe_name(row['point_id'])}.tif"
    acquired = item_datetime(best.item).isoformat()
    cloud = None if best.cloud is None else round(best.cloud, 3)
    tags = {
        "point_id": row["point_id"],
        "lat": row["lat"],
        "lon": row["lon"],
        "survey_date": date.isoformat(),
        "item_id": best.item.id,
        "collection": opts.collection,
        "acquired": acquired,
        "cloud_percent": cloud,
        "cloud_source": best.cloud_source,
        "scene_cloud_cover": item_cloud_cover(best.item),
        "stac_api": opts.stac_url,
        **decision.tags(opts.radiometry),
    }
    write_chip(out / rel, data, best.grid, opts.spec.bands, tags,
               gdal_scaling(decision, opts.radiometry, opts.spec.bands))
    return {
        "status": "ok",
        "sat_path": rel,
        "item_id": best.item.id,
        "acquired": acquired,
        "cloud_percent": cloud,
        "cloud_source": best.cloud_source,
        "days_from_survey": best.days,
        "radiometry": decision.record(opts.radiometry),
    }


def acquire_chips(
    points: pd.DataFrame,
    out: str | Path,
    opts: ChipsOptions,
    progress: bool = True,
    manifest: str | Path | None = None,
) -> RunSummary:
    """Cut one chip per point into ``out`` and write the paired manifest.

    Args:
        points: validated points (:func:`senclip.acquire.points.read_points`).
        out: output folder (created; reruns resume in it).
        opts: search, ranking and reading options.
        progress: show a progress bar.
        manifest: manifest path (default ``out/manifest.csv``).

    Returns:
        The run's :class:`~senclip.acquire.jobs.RunSummary`.

    Raises:
        SenclipError: ``out`` was filled with other options, or the STAC API
            cannot be opened.
    """
    out = Path(out)

    def make_worker():
        client = open_catalog(opts.stac_url, opts.policy, opts.signer)
        return lambda row: chip_point(client, row, opts, out)

    summary = run_point_files(points, out, "chips.options.json", opts.identity(), CHIPS_JOURNAL, make_worker,
                              "sat_path", opts.concurrency, progress, desc="chips")
    write_paired_manifest(points, out, manifest)
    return summary


def write_paired_manifest(
    points: pd.DataFrame, out: str | Path, path: str | Path | None = None
) -> Path | None:
    """Write the paired manifest of ``out`` from its journals; ``None`` if no chip exists yet.

    Rows are the points with a chip, in input order: the point's columns
    (``date`` as ISO), ``sat_path`` (relative to the manifest), ``photo_N`` …
    ``photo_P`` (downloaded photos, or the points file's own photo columns),
    and ``item_id``, ``acquired``, ``cloud_percent`` of the chosen scene.
    """
    from senclip.acquire.photos import photo_columns
    from senclip.data.manifest import PHOTO_COLUMNS, write_manifest

    out = Path(out)
    path = Path(path) if path else out / "manifest.csv"
    chips = Journal(out / CHIPS_JOURNAL)
    photos = photo_columns(points, out, path.parent)
    rows = []
    for row, phot in zip(points.to_dict("records"), photos, strict=True):
        rec = chips.get(row["point_id"])
        if rec is None or rec.get("status") != "ok":
            continue
        sat = (out / rec["sat_path"]).resolve()
        new = {
            **row,
            "date": _iso(row["date"]),
            "sat_path": _relative(sat, path.parent),
            **phot,
            "item_id": rec["item_id"],
            "acquired": rec["acquired"],
            "cloud_percent": rec["cloud_percent"],
        }
        rows.append(new)
    if not rows:
        return None
    df = pd.DataFrame(rows)
    first = ["point_id", "lat", "lon", "date", "sat_path", *PHOTO_COLUMNS]
    df = df[first + [c for c in df.columns if c not in first]]
    return write_manifest(df, path)


def _relative(target: Path, base: Path) -> str:
    import os

    try:
        return Path(os.path.relpath(target, base.resolve())).as_posix()
    except ValueError:  # other drive on Windows
        return str(target)


def summary_lines(summary: RunSummary, what: str = "chips") -> list[str]:
    """Human-readable summary of a run, one line each."""
    c = summary.counts
    lines = [
        f"{what}: {summary.total} points: {c.get('ok', 0)} ok ({summary.skipped} already done), "
        f"{c.get('no-scene', 0)} without scene, {c.get('cloudy', 0)} too cloudy, "
        f"{c.get('failed', 0)} failed"
    ]
    for status, label in (
        ("no-scene", "no scene in the window"),
        ("cloudy", "no clear scene"),
        ("failed", "failed (rerun to retry)"),
    ):
        ids = summary.ids(status)
        if ids:
            more = f" … (+{len(ids) - 10})" if len(ids) > 10 else ""
            lines.append(f"  {label}: {', '.join(ids[:10])}{more}")
    return lines


__all__ = [
    "ChipsOptions",
    "SenclipError",
    "acquire_chips",
    "chip_point",
    "summary_lines",
    "write_paired_manifest",
]
