"""Two gloo processes on CPU: gathered negatives, gradients and the queue under DDP."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from senclip.losses import InfoNCELoss, TargetQueue, gather_with_grad

B, D, K, STEPS = 3, 4, 9, 4


def _data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of a step (2 ranks x B rows), identical in every process."""
    gen = torch.Generator().manual_seed(step)
    sat = torch.nn.functional.normalize(torch.randn(2 * B, D, generator=gen), dim=-1)
    tgt = torch.nn.functional.normalize(torch.randn(2 * B, D, generator=gen), dim=-1)
    return sat, tgt


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        loss_fn, queue = InfoNCELoss(0.1), TargetQueue(K, D)
        record = {"losses": [], "grads": [], "gathered": []}
        for step in range(STEPS):
            sat, tgt = _data(step)
            local = sat[rank * B:(rank + 1) * B].clone().requires_grad_(True)
            sat_all = gather_with_grad(local)
            tgt_all = gather_with_grad(tgt[rank * B:(rank + 1) * B])
            loss = loss_fn(sat_all, tgt_all, queue.negatives())
            loss.backward()
            queue.enqueue(tgt_all)
            record["losses"].append(loss.item())
            record["grads"].append(local.grad.clone())
            record["gathered"].append(sat_all.detach().clone())
        record["queue"] = queue.negatives().clone()
        torch.save(record, f"{out}/rank{rank}.pt")
        dist.barrier()  # no rank closes its connections (rank 0: the store) while a peer is in a collective
    finally:
        dist.destroy_process_group()
    # the group is gone, its threads joined: none is left to be torn down during interpreter exit
    # (the gathers used to keep the group alive, and the process then aborted now and then at exit)
    with open(f"{out}/threads{rank}.txt", "w") as f:
        f.write("\n".join(_thread_names()))


def _thread_names() -> list[str]:
    return sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gloo_gather_and_queue_match_single_process(tmp_path):
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for r in (0, 1):
        threads = (tmp_path / f"threads{r}.txt").read_text().split()
        assert not [t for t in threads if "gloo" in t or "tcpstore" in t], threads
    loss_fn, queue = InfoNCELoss(0.1), TargetQueue(K, D)
    for step in range(STEPS):
        sat, tgt = _data(step)
        # every rank sees the global batch, in rank order, as negatives
        assert torch.allclose(r0["gathered"][step], sat) and torch.allclose(r1["gathered"][step], sat)
        ref_sat = sat.clone().requires_grad_(True)
        ref = loss_fn(ref_sat, tgt, queue.negatives())
        ref.backward()
        queue.enqueue(tgt)
        assert abs(r0["losses"][step] - ref.item()) < 1e-5 and abs(r1["losses"][step] - ref.item()) < 1e-5
        # each rank's rows get the gradients of both ranks' losses; after DDP's averaging over the
        # 2 ranks, that is exactly the single-process gradient of the global batch
        assert torch.allclose(torch.cat([r0["grads"][step], r1["grads"][step]]) / 2, ref_sat.grad, atol=1e-6)
    # the queue filled with the last K global targets and is identical on both ranks
    assert r0["queue"].shape == (K, D)
    assert torch.equal(r0["queue"], r1["queue"])
    assert torch.allclose(r0["queue"], queue.negatives())
    last = torch.cat([_data(s)[1] for s in range(STEPS)])[-K:]
    assert torch.allclose(r0["queue"], last)
