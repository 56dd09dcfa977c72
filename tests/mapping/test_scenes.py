"""Many scenes: --inputs list in one process, and over a Dask LocalCluster (loopback)."""

from __future__ import annotations

import json

import pytest
from mapping_helpers import write_raster

from senclip.cli import main
from senclip.mapping.mapper import MapOptions
from senclip.mapping.scenes import ClassifierSpec, MapJob, ModelSpec, map_many


@pytest.fixture
def scene_list(tmp_path, mosaic):
    second = write_raster(tmp_path / "second.tif", mosaic["data"][:, :128, :], ["B04", "B03", "B02"])
    lst = tmp_path / "scenes.txt"
    lst.write_text(f"# two scenes\n{mosaic['path']}\n\n{second}\n")
    return lst


def test_inputs_list_maps_each_scene_and_skips_done(capsys, tmp_path, scene_list, tiny_vit_file):
    out_dir = tmp_path / "maps"
    argv = ["map", "--inputs", str(scene_list), "--out-dir", str(out_dir), "--model", "senclip-tiny-vit",
            "--pretrained", str(tiny_vit_file), "--no-progress", "--prompts", "generic", "--no-quicklook"]
    assert main(argv) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["output"] for r in first] == [str(out_dir / "mosaic.tif"), str(out_dir / "second.tif")]
    assert all(r["tiles"] in (16, 8) for r in first)
    assert main(argv) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r.get("skipped") for r in again)


def test_dask_local_cluster_gives_same_maps(tmp_path, scene_list, tiny_vit_file):
    from distributed import LocalCluster

    job = MapJob(ModelSpec("senclip-tiny-vit", str(tiny_vit_file)), ClassifierSpec(prompts="generic"),
                 MapOptions(progress=False, quicklook=False))
    inputs = [ln for ln in scene_list.read_text().splitlines() if ln and not ln.startswith("#")]
    local = map_many(job, inputs, tmp_path / "local", progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        distributed = map_many(job, inputs, tmp_path / "dask", scheduler=cluster.scheduler_address,
                               progress=False)
    assert [r.get("error") for r in distributed] == [None, None]
    for a, b in zip(local, distributed, strict=True):
        assert open(a["output"], "rb").read() == open(b["output"], "rb").read()


def test_dask_scheduler_unreachable(capsys, tmp_path, scene_list, tiny_vit_file, monkeypatch):
    monkeypatch.setattr("senclip.cluster.CONNECT_TIMEOUT", "1s")
    status = main(["map", "--inputs", str(scene_list), "--out-dir", str(tmp_path / "m"), "--model",
                   "senclip-tiny-vit", "--pretrained", str(tiny_vit_file), "--no-progress",
                   "--dask-scheduler", "tcp://127.0.0.1:9"])
    assert status == 2 and "Dask scheduler" in capsys.readouterr().err
