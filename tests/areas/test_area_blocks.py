"""Blocks: a Dask LocalCluster gives the same file; kill -9 then rerun gives the same file; a failed block
is named, the others finish, and a rerun completes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from area_helpers import composite_args, kill_after_blocks, same_environ

from senclip.cli import main

ARGS = ("--block-size", "64", "--download-bands", "B04,B03,B02,B8A")


@pytest.fixture(scope="module")
def reference_file(area_stac, tmp_path_factory):
    """The composite of one uninterrupted single-process run (8 blocks)."""
    out = tmp_path_factory.mktemp("ref") / "ref.tif"
    assert main(composite_args(area_stac, out, "planetary-computer", *ARGS)) == 0
    return out


def test_dask_local_cluster_gives_the_identical_file(area_stac, reference_file, tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "dask.tif"
    with same_environ(), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tcp://",
                                      host="127.0.0.1", dashboard_address=None) as cluster:
        rc = main(
            composite_args(
                area_stac, out, "planetary-computer", *ARGS, "--dask-scheduler", cluster.scheduler_address
            )
        )
    assert rc == 0
    assert out.read_bytes() == reference_file.read_bytes()
    item = (tmp_path / "dask.item.json").read_text().replace("dask", "ref")  # the id and href name the file
    assert item == (reference_file.parent / "ref.item.json").read_text()


def test_kill_9_mid_area_then_rerun_gives_the_identical_file(area_stac, cogs, reference_file, tmp_path):
    out = tmp_path / "killed.tif"
    journal = tmp_path / "killed.tif.blocks" / "blocks.jsonl"
    cogs.faults.add("/B02.tif", "delay", times=None, seconds=0.25)  # slow reads: time to kill mid-area
    argv = composite_args(area_stac, out, "planetary-computer", *ARGS)
    done = kill_after_blocks(["-m", "senclip.cli", *argv], journal)
    assert 2 <= done < 8 and not out.exists()
    cogs.faults.clear()
    assert main(composite_args(area_stac, out, "planetary-computer", *ARGS)) == 0
    assert out.read_bytes() == reference_file.read_bytes()
    assert not journal.parent.exists()


def test_failed_asset_fails_its_blocks_only_and_a_rerun_retries_them(
    area_stac, cogs, reference_file, tmp_path, capsys
):
    out = tmp_path / "flaky.tif"
    args = [*composite_args(area_stac, out, "planetary-computer", *ARGS), "--retries", "1"]
    cogs.faults.add("32633/2022-02-14/offset/B03.tif", "503", times=None)  # the zone-33 tile of one date
    cmd = [sys.executable, "-m", "senclip.cli", *args]
    run = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    journal = [
        json.loads(ln) for ln in (tmp_path / "flaky.tif.blocks" / "blocks.jsonl").read_text().splitlines()
    ]
    failed = sorted(r["block"] for r in journal if r["status"] == "failed")
    ok = sorted(r["block"] for r in journal if r["status"] == "ok")
    assert (
        failed and ok and len(failed) + len(ok) == 8
    )  # east blocks reach the zone-33 tile, west ones do not
    assert [ln.split()[3].rstrip(":") for ln in lines] == failed
    assert all("503" in ln for ln in lines)
    assert not out.exists() and not (tmp_path / "flaky.item.json").exists()
    cogs.faults.clear()
    assert main(args) == 0
    assert out.read_bytes() == reference_file.read_bytes()
