"""Losses and the target queue against small hand-computed examples."""

from __future__ import annotations

import math

import pytest
import torch

from senclip.losses import CosineLoss, InfoNCELoss, TargetQueue, gather_with_grad

E = math.e


def test_infonce_matches_hand_computation():
    # identity embeddings, T = 1: every row is CE([1, 0], 0) = log(1 + e^-1), both directions
    sat = torch.eye(2)
    loss = InfoNCELoss(init_temperature=1.0)(sat, sat.clone())
    assert loss.item() == pytest.approx(math.log(1 + 1 / E), abs=1e-6)


def test_infonce_non_trivial_example_and_temperature():
    # sat rows (1,0),(0,1); targets (0.6,0.8),(0.8,0.6); T = 0.5 -> scale 2
    sat = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tgt = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    # s->g logits: 2*[[0.6, 0.8], [0.8, 0.6]]; g->s logits are the transpose = the same matrix
    row0 = math.log(math.exp(1.2) + math.exp(1.6)) - 1.2
    row1 = math.log(math.exp(1.6) + math.exp(1.2)) - 1.2
    expected = (row0 + row1) / 2
    loss = InfoNCELoss(init_temperature=0.5)(sat, tgt)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_infonce_queue_negatives_enter_sat_to_ground_only():
    sat = torch.eye(2)
    queue = torch.tensor([[1.0, 0.0]])
    loss = InfoNCELoss(init_temperature=1.0)(sat, sat.clone(), negatives=queue)
    s2g = ((math.log(2 * E + 1) - 1) + (math.log(E + 2) - 1)) / 2  # rows [1,0,1] and [0,1,0]
    g2s = math.log(1 + 1 / E)
    assert loss.item() == pytest.approx((s2g + g2s) / 2, abs=1e-6)


def test_infonce_temperature_is_learnable_and_clamped():
    loss_fn = InfoNCELoss(init_temperature=0.07)
    assert loss_fn.temperature == pytest.approx(0.07, rel=1e-5)
    sat = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    loss_fn(sat, sat.roll(1, 0)).backward()
    assert loss_fn.log_scale.grad is not None and loss_fn.log_scale.grad.abs() > 0
    assert InfoNCELoss(init_temperature=0.001).scale.item() == pytest.approx(100.0)
    fixed = InfoNCELoss(init_temperature=0.007, learnable=False)
    assert not any(p.requires_grad for p in fixed.parameters())
    with pytest.raises(ValueError):
        InfoNCELoss(init_temperature=0.0)


def test_cosine_loss_hand_example():
    sat = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    tgt = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    expected = ((1 - 1 / math.sqrt(2)) + 0.0) / 2
    assert CosineLoss()(sat, tgt).item() == pytest.approx(expected, abs=1e-6)


def test_queue_fills_and_holds_last_k_targets():
    k, b, d = 12, 4, 3
    q = TargetQueue(k, d)
    assert q.negatives().shape == (0, d)
    seen = []
    for step in range(k // b):
        assert not q.is_full
        batch = torch.randn(b, d)
        # the current batch is not among the negatives it is scored against
        assert not any(torch.equal(row, neg) for row in batch for neg in q.negatives())
        q.enqueue(batch)
        seen.append(batch)
        assert q.negatives().shape[0] == (step + 1) * b
    assert q.is_full
    assert torch.equal(q.negatives(), torch.cat(seen))
    more = torch.randn(b, d)
    q.enqueue(more)  # FIFO: the oldest batch leaves
    assert torch.equal(q.negatives(), torch.cat([*seen[1:], more]))


def test_queue_wraps_when_size_is_not_a_multiple_and_keeps_state():
    q = TargetQueue(5, 1)
    for start in range(0, 12, 3):
        q.enqueue(torch.arange(start, start + 3, dtype=torch.float32).unsqueeze(1))
    assert q.negatives().squeeze(1).tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    q.enqueue(torch.arange(100, 108, dtype=torch.float32).unsqueeze(1))  # larger than the queue
    assert q.negatives().squeeze(1).tolist() == [103.0, 104.0, 105.0, 106.0, 107.0]
    copy = TargetQueue(5, 1)
    copy.load_state_dict(q.state_dict())  # queue content travels with checkpoints
    assert torch.equal(copy.negatives(), q.negatives())


def test_gather_without_process_group_is_identity():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x
