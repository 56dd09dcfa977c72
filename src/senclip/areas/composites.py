"""The composite of a planned area: every block composited (here or on Dask, resumable), then one COG.

``senclip composite`` writes it where asked (:func:`composite_area`); ``map --bbox`` and
``map-pixels --bbox`` keep it in their cache folder (``--cache``, default ``OUTPUT_composites/``)
and reuse it on a rerun with other mapping options (:func:`cached_composite`); a cache holding
another request's composite is refused unless ``--overwrite``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from senclip.acquire.composite import CompositeJob, run_block
from senclip.acquire.jobs import Journal
from senclip.areas.blocks import run_blocks
from senclip.areas.mosaic import write_composite
from senclip.areas.plan import AreaPlan, NothingClearError, claim_work
from senclip.errors import SenclipError
from senclip.outputs import write_text
from senclip.stacitem import item_path


def build_composite(
    plan: AreaPlan,
    out: Path,
    work: Path,
    scheduler: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    hint: str = "choose another --out",
) -> dict:
    """Composite every block into ``work/blocks`` and assemble ``out`` (COG + STAC Item).

    ``work`` is taken with :func:`~senclip.areas.plan.claim_work`: resumed when it holds this
    plan's blocks, refused when it holds another request's or is not senclip's (``hint`` says
    what to do instead), replaced with ``overwrite``.

    Returns:
        A summary: blocks, their counts by status, the failed ones (then ``out`` is not written).

    Raises:
        NothingClearError: no block has a clear pixel (``work`` is removed, nothing written).
        SenclipError: ``work`` refused.
    """
    created = not work.exists()
    claim_work(work, plan.identity(), overwrite, "composite", hint)
    blocks = plan.blocks
    paths = {b.name: work / "blocks" / f"{b.name}.tif" for b in blocks}
    r = plan.request
    job = CompositeJob(plan.scenes, plan.grid, r.area, r.spec, r.policy, plan.signer)
    journal = Journal(work / "blocks.jsonl", key=("block",))
    t0 = time.perf_counter()
    records = run_blocks(run_block, job, blocks, paths, journal, scheduler, progress, "composite", plan.key())
    summary = summary_of(records, "composite")
    summary["seconds"] = {"blocks": round(time.perf_counter() - t0, 3)}
    if summary["failed"]:
        return summary
    if not any(rec["status"] == "ok" for rec in records):
        if created:
            shutil.rmtree(work, ignore_errors=True)
        raise NothingClearError(
            f"every pixel of {r.area.source} is clouded or nodata in all {len(plan.scenes)} scene(s) between "
            f"{r.start} and {r.end} (SCL classes {','.join(map(str, r.spec.mask_classes))} masked); nothing "
            "written — widen --time or change --mask-classes"
        )
    t0 = time.perf_counter()
    write_composite(out, work, plan.grid, blocks, records, paths, r.spec, plan.provenance())
    summary["seconds"]["assemble"] = round(time.perf_counter() - t0, 3)
    summary["output"] = str(out)
    return summary


def summary_of(records: list[dict], what: str) -> dict:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {
        "what": what,
        "blocks": len(records),
        "counts": counts,
        "failed": [
            {"block": r["block"], "error": r.get("error", "")} for r in records if r["status"] == "failed"
        ],
    }


def composite_area(
    plan: AreaPlan, out: Path, scheduler: str | None = None, progress: bool = True, overwrite: bool = False
) -> dict:
    """``senclip composite``: the COG at ``out``; its blocks stay in ``OUT.blocks/`` until it is written."""
    work = out.with_name(out.name + ".blocks")
    summary = build_composite(plan, out, work, scheduler, progress, overwrite)
    if not summary["failed"]:  # the folder is senclip's: build_composite claimed it
        shutil.rmtree(work, ignore_errors=True)
    return summary


def cached_composite(
    plan: AreaPlan, cache: Path, scheduler: str | None, progress: bool, overwrite: bool
) -> tuple[dict, Path, Path]:
    """The composite of ``plan`` in ``cache`` (built, or reused when a run already made it).

    A composite file in ``cache`` without senclip's work folder beside it (the user's own file, or
    one whose work folder was deleted) is not written over without ``overwrite``.

    Raises:
        SenclipError: the cache holds another request's composite, or files senclip did not make.
    """
    name = "monthly" if plan.request.spec.monthly else "composite"
    out, work = cache / f"{name}.tif", cache / f"{name}.blocks"
    hint = "pass another --cache folder"
    foreign = [p for p in (out, item_path(out)) if p.exists()]
    if foreign and not work.is_dir() and not overwrite:
        raise SenclipError(f"{foreign[0]} exists and was not made by senclip for this request (no "
                           f"{work.name}/ beside it); {hint}, or --overwrite to replace it")
    created = not cache.exists()
    cache.mkdir(parents=True, exist_ok=True)
    ready = claim_work(work, plan.identity(), overwrite, "composite", hint)
    if ready and out.is_file() and (work / "done").is_file():
        return {"what": "composite", "reused": True, "failed": [], "output": str(out)}, out, work
    try:
        summary = build_composite(plan, out, work, scheduler, progress, overwrite, hint)
    except NothingClearError:
        if created:
            shutil.rmtree(cache, ignore_errors=True)
        raise
    if not summary["failed"]:
        write_text(work / "done", str(out.name))
    return summary, out, work


__all__ = ["build_composite", "cached_composite", "composite_area", "summary_of"]
