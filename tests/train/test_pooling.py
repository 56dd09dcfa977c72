"""Ground-view pooling: masking, attention weights, equivalence at initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from senclip.models.pooling import AttnDimPooling, AttnImagePooling, AvgPooling, build_pooling


@pytest.fixture()
def views():
    torch.manual_seed(0)
    v = F.normalize(torch.randn(3, 5, 8), dim=-1)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    v[1, 1] = float("nan")  # a missing view may hold anything
    return v, mask


def test_avg_is_mean_of_available_views(views):
    v, mask = views
    out = AvgPooling()(v, mask)
    assert torch.allclose(out[1], F.normalize(v[1, [0, 2]].mean(0), dim=0), atol=1e-6)
    assert torch.allclose(out[2], v[2, 4], atol=1e-6)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize("name", ["attn-image", "attn-dim"])
def test_attention_starts_as_average_and_learns(views, name):
    v, mask = views
    pool = build_pooling(name, 8)
    assert torch.allclose(pool(v, mask), AvgPooling()(v, mask), atol=1e-6)
    with torch.no_grad():
        for p in pool.parameters():
            p.normal_()
    out = pool(v, mask)
    assert torch.isfinite(out).all()
    assert not torch.allclose(out[0], AvgPooling()(v, mask)[0], atol=1e-3)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pool.parameters())


def test_attention_weights_ignore_missing_views(views):
    v, mask = views
    img, dim = AttnImagePooling(8), AttnDimPooling(8)
    with torch.no_grad():
        for p in [*img.parameters(), *dim.parameters()]:
            p.normal_()
    clean = torch.where(mask.unsqueeze(-1), torch.nan_to_num(v), torch.zeros_like(v))
    w = img.weights(clean, mask)
    assert torch.allclose(w.sum(1), torch.ones(3))
    assert (w[~mask] == 0).all()
    wd = dim.weights(clean, mask)
    assert wd.shape == (3, 5, 8)
    assert torch.allclose(wd.sum(1), torch.ones(3, 8))
    assert (wd[~mask] == 0).all()
    # per-dimension weights differ across dimensions, per-image weights do not exist per dim
    assert not torch.allclose(wd[0, :, 0], wd[0, :, 1])


def test_no_view_gives_zero_and_bad_input_errors():
    v = torch.randn(1, 2, 4)
    mask = torch.zeros(1, 2, dtype=torch.bool)
    for name in ("avg", "attn-image", "attn-dim"):
        assert torch.equal(build_pooling(name, 4)(v, mask), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="unknown pooling"):
        build_pooling("max", 4)
    with pytest.raises(ValueError, match="expected views"):
        AvgPooling()(torch.randn(2, 4), mask)
