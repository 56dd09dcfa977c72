"""senclip.outputs on its own: the claim rule, the job record, the lock and atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from senclip.errors import SenclipError
from senclip.outputs import Plan, atomic_path, claim, lock_path, record_path


def _plan(tmp_path, **kw) -> Plan:
    return Plan("test", outputs=kw.pop("outputs", [tmp_path / "out.txt"]),
                inputs=kw.pop("inputs", [tmp_path / "in.txt"]), options=kw.pop("options", {"a": 1}), **kw)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("input")
    return path


def test_same_file_in_every_spelling_is_refused(tmp_path, src):
    (tmp_path / "sym").symlink_to(src)
    (tmp_path / "hard").hardlink_to(src)
    (tmp_path / "d").mkdir()
    for alias in (src, tmp_path / "sym", tmp_path / "hard", tmp_path / "d" / ".." / "in.txt"):
        with pytest.raises(SenclipError, match="is the input"):
            claim(_plan(tmp_path, outputs=[alias]))
    with pytest.raises(SenclipError, match="two outputs are the same file"):
        claim(_plan(tmp_path, outputs=[tmp_path / "a", tmp_path / "d" / ".." / "a"]))
    assert src.read_text() == "input"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "hard", "in.txt", "sym"]


def test_existing_output_done_resumed_or_refused(tmp_path, src):
    out = tmp_path / "out.txt"
    plan = _plan(tmp_path)
    with claim(plan) as job:
        assert not job.done
        job.start()
        out.write_text("result")
        job.finish()
    with claim(plan) as job:  # the same job again: done, nothing to do
        assert job.done
    with claim(plan, overwrite=True) as job:  # --overwrite redoes it
        assert not job.done
    with pytest.raises(SenclipError, match="pass --overwrite"):
        claim(_plan(tmp_path, options={"a": 2}))  # another job
    src.write_text("changed input")  # the same options on a changed input are another job too
    with pytest.raises(SenclipError, match="pass --overwrite"):
        claim(plan)
    src.write_text("input")
    os.utime(src, ns=(0, 0))
    with pytest.raises(SenclipError, match="pass --overwrite"):
        claim(plan)


def test_unfinished_run_of_the_same_job_resumes(tmp_path, src):
    out = tmp_path / "out.txt"
    plan = _plan(tmp_path, outputs=[out, tmp_path / "side.json"])
    with claim(plan) as job:
        job.start()
        (tmp_path / "side.json").write_text("{}")  # killed after the first of two outputs
    with claim(plan) as job:
        assert not job.done  # resumes: its own side file is not a stranger
    out.write_text("edited by hand after a finished run")
    with pytest.raises(SenclipError, match="pass --overwrite"):
        claim(_plan(tmp_path, options={"b": 1}))


def test_folder_outputs(tmp_path, src):
    folder = tmp_path / "run"
    plan = Plan("test", folders=[folder], inputs=[src])
    with claim(plan) as job:
        job.start()
        (folder / "ckpt").write_text("x")
        job.finish()
    assert record_path(plan) == folder / ".senclip.json"
    with claim(plan) as job:
        assert job.done
    with pytest.raises(SenclipError, match="pass --overwrite"):
        claim(Plan("test", folders=[folder], inputs=[src], options={"other": True}))
    shared = Plan("test", shared=[folder], inputs=[src], options={"other": True})
    with claim(shared) as job:  # a shared folder is filled by many jobs
        assert not job.done


def test_failed_run_leaves_nothing(tmp_path, src):
    plan = _plan(tmp_path, outputs=[tmp_path / "new" / "deeper" / "out.txt"])
    with claim(plan) as job:
        job.start()
        job.abandon()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_atomic_path_keeps_the_previous_file(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("previous")
    with pytest.raises(OSError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    assert out.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"


_HOLDER = """
import sys, time
from senclip.outputs import Plan, claim
job = claim(Plan("test", outputs=[sys.argv[1]]))
print("held", flush=True)
time.sleep(120)
"""


def test_lock_refuses_a_second_writer_and_a_dead_owner_is_taken_over(tmp_path):
    plan = Plan("test", outputs=[tmp_path / "out.txt"])
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "out.txt")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SenclipError, match=f"another senclip process \\(pid {holder.pid}\\)"):
            claim(plan)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(plan).exists()  # kill -9 left its lock file behind
    deadline = time.monotonic() + 10
    while True:  # the kernel released the dead owner's lock: the file is taken over
        try:
            job = claim(plan)
            break
        except SenclipError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert lock_path(plan).read_text() == str(os.getpid())
    job.release()
    assert not lock_path(plan).exists()
