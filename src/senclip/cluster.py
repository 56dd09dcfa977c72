"""Spreading independent tasks over a Dask distributed cluster (``--dask-scheduler ADDRESS``).

One place for what ``map --inputs`` (a scene per task) and the area pipeline (a block per
task) both do: connect to a running scheduler with a short timeout and a one-line error,
submit ``fn(*args)`` for every task under a stable key, and yield the results as they finish
while a progress bar counts them. What every task shares (an area's job: all its scenes, its
polygon) is scattered once to every worker and passed to the tasks by reference, not pickled
into each task. Tasks must be picklable top-level functions with plain-data
arguments; each writes its own output file, so the result does not depend on which worker
ran it or in which order the tasks finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from senclip.errors import SenclipError

CONNECT_TIMEOUT = "10s"
"""How long to wait for the Dask scheduler before giving up."""


def connect(scheduler: str, timeout: str | None = None):
    """A ``distributed.Client`` on ``scheduler``; :class:`SenclipError` (one line) if it cannot be reached."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise SenclipError(
            "--dask-scheduler needs dask[distributed]: pip install 'dask[distributed]'"
        ) from exc
    try:
        return Client(scheduler, timeout=timeout or CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SenclipError(
            f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one with "
            "`dask scheduler` or check the address"
        ) from exc


def run_on_cluster(
    fn: Callable,
    calls: Sequence[tuple],
    keys: Sequence[str],
    scheduler: str,
    progress: bool = True,
    unit: str = "task",
    timeout: str | None = None,
    shared=None,
) -> Iterator:
    """Run ``fn(*call)`` (``fn(shared, *call)`` with ``shared``) for each call on the cluster; yield results
    as they finish.

    Args:
        fn: a picklable top-level function.
        calls: its argument tuples.
        keys: one unique Dask key per call (a rerun reuses them).
        scheduler: the scheduler's address (``tcp://host:8786``).
        progress: show a bar counting finished tasks.
        unit: the bar's unit.
        timeout: connection timeout (default :data:`CONNECT_TIMEOUT`).
        shared: an object every task takes first, sent once to each worker (``Client.scatter``
            with ``broadcast``) instead of once per task.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    client = connect(scheduler, timeout)
    with client, tqdm(total=len(calls), unit=unit, disable=not progress) as bar:
        # in a list: scatter would make a dict into a dict of futures
        first = () if shared is None else (client.scatter([shared], broadcast=True)[0],)
        futures = [client.submit(fn, *first, *call, pure=False, key=key)
                   for call, key in zip(calls, keys, strict=True)]
        for fut in as_completed(futures, loop=client.loop):
            bar.update(1)
            yield fut.result()


__all__ = ["CONNECT_TIMEOUT", "connect", "run_on_cluster"]
