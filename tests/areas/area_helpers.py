"""Helpers of the area tests (a module of its own name: conftest modules of several folders clash)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from senclip.testing.areas import TEST_AREA

BBOX = ",".join(f"{v:g}" for v in TEST_AREA.bbox)


def composite_args(stac, out, catalogue: str = "earth-search", *extra) -> list[str]:
    return [
        "composite",
        "--bbox",
        BBOX,
        "--time",
        "2022-01-01/2022-03-31",
        "--stac-url",
        stac.url,
        "--collection",
        catalogue,
        "--out",
        str(out),
        "--no-progress",
        "--backoff",
        "0.01",
        *extra,
    ]


@contextlib.contextmanager
def same_environ():
    """Restore ``os.environ`` afterwards: a process-based Dask ``LocalCluster`` leaves
    ``MALLOC_TRIM_THRESHOLD_`` set in its parent (distributed's nanny), which would change later
    tests' allocator set-up."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def kill_after_blocks(argv: list[str], journal, blocks: int = 2, timeout: float = 120.0) -> int:
    """Run ``python ARGV`` and kill -9 it once ``journal`` lists ``blocks`` finished blocks; returns how
    many it listed. Fails if the process ended before (or was not killed within ``timeout`` s)."""
    proc = subprocess.Popen([sys.executable, *argv], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done, deadline = 0, time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        done = len(journal.read_text().splitlines()) if journal.is_file() else 0
        if done >= blocks:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    return done
