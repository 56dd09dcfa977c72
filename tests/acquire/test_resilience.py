"""Server failures (503, truncation, timeout) are retried; kill -9 then resume gives identical output."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import rasterio

from senclip.cli import main

from .test_chips import chips_args


@pytest.fixture
def uncached(monkeypatch):
    """Make GDAL fetch every byte from the server (no reuse of blocks cached by earlier tests)."""
    monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", "/vsicurl/http://127.0.0.1")


@pytest.fixture
def two_points(points_csv, tmp_path) -> Path:
    df = pd.read_csv(points_csv, dtype={"point_id": str})
    path = tmp_path / "two.csv"
    df[df["point_id"].isin(["pt1", "pt2"])].to_csv(path, index=False)
    return path


class _HealOnRetry(logging.Handler):
    """Clears the server's faults when our code announces a retry: the fault persists until retried."""

    def __init__(self, faults):
        super().__init__(logging.WARNING)
        self.faults, self.messages = faults, []

    def emit(self, record):
        self.messages.append(record.getMessage())
        self.faults.clear()


@pytest.mark.parametrize(("kind", "extra"), [("503", []), ("truncate", []), ("delay", ["--timeout", "1"])])
def test_transient_failures_are_retried(loopback, cogs, uncached, two_points, tmp_path, kind, extra):
    target = "/P2_20170617/B03.tif"
    cogs.faults.add(target, kind, times=None, seconds=2.5)
    heal = _HealOnRetry(cogs.faults)
    logger = logging.getLogger("senclip.net")
    logger.addHandler(heal)
    try:
        rc = main(chips_args(loopback, two_points, tmp_path / "o", *extra))
    finally:
        logger.removeHandler(heal)
    assert rc == 0
    assert len(heal.messages) >= 1 and all("B03.tif" in m and "retry 1/3" in m for m in heal.messages[:1])
    journal = [json.loads(line) for line in (tmp_path / "o" / "chips.jsonl").read_text().splitlines()]
    assert sorted((r["point_id"], r["status"]) for r in journal) == [("pt1", "ok"), ("pt2", "ok")]
    with (
        rasterio.open(tmp_path / "o" / "chips" / "pt2.tif") as chip,
        rasterio.open(loopback.assets / "P2_20170617" / "B03.tif") as src,
    ):
        assert (chip.read(2) == src.read(1)[50 - 16 : 50 + 16, 70 - 16 : 70 + 16]).all()


def test_persistent_failure_is_reported_and_finished_chips_kept(
    loopback, cogs, uncached, two_points, tmp_path, capsys
):
    out = tmp_path / "o"
    cogs.faults.add("/P2_20170617/B04.tif", "503", times=None)
    rc = main(chips_args(loopback, two_points, out, "--retries", "2"))
    err = capsys.readouterr().err
    assert rc == 1 and "failed (rerun to retry): pt2" in err and "1 failed" in err
    chip1 = out / "chips" / "pt1.tif"
    assert chip1.is_file() and not (out / "chips" / "pt2.tif").exists()
    assert pd.read_csv(out / "manifest.csv")["point_id"].tolist() == ["pt1"]
    assert cogs.requests["/P2_20170617/B04.tif"] >= 3  # 1 try + 2 retries reached the server
    mtime = chip1.stat().st_mtime_ns

    cogs.faults.clear()
    cogs.reset_stats()
    rc = main(chips_args(loopback, two_points, out, "--retries", "2"))
    assert rc == 0 and (out / "chips" / "pt2.tif").is_file()
    assert chip1.stat().st_mtime_ns == mtime  # finished point skipped, not redone
    assert not any(p.startswith("/P1_") for p in cogs.requests)
    assert pd.read_csv(out / "manifest.csv")["point_id"].tolist() == ["pt1", "pt2"]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_kill_9_then_resume_gives_identical_output(loopback, cogs, points_csv, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert main(chips_args(loopback, points_csv, ref)) == 0

    # hold pt4's first request for 20 s so the kill lands while pt4 is in flight
    cogs.faults.add("/P4_20171221/B04.tif", "delay", times=1, seconds=20)
    args = chips_args(loopback, points_csv, out, "--concurrency", "1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "senclip.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    journal = out / "chips.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.is_file() and len(journal.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = [json.loads(line)["point_id"] for line in journal.read_text().splitlines()]
    assert done == ["pt1", "pt2", "pt3"] and not (out / "manifest.csv").exists()
    for chip in (out / "chips").glob("*.tif"):  # whatever is there is whole
        with rasterio.open(chip) as src:
            src.read()

    cogs.faults.clear()
    assert main(chips_args(loopback, points_csv, out, "--concurrency", "1")) == 0
    assert _files(out / "chips") == _files(ref / "chips")
    assert (out / "manifest.csv").read_bytes() == (ref / "manifest.csv").read_bytes()
