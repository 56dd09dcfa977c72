"""Resumable per-point jobs: an append-only journal and a bounded thread pool.

Each finished point appends one JSON line to the journal (flushed and
fsynced) *after* its output file was renamed into place, so a run killed at
any moment (even ``kill -9``) leaves only whole files plus a journal that
lists a subset of them. A rerun skips points whose journal status is final
(``ok`` with its file present, ``no-scene``, ``cloudy``, ``missing``) and
redoes the rest (``failed``, or never recorded).
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from senclip.errors import SenclipError
from senclip.outputs import write_text

FINAL = ("ok", "no-scene", "cloudy", "missing")


class Journal:
    """Append-only JSON-lines record of finished work, keyed by ``key`` fields.

    Args:
        path: the ``.jsonl`` file (created on first append).
        key: record fields that identify a unit of work (``("point_id",)``).
    """

    def __init__(self, path: str | Path, key: tuple[str, ...] = ("point_id",)) -> None:
        self.path = Path(path)
        self.key = key
        self._lock = threading.Lock()
        self.records: dict[tuple, dict] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by a kill; its work is redone
                    self.records[self._key(rec)] = rec

    def _key(self, rec: dict) -> tuple:
        return tuple(str(rec.get(k)) for k in self.key)

    def get(self, *key: str) -> dict | None:
        """The last record for ``key`` or ``None``."""
        return self.records.get(tuple(str(k) for k in key))

    def append(self, rec: dict) -> None:
        """Record ``rec`` durably (flush + fsync)."""
        line = json.dumps(rec, sort_keys=True, default=str)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.records[self._key(rec)] = rec


def check_options(path: str | Path, options: dict) -> None:
    """Refuse to resume into an output folder made with other options; else record them.

    Raises:
        SenclipError: ``path`` exists with different options.
    """
    path = Path(path)
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = sorted(k for k in set(old) | set(options) if old.get(k) != options.get(k))
        if diff:
            raise SenclipError(
                f"{path.parent} was filled with other options ({', '.join(diff)} differ); "
                "use a new --out folder, or the same options to resume"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(options, indent=2, sort_keys=True))


@dataclass
class RunSummary:
    """What a run did: status counts and the records of this run."""

    total: int = 0
    skipped: int = 0
    counts: Counter = field(default_factory=Counter)
    records: list[dict] = field(default_factory=list)

    def ids(self, status: str) -> list[str]:
        """Point ids (in input order) whose final status is ``status``."""
        return [r["point_id"] for r in self.records if r.get("status") == status]


def run_point_files(
    points,
    out: Path,
    options_file: str,
    identity: dict,
    journal_file: str,
    make_worker: Callable[[], Callable[[dict], dict]],
    path_key: str,
    concurrency: int,
    progress: bool,
    desc: str,
) -> RunSummary:
    """Resumable per-point job whose result for each point is one file under ``out``.

    Checks ``out`` was not filled with other options, then builds the worker
    (e.g. opens the STAC client) and runs it on every row of ``points``; a
    journalled point is done when its status is final and, if ``ok``, the file
    named by ``record[path_key]`` exists.
    """
    check_options(out / options_file, identity)
    work = make_worker()
    journal = Journal(out / journal_file)
    tasks = [(r["point_id"], (lambda r=r: work(r))) for r in points.to_dict("records")]
    return run_points(
        tasks, journal, concurrency, progress, desc=desc,
        done=lambda rec: rec.get("status") != "ok" or (out / rec[path_key]).is_file(),
    )


def run_points(
    tasks: Iterable[tuple[str, Callable[[], dict]]],
    journal: Journal,
    concurrency: int = 4,
    progress: bool = True,
    desc: str = "points",
    done: Callable[[dict], bool] | None = None,
) -> RunSummary:
    """Run ``(point_id, fn)`` tasks on a thread pool, journalling each result.

    Args:
        tasks: pairs of point id and a no-argument function returning the
            point's record (with at least ``status``).
        journal: where results go; points with a final record are skipped.
        concurrency: tasks in flight at once.
        progress: show a tqdm bar.
        desc: the bar's label.
        done: extra check that a final record is still valid (e.g. its file exists).

    Returns:
        The :class:`RunSummary`, records in task order (skipped ones included).
    """
    from tqdm.auto import tqdm

    if concurrency < 1:
        raise SenclipError(f"--concurrency must be at least 1, got {concurrency}")
    tasks = list(tasks)
    summary = RunSummary(total=len(tasks))
    todo, by_id = [], {}
    for pid, fn in tasks:
        rec = journal.get(pid)
        if rec is not None and rec.get("status") in FINAL and (done is None or done(rec)):
            by_id[pid] = rec
            summary.skipped += 1
        else:
            todo.append((pid, fn))
    bar = tqdm(total=len(tasks), initial=summary.skipped, desc=desc, unit="pt", disable=not progress)
    pending: set[Future] = set()
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        try:
            for pid, fn in queue:
                pending.add(pool.submit(_record, pid, fn))
                if len(pending) >= concurrency * 2:
                    pending = _drain(pending, journal, by_id, bar, FIRST_COMPLETED)
            _drain(pending, journal, by_id, bar, None)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        finally:
            bar.close()
    summary.records = [by_id[pid] for pid, _ in tasks if pid in by_id]
    summary.counts = Counter(r["status"] for r in summary.records)
    return summary


def _record(pid: str, fn: Callable[[], dict]) -> dict:
    rec = fn()
    rec["point_id"] = pid
    return rec


def _drain(pending: set[Future], journal: Journal, by_id: dict, bar, when) -> set[Future]:
    finished, rest = wait(pending, return_when=when) if when else (pending, set())
    if when is None:
        wait(pending)
    for f in finished:
        rec = f.result()
        journal.append(rec)
        by_id[rec["point_id"]] = rec
        bar.update(1)
    return rest
