"""No data lost, in real runs of the long commands (map, embed, map-pixels), each in its own process.

Per command: an existing output is replaced only with --overwrite; a full disk (RLIMIT_FSIZE) leaves
the previous file intact and no partial file; SIGINT or kill -9 in the middle, then a rerun, gives
the same bytes as an uninterrupted run; a second process on the same output stops at once; and a
rerun of a finished job reports it done without touching it.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import md5, senclip_cmd, subprocess_env, write_scene

MODEL = ("--model", "senclip-tiny-vit")


@pytest.fixture(scope="module")
def big(inputs, tmp_path_factory, eurosat_rgb, eopatch_root):
    """Inputs large enough to interrupt: a 384 px scene and the whole 101-row eo-learn stack."""
    from rasterio.transform import from_origin

    from senclip.data.series.io import EOPatchSource
    from senclip.data.series.rasters import write_stack

    root = tmp_path_factory.mktemp("big")
    with rasterio.open(write_scene(root / "small.tif", eurosat_rgb)) as src:
        data, profile = src.read(), src.profile
    data = np.tile(data, (1, 3, 3))
    profile.update(width=384, height=384, transform=from_origin(500_000.0, 5_600_000.0, 10.0, 10.0))
    scene = root / "scene.tif"
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(("B04", "B03", "B02")):
            dst.set_band_description(i + 1, name)
    src = EOPatchSource(eopatch_root)
    data, valid = src.read(slice(0, src.height))
    stack = write_stack(root / "stack.tif", data, src.dates, src.bands, valid, src.crs, src.transform)
    return {"scene": scene, "stack": stack, "inputs": inputs}


def argv(tool: str, big: dict, out: Path, *extra: str) -> list[str]:
    i = big["inputs"]
    if tool == "map":
        return ["map", big["scene"], out, *MODEL, "--pretrained", i.model, "--stride", "16", "--batch-size",
                "1", "--workers", "1", "--device", "cpu", "--no-quicklook", "--no-progress", *extra]
    if tool == "embed":
        return ["embed", big["scene"], "--out", out, *MODEL, "--pretrained", i.model, "--stride", "16",
                "--batch-size", "1", "--workers", "1", "--device", "cpu", "--no-progress", *extra]
    return ["map-pixels", big["stack"], out, *MODEL, "--checkpoint", i.timesen, "--block-rows", "2",
            "--batch-size", "64", "--device", "cpu", "--no-progress", *extra]


OTHER = {"map": ("--prompts", "ground"), "embed": ("--tile", "32"), "map-pixels": ("--prompts", "ground")}
SUFFIX = {"map": ".tif", "embed": ".parquet", "map-pixels": ".tif"}
TOOLS = list(SUFFIX)


def senclip(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(senclip_cmd(*args), capture_output=True, text=True, env=subprocess_env(),
                          timeout=600, **kw)


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def progress(out: Path) -> int:
    """Units of work recorded as done by an unfinished run (rows of a RowStore, blocks of map-pixels)."""
    for state in (out.with_name(out.name + ".partial") / "state.json", out.with_name(out.name + ".progress.json")):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        return int(data.get("rows_done", len(data.get("done", {}))))
    return 0


def interrupt_midway(args: list, out: Path, sig: int) -> int:
    """Start ``senclip args``, send ``sig`` once 2 units are done; returns the exit status."""
    proc = subprocess.Popen(senclip_cmd(*args), env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if progress(out) >= 2:
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    proc.wait(timeout=120)
    assert proc.returncode != 0, "the run finished before it could be interrupted"
    return proc.returncode


@pytest.fixture(scope="module")
def reference(big, tmp_path_factory):
    """One uninterrupted run per tool, to compare interrupted-then-resumed runs with."""
    root = tmp_path_factory.mktemp("ref")
    refs = {}
    for tool in TOOLS:
        out = root / f"ref-{tool}{SUFFIX[tool]}"
        done = senclip(argv(tool, big, out))
        assert done.returncode == 0, done.stderr
        refs[tool] = out
    return refs


def same_result(tool: str, a: Path, b: Path) -> None:
    if tool == "embed":  # GeoParquet: compare the table (the file embeds the output name nowhere else)
        import pandas as pd

        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    else:
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "kill9"])
@pytest.mark.parametrize("tool", TOOLS)
def test_interrupted_then_rerun_is_identical(tool, sig, big, reference, tmp_path):
    out = tmp_path / f"out{SUFFIX[tool]}"
    status = interrupt_midway(argv(tool, big, out), out, sig)
    assert status == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    assert not out.exists()
    again = senclip(argv(tool, big, out))
    assert again.returncode == 0, again.stderr
    same_result(tool, out, reference[tool])
    assert leftovers(tmp_path, {out.name, f".{out.name}.senclip.json"}) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_overwrite_replaces_and_finished_job_is_done(tool, big, reference, tmp_path):
    out = tmp_path / f"out{SUFFIX[tool]}"
    out.write_text("someone else's file")
    refused = senclip(argv(tool, big, out))
    assert refused.returncode == 2 and "pass --overwrite" in refused.stderr
    assert out.read_text() == "someone else's file"
    done = senclip(argv(tool, big, out, "--overwrite"))
    assert done.returncode == 0, done.stderr
    same_result(tool, out, reference[tool])
    stamp = out.stat().st_mtime_ns
    again = senclip(argv(tool, big, out))
    assert again.returncode == 0 and "done already" in again.stderr
    assert out.stat().st_mtime_ns == stamp
    other = senclip(argv(tool, big, out, *OTHER[tool]))  # another job on a finished output
    assert other.returncode == 2 and "pass --overwrite" in other.stderr
    assert out.stat().st_mtime_ns == stamp


def _limit_file_size(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("tool", TOOLS)
def test_disk_full_keeps_the_previous_file(tool, big, tmp_path):
    out = tmp_path / f"out{SUFFIX[tool]}"
    first = senclip(argv(tool, big, out, *OTHER[tool]))
    assert first.returncode == 0, first.stderr
    before = md5(out)
    full = senclip(argv(tool, big, out, "--overwrite"), preexec_fn=_limit_file_size(4_096))
    err = [ln for ln in full.stderr.splitlines() if ln.strip()]
    assert full.returncode not in (0, 130) and len(err) == 1 and err[0].startswith("error: "), full.stderr
    assert md5(out) == before
    assert leftovers(tmp_path, {out.name, f".{out.name}.senclip.json"}) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_two_processes_on_one_output(tool, big, tmp_path):
    out = tmp_path / f"out{SUFFIX[tool]}"
    lock = tmp_path / f".{out.name}.lock"
    first = subprocess.Popen(senclip_cmd(*argv(tool, big, out)), env=subprocess_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGSTOP)  # the first writer holds the output while the second one starts
    try:
        second = senclip(argv(tool, big, out))
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    err = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert second.returncode == 2 and len(err) == 1, second.stderr
    assert f"being written by another senclip process (pid {first.pid})" in err[0]
    assert out.is_file() and not lock.exists()
