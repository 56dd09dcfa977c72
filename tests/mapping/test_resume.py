"""Resume: an interrupted map continues and ends byte-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from senclip.mapping.mapper import MapOptions, map_scene
from senclip.mapping.store import RowStore, partial_dir


def test_interrupted_run_resumes_identically(tiny_vit, mosaic, probe, tmp_path, monkeypatch):
    opts = MapOptions(stride=32, batch_size=4, progress=False, quicklook=False,
                      probabilities=str(tmp_path / "p_ref.tif"))
    ref = tmp_path / "ref.tif"
    map_scene(tiny_vit, probe, str(mosaic["path"]), ref, opts)

    out = tmp_path / "out.tif"
    opts = MapOptions(stride=32, batch_size=4, progress=False, quicklook=False,
                      probabilities=str(tmp_path / "p_out.tif"))
    real_write = RowStore.write_row

    def crash_after_3(self, row, **values):
        if row == 3:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the scene
        real_write(self, row, **values)

    monkeypatch.setattr(RowStore, "write_row", crash_after_3)
    with pytest.raises(KeyboardInterrupt):
        map_scene(tiny_vit, probe, str(mosaic["path"]), out, opts)
    assert not out.exists()
    state = json.loads((partial_dir(out) / "state.json").read_text())
    assert state["rows_done"] == 3
    monkeypatch.setattr(RowStore, "write_row", real_write)
    res = map_scene(tiny_vit, probe, str(mosaic["path"]), out, opts)
    assert res["resumed_rows"] == 3
    assert out.read_bytes() == ref.read_bytes()
    assert (tmp_path / "p_out.tif").read_bytes() == (tmp_path / "p_ref.tif").read_bytes()
    assert not partial_dir(out).exists()


def _cmd(model_file, src, out):
    return [sys.executable, "-m", "senclip.cli", "map", str(src), str(out), "--model", "senclip-tiny-vit",
            "--pretrained", str(model_file), "--stride", "32", "--batch-size", "1", "--workers", "1",
            "--no-progress", "--device", "cpu", "--prompts", "generic"]


def test_kill_9_then_rerun_gives_identical_file(tiny_vit_file, mosaic, tmp_path):
    from senclip.mapping.classify import zeroshot_classifier
    from senclip.models import create_model

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    ref = tmp_path / "ref.tif"  # uninterrupted run, in this process (one torch thread, as the CLI runs)
    model = create_model("senclip-tiny-vit", pretrained=str(tiny_vit_file))
    model.set_precision("auto")  # as the CLI's default --precision auto
    map_scene(model, zeroshot_classifier(model, "eurosat", "generic"), str(mosaic["path"]), ref,
              MapOptions(stride=32, batch_size=1, workers=1, progress=False))

    out = tmp_path / "out.tif"
    state = partial_dir(out) / "state.json"
    proc = subprocess.Popen(_cmd(tiny_vit_file, mosaic["path"], out), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            rows = json.loads(state.read_text())["rows_done"]
        except (OSError, ValueError, KeyError):
            rows = 0
        if rows >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists() and 2 <= rows < 8
    done = subprocess.run(_cmd(tiny_vit_file, mosaic["path"], out), check=True, env=env,
                          capture_output=True, text=True)
    assert json.loads(done.stdout.strip().splitlines()[-1])["resumed_rows"] >= 2
    assert out.read_bytes() == ref.read_bytes()
