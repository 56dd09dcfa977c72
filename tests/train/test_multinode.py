"""Multi-node DDP through ``senclip train``: two single-device "nodes" on this machine.

Each node is a separate process started the way a cluster launcher starts
one (Lightning's ``LightningEnvironment``: ``MASTER_ADDR``, ``MASTER_PORT``,
``NODE_RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``), with the gloo backend on CPU.
The child runs the ``senclip.cli`` module as ``__main__`` (what ``python -m
senclip.cli`` does) under a spy that records the files the process writes
(``sys.addaudithook``) and dumps the trained weights of its rank.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch
from train_helpers import tiny_config

from senclip.train.config import dump_config

STEPS, BATCH, WORLD = 4, 8, 2

CHILD = textwrap.dedent("""
    import json, os, runpy, sys

    import torch

    dump = os.environ["SENCLIP_TEST_DUMP"]
    watched = os.environ["SENCLIP_TEST_WATCH"]
    writes = []

    def audit(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path, mode, flags = os.fsdecode(args[0]), args[1], args[2] or 0
            writing = any(c in (mode or "") for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if writing and path.startswith(watched):
                writes.append(path)
        elif event in ("os.rename", "os.remove") and os.fsdecode(args[0]).startswith(watched):
            writes.append(f"{event}:{os.fsdecode(args[0])}")

    sys.addaudithook(audit)

    import senclip.train.run as run

    real_fit = run.fit

    def spy_fit(*args, **kwargs):
        summary = real_fit(*args, **kwargs)
        recorded = list(writes)  # not the spy's own files
        rank = summary["global_rank"]
        state = {k: v.detach().cpu() for k, v in summary["module"].state_dict().items()}
        torch.save(state, f"{dump}/weights_rank{rank}.pt")
        # what is left of the process group once fit returned: nothing may run into interpreter exit
        threads = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
        import torch.distributed as dist
        with open(f"{dump}/writes_rank{rank}.json", "w") as f:
            json.dump({"writes": recorded, "world_size": summary["world_size"], "threads": threads,
                       "group_alive": dist.is_initialized()}, f)
        return summary

    run.fit = spy_fit
    sys.argv = ["senclip", *sys.argv[1:]]
    runpy.run_module("senclip.cli", run_name="__main__", alter_sys=True)
""")

# launcher variables that would make Lightning pick another cluster environment
FOREIGN_ENV = ("SLURM_", "TORCHELASTIC_", "OMPI_", "PMI_", "PMIX_", "LSB_", "JSM_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_env(node_rank: int, port: int, dump: Path, watch: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(FOREIGN_ENV) and k not in ("RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE")}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK=str(node_rank), LOCAL_RANK="0",
               WORLD_SIZE=str(WORLD), OMP_NUM_THREADS="1", SENCLIP_TEST_DUMP=str(dump),
               SENCLIP_TEST_WATCH=str(watch), PYTHONWARNINGS="ignore")
    return env


def _launch_two_nodes(config: Path, tmp: Path, timeout: float = 180) -> list[tuple[int, str, str]]:
    """Start both nodes, wait for them; ``(returncode, stdout, stderr)`` per node.

    When one node fails, the other (which would wait for it forever) is
    killed after a grace period; nothing outlives the call.
    """
    port = _free_port()
    cmd = [sys.executable, "-c", CHILD, "train", "--config", str(config), "--trainer.accelerator", "cpu",
           "--trainer.devices", "1", "--trainer.num_nodes", str(WORLD), "--trainer.strategy", "ddp",
           "--no-progress"]
    procs, logs = [], []
    for node in range(WORLD):
        cwd = tmp / f"cwd{node}"  # each "node" in its own working directory: nothing may land there
        cwd.mkdir()
        logs.append((tmp / f"node{node}.out", tmp / f"node{node}.err"))
        with open(logs[-1][0], "w") as out, open(logs[-1][1], "w") as err:
            procs.append(subprocess.Popen(cmd, cwd=cwd, env=_node_env(node, port, tmp, tmp), stdout=out,
                                          stderr=err))
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):  # a failed node: the other cannot finish
                deadline = min(deadline, time.monotonic() + 20)
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    return [(p.returncode, o.read_text(), e.read_text()) for p, (o, e) in zip(procs, logs, strict=True)]


def _expected_queue(cfg, state: dict) -> torch.Tensor:
    """Targets of the last global batch: rank 0's shard, then rank 1's (StepBatchSampler)."""
    from senclip.models.pooling import build_pooling
    from senclip.train.data import PairedDataModule, StepBatchSampler, collate

    dm = PairedDataModule(cfg)
    dm.setup("fit")
    ds = dm.train_dataset
    pooling = build_pooling(cfg.model.pooling, 128)  # the tiny ViT's embedding size
    pooling.load_state_dict({k[len("pooling."):]: v for k, v in state.items() if k.startswith("pooling.")})
    parts = []
    for rank in range(WORLD):
        sampler = StepBatchSampler(len(ds), BATCH, cfg.trainer.seed, rank, WORLD, start_batch=STEPS - 1)
        batch = collate([ds[i] for i in next(iter(sampler))])
        with torch.no_grad():
            parts.append(pooling(batch["ground"].float(), batch["ground_mask"].bool()))
    return torch.cat(parts)


def test_two_nodes_through_cli_train_like_one_ddp_job(tiny_pairs, tmp_path):
    out = tmp_path / "run"
    # queue of one global batch (2 ranks x 8), so the final queue is exactly the last global batch
    cfg = tiny_config(tiny_pairs, out, **{"trainer.max_steps": STEPS, "loss.queue_size": BATCH * WORLD})
    config = dump_config(cfg, tmp_path / "config.yaml")

    results = _launch_two_nodes(config, tmp_path)
    for node, (code, stdout, stderr) in enumerate(results):
        assert code == 0, f"node {node} exited with {code}:\n{stderr[-3000:]}"
        assert f"trained to step {STEPS} (rank {node} of {WORLD})" in stdout, stdout

    # the run directory: one config, one log version, the checkpoints; nothing in the nodes' cwd
    assert (out / "config.yaml").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt", f"step={STEPS}.ckpt"]
    assert [p.name for p in (out / "logs").iterdir()] == ["version_0"]
    assert not list(tmp_path.glob("cwd*/*"))
    assert not list(out.rglob("*.partial")) and not list(out.rglob("*.tmp"))

    # only rank 0 writes (config.yaml once, metrics); rank 1 opens no file for writing
    # (torch.save opens its files in C++, unseen by the audit hook; Lightning saves checkpoints on rank 0)
    w0, w1 = (json.loads((tmp_path / f"writes_rank{r}.json").read_text()) for r in range(WORLD))
    assert w0["world_size"] == w1["world_size"] == WORLD
    # fit closed the process group on every rank: no gloo worker/socket thread, no TCPStore server
    # thread is left to be torn down during interpreter shutdown (a rare SIGABRT at exit)
    for w in (w0, w1):
        assert not w["group_alive"]
        assert not [t for t in w["threads"] if "gloo" in t or "tcpstore" in t], w["threads"]
    assert w1["writes"] == []
    assert sum(w.endswith("config.yaml.partial") for w in w0["writes"] if w.startswith("os.rename:")) == 1
    assert any(w.endswith("metrics.csv") for w in w0["writes"])  # the spy sees rank 0's writes

    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == STEPS
    assert ckpt["hyper_parameters"]["config"]["trainer"]["num_nodes"] == WORLD
    state = ckpt["state_dict"]

    # DDP: both ranks end with the same weights, which are the checkpoint's
    r0, r1 = (torch.load(tmp_path / f"weights_rank{r}.pt", weights_only=True) for r in range(WORLD))
    assert r0.keys() == r1.keys() == state.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.equal(r0[k], state[k]), k
    # ... and they trained: the trunk moved away from the base weights
    from senclip.models import create_model

    base = create_model(cfg.model.name, pretrained=cfg.model.pretrained).image_tower.state_dict()
    shared = [k for k in base if f"image_tower.{k}" in r0]
    moved = [k for k in shared if not torch.allclose(base[k], r0[f"image_tower.{k}"])]
    assert len(shared) > 10 and len(moved) > len(shared) // 2, (len(shared), len(moved))

    # 2 ranks, each with its own shard, gathered in rank order: the queue holds the last global batch
    queue = state["queue.items"]
    assert int(state["queue.filled"]) == BATCH * WORLD
    expected = _expected_queue(cfg, state)
    assert torch.allclose(queue, expected, atol=1e-6)
    assert len(torch.unique(queue, dim=0)) == BATCH * WORLD  # the ranks saw different points
