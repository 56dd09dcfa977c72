"""Running blocks: skip the finished ones, run the rest here or on a Dask cluster, journal each.

Every block task writes its own file atomically and returns a record; the record is appended
(flushed, fsynced) to a JSON-lines journal only after the file is in place, so a run killed at
any moment (``kill -9`` included) leaves whole block files and a journal listing a subset of
them. A rerun skips the blocks whose record is final (``ok`` with its file, or ``empty``) and
runs the others (``failed``, or never recorded). Tasks are the same functions here and on Dask
workers, so where a block ran does not change its file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from senclip.acquire.area import Block
from senclip.acquire.jobs import Journal

FINAL = ("ok", "empty")


def is_done(rec: dict | None, path: Path) -> bool:
    """A journal record that needs no rerun: ``empty``, or ``ok`` with its file present."""
    if rec is None or rec.get("status") not in FINAL:
        return False
    return rec["status"] == "empty" or path.is_file()


def run_blocks(
    fn: Callable,
    job,
    blocks: Sequence[Block],
    paths: dict[str, Path],
    journal: Journal,
    scheduler: str | None = None,
    progress: bool = True,
    desc: str = "blocks",
    key: str = "",
) -> list[dict]:
    """``fn(job, block, path)`` for every unfinished block; returns every block's record, in block order.

    Args:
        fn: a top-level task returning ``{"block": name, "status": ...}`` (picklable for Dask).
        job: its plain-data job.
        blocks: the blocks.
        paths: block name -> the file the task writes.
        journal: where records go (keyed by ``block``).
        scheduler: a Dask scheduler address, or ``None`` to run here, one block after another.
        progress: show a bar.
        desc: the bar's label.
        key: distinguishes this run's Dask keys (the job's identity).
    """
    from tqdm.auto import tqdm

    records: dict[str, dict] = {}
    todo = []
    for b in blocks:
        rec = journal.get(b.name)
        if is_done(rec, paths[b.name]):
            records[b.name] = rec
        else:
            todo.append(b)
    calls = [(job, b, str(paths[b.name])) for b in todo]
    if scheduler is None:
        with tqdm(
            total=len(blocks), initial=len(blocks) - len(todo), desc=desc, unit="block", disable=not progress
        ) as bar:
            for call in calls:
                rec = fn(*call)
                journal.append(rec)
                records[rec["block"]] = rec
                bar.update(1)
    else:
        from senclip.cluster import run_on_cluster

        keys = [f"senclip-{desc}-{key}-{b.name}" for b in todo]
        blocks_only = [call[1:] for call in calls]  # the job goes once to each worker, not with every block
        for rec in run_on_cluster(fn, blocks_only, keys, scheduler, progress, unit="block", shared=job):
            journal.append(rec)
            records[rec["block"]] = rec
    return [records[b.name] for b in blocks]


def failed_lines(records: list[dict], what: str) -> list[str]:
    """One line per failed block (``error: block r000c001: …``)."""
    return [
        f"error: {what} block {r['block']}: {r.get('error', 'failed')}"
        for r in records
        if r.get("status") == "failed"
    ]


__all__ = ["FINAL", "failed_lines", "is_done", "run_blocks"]
