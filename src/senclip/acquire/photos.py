"""Ground photos: download each point's N/E/S/W/P photos from a URL template, resumably.

The template is a Python format string. Fields: ``{base}`` (``--photo-base``),
``{point_id}``, ``{year}`` (of the survey date), ``{direction}`` (= ``{view}``:
``N``, ``E``, ``S``, ``W`` or ``P``), ``{nuts0}`` and every other column of the
points table by its lower-case name, plus ``{id_part1}``/``{id_part2}`` (the
point id's characters 1-3 and 4-6, as some LUCAS photo archives nest folders).
Example: ``{base}/{year}/{nuts0}/{point_id}{direction}.jpg``.

Without a template, ``photo_N`` … ``photo_P`` columns of the points table that
hold http(s) URLs are downloaded; local paths there are used as they are.

Files go to ``OUT/photos/<point_id>_<view>.<ext>`` through
:func:`senclip.net.fetch` (written to ``.partial``, resumed with ``Range``,
then renamed; an existing file is not fetched again). A 404 is recorded as a
missing photo (the manifest cell stays empty); 5xx, timeouts and truncated
bodies are retried with backoff and, if they persist, left for a rerun.
"""

from __future__ import annotations

import os
import string
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pandas as pd

from senclip.acquire.jobs import Journal, RunSummary, run_points
from senclip.acquire.points import safe_name
from senclip.errors import SenclipError
from senclip.net import RemoteError, RetryPolicy, fetch, http_status

VIEWS = ("N", "E", "S", "W", "P")
PHOTOS_DIR = "photos"
PHOTOS_JOURNAL = "photos.jsonl"


def _is_url(value) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def template_fields(row: dict, view: str, base: str = "") -> dict:
    """The fields a photo URL template may use for ``row`` and ``view``."""
    pid = str(row["point_id"])
    fields = {str(k).lower(): v for k, v in row.items()}
    fields.update(
        base=base.rstrip("/"),
        point_id=pid,
        direction=view,
        view=view,
        year=pd.Timestamp(row["date"]).year,
        id_part1=pid[0:3],
        id_part2=pid[3:6],
    )
    return fields


def check_template(template: str, columns: list[str]) -> None:
    """Raise :class:`SenclipError` if ``template`` names a field no row can fill."""
    known = {
        "base",
        "point_id",
        "direction",
        "view",
        "year",
        "id_part1",
        "id_part2",
        *(c.lower() for c in columns),
    }
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise SenclipError(f"bad --photo-url-template {template!r}: {exc}") from exc
    unknown = sorted(
        n.split(".")[0].split("[")[0] for n in names if n.split(".")[0].split("[")[0] not in known
    )
    if unknown:
        raise SenclipError(
            f"--photo-url-template uses unknown field(s) {', '.join(unknown)}; "
            f"available: {', '.join(sorted(known))}"
        )


def photo_sources(row: dict, template: str | None, base: str = "") -> dict[str, str | None]:
    """URL (or local path) of each view of one point."""
    out: dict[str, str | None] = {}
    for view in VIEWS:
        if template:
            out[view] = template.format(**template_fields(row, view, base))
        else:
            value = row.get(f"photo_{view}")
            out[view] = value.strip() if isinstance(value, str) and value.strip() else None
    return out


def fetch_photo(url: str, dest: Path, policy: RetryPolicy) -> str:
    """Download ``url`` to ``dest`` with :func:`senclip.net.fetch`; ``"ok"`` or ``"missing"`` (HTTP 404/410).

    Raises:
        RemoteError: persistent transient failure, another HTTP error, or an
            empty body (a photo is never empty; the next run tries again).
    """
    try:
        fetch(url, dest, policy=policy, progress=False)
    except RemoteError as exc:
        if http_status(exc.__cause__ or exc) in (404, 410):
            return "missing"
        raise
    if dest.stat().st_size == 0:
        dest.unlink()
        raise RemoteError(f"downloading {url} failed: empty reply")
    return "ok"


def photo_point(row: dict, out: Path, template: str | None, base: str, policy: RetryPolicy) -> dict:
    """Fetch the photos of one point; returns its journal record."""
    views: dict[str, dict] = {}
    status = "ok"
    for view, source in photo_sources(row, template, base).items():
        if source is None:
            views[view] = {"status": "none"}
        elif not _is_url(source):
            views[view] = {"status": "local", "path": source}
        else:
            ext = PurePosixPath(urlparse(source).path).suffix.lower() or ".jpg"
            rel = f"{PHOTOS_DIR}/{safe_name(row['point_id'])}_{view}{ext}"
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                got = "ok" if dest.is_file() else fetch_photo(source, dest, policy)
            except RemoteError as exc:
                got, status = "failed", "failed"
                views[view] = {"status": got, "url": source, "error": str(exc)}
                continue
            views[view] = {"status": got, "url": source, **({"path": rel} if got == "ok" else {})}
    return {"status": status, "views": views}


def download_photos(
    points: pd.DataFrame,
    out: str | Path,
    template: str | None = None,
    base: str = "",
    policy: RetryPolicy | None = None,
    concurrency: int = 4,
    progress: bool = True,
) -> RunSummary:
    """Download every point's photos into ``out/photos`` (resumable, see the module docstring)."""
    out = Path(out)
    policy = policy or RetryPolicy()
    if template:
        check_template(template, list(points.columns))
    elif not any(c in points.columns for c in (f"photo_{v}" for v in VIEWS)):
        raise SenclipError("no photos to fetch: give --photo-url-template or photo_N … photo_P columns")
    journal = Journal(out / PHOTOS_JOURNAL)
    tasks = [
        (r["point_id"], (lambda r=r: photo_point(r, out, template, base, policy)))
        for r in points.to_dict("records")
    ]
    return run_points(tasks, journal, concurrency, progress, desc="photos")


def photo_columns(points: pd.DataFrame, out: Path, manifest_dir: Path) -> list[dict[str, str | None]]:
    """Per point, ``photo_N`` … ``photo_P`` for the manifest (paths relative to ``manifest_dir``)."""
    journal = Journal(out / PHOTOS_JOURNAL)
    rows = []
    for row in points.to_dict("records"):
        rec = journal.get(row["point_id"]) or {}
        views = rec.get("views", {})
        cells: dict[str, str | None] = {}
        for view in VIEWS:
            info = views.get(view, {})
            value = None
            if info.get("status") == "ok":
                value = os.path.relpath((out / info["path"]).resolve(), manifest_dir.resolve())
            else:
                given = row.get(f"photo_{view}")
                if isinstance(given, str) and given.strip() and not _is_url(given):
                    value = given.strip()
            cells[f"photo_{view}"] = value
        rows.append(cells)
    return rows
