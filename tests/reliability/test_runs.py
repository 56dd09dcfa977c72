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
from reliability_helpers import md5, senclip_cmd, subprocess_env, write_scene

from senclip.cli import main

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


def argv(tool: str, big: dict, out: Path, *extra: str, slow: bool = False) -> list[str]:
    """A run of ``tool``; ``slow`` ones (one tile or two rows per step) leave time to interrupt them."""
    i = big["inputs"]
    step = ("--stride", "16", "--batch-size", "1") if slow else ("--stride", "64", "--batch-size", "64")
    if tool == "map":
        return ["map", big["scene"], out, *MODEL, "--pretrained", i.model, *step, "--workers", "1",
                "--device", "cpu", "--no-quicklook", "--no-progress", *extra]
    if tool == "embed":
        return ["embed", big["scene"], "--out", out, *MODEL, "--pretrained", i.model, *step, "--workers", "1",
                "--device", "cpu", "--no-progress", *extra]
    return ["map-pixels", big["stack"], out, *MODEL, "--pretrained", i.model, "--checkpoint", i.timesen,
            "--block-rows", "2" if slow else "64", "--device", "cpu", "--no-progress", *extra]


def in_process(args, capsys) -> tuple[int, str]:
    status = main([str(a) for a in args])
    return status, capsys.readouterr().err


OTHER = {"map": ("--prompts", "ground"), "embed": ("--min-valid", "0.9"),
         "map-pixels": ("--prompts", "ground")}
SUFFIX = {"map": ".tif", "embed": ".parquet", "map-pixels": ".tif"}
TOOLS = list(SUFFIX)


def senclip(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(senclip_cmd(*args), capture_output=True, text=True, env=subprocess_env(),
                          timeout=600, **kw)


def leftovers(folder: Path, out: Path) -> list[str]:
    """Files beside the outputs of ``out`` (legend, Item, QGIS style, job record) that a run left behind."""
    keep = {out.name, f".{out.name}.senclip.json", out.with_suffix(".legend.json").name,
            out.with_name(out.stem + ".item.json").name, out.with_suffix(".qml").name}
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def progress(out: Path) -> int:
    """Rows recorded as done by an unfinished run (its RowStore, ``OUTPUT.partial/state.json``)."""
    try:
        return int(json.loads((out.with_name(out.name + ".partial") / "state.json").read_text())["rows_done"])
    except (OSError, ValueError, KeyError):
        return 0


def interrupt_midway(args: list, out: Path, sig: int) -> int:
    """Start ``senclip args``, send ``sig`` once 2 units are done; returns the exit status."""
    # a shell without job control starts background jobs with SIGINT ignored, and Python then never
    # raises KeyboardInterrupt: give the run the disposition of a terminal, where Ctrl-C reaches it
    proc = subprocess.Popen(senclip_cmd(*args), env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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
    """One uninterrupted slow run per tool, to compare interrupted-then-resumed runs with."""
    import torch

    root = tmp_path_factory.mktemp("ref")
    refs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1): same kernels, same bytes
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OMP_NUM_THREADS", "1")  # which the commands' own thread setting keeps
            for tool in TOOLS:
                refs[tool] = root / f"ref-{tool}{SUFFIX[tool]}"
                assert main([str(a) for a in argv(tool, big, refs[tool], slow=True)]) == 0
    finally:
        torch.set_num_threads(threads)
    return refs


def same_result(tool: str, a: Path, b: Path) -> None:
    if tool == "embed":  # GeoParquet: compare the table (the file embeds the output name nowhere else)
        import pandas as pd

        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    else:
        assert a.read_bytes() == b.read_bytes()


# kill -9 of `map` is tests/mapping/test_resume.py; the other runs each get both signals
@pytest.mark.parametrize(("tool", "sig"), [("map", signal.SIGINT), ("embed", signal.SIGINT),
                                           ("embed", signal.SIGKILL), ("map-pixels", signal.SIGINT),
                                           ("map-pixels", signal.SIGKILL)])
def test_interrupted_then_rerun_is_identical(tool, sig, big, reference, tmp_path):
    out = tmp_path / f"out{SUFFIX[tool]}"
    status = interrupt_midway(argv(tool, big, out, slow=True), out, sig)
    assert status == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    assert not out.exists()
    again = senclip(argv(tool, big, out, slow=True))
    assert again.returncode == 0, again.stderr
    same_result(tool, out, reference[tool])
    assert leftovers(tmp_path, out) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_overwrite_replaces_and_finished_job_is_done(tool, big, tmp_path, capsys):
    out, fresh = tmp_path / f"out{SUFFIX[tool]}", tmp_path / "fresh" / f"out{SUFFIX[tool]}"
    out.write_text("someone else's file")
    status, err = in_process(argv(tool, big, out), capsys)
    assert status == 2 and "pass --overwrite" in err
    assert out.read_text() == "someone else's file"
    assert in_process(argv(tool, big, out, "--overwrite"), capsys)[0] == 0
    assert in_process(argv(tool, big, fresh), capsys)[0] == 0
    same_result(tool, out, fresh)
    stamp = out.stat().st_mtime_ns
    status, err = in_process(argv(tool, big, out), capsys)
    assert status == 0 and "done already" in err
    assert out.stat().st_mtime_ns == stamp
    status, err = in_process(argv(tool, big, out, *OTHER[tool]), capsys)  # another job, finished output
    assert status == 2 and "pass --overwrite" in err
    assert out.stat().st_mtime_ns == stamp


def _limit_file_size(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("tool", TOOLS)
def test_disk_full_keeps_the_previous_file(tool, big, tmp_path, capsys):
    out = tmp_path / f"out{SUFFIX[tool]}"
    assert in_process(argv(tool, big, out, *OTHER[tool]), capsys)[0] == 0
    before = md5(out)
    full = senclip(argv(tool, big, out, "--overwrite", slow=True), preexec_fn=_limit_file_size(4_096))
    err = [ln for ln in full.stderr.splitlines() if ln.strip()]
    assert full.returncode not in (0, 130) and len(err) == 1 and err[0].startswith("error: "), full.stderr
    assert md5(out) == before
    assert leftovers(tmp_path, out) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_two_processes_on_one_output(tool, big, tmp_path, capsys):
    out = tmp_path / f"out{SUFFIX[tool]}"
    lock = tmp_path / f".{out.name}.lock"
    first = subprocess.Popen(senclip_cmd(*argv(tool, big, out)), env=subprocess_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGSTOP)  # the first writer holds the output while the second one starts
    try:
        status, second = in_process(argv(tool, big, out), capsys)
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    err = [ln for ln in second.splitlines() if ln.strip()]
    assert status == 2 and len(err) == 1, second
    assert f"being written by another senclip process (pid {first.pid})" in err[0]
    assert out.is_file() and not lock.exists()
