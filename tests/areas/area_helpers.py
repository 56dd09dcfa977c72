"""Helpers of the area tests (a module of its own name: conftest modules of several folders clash)."""

from __future__ import annotations

import contextlib
import os

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
