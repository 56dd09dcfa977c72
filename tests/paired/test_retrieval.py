"""Recall@k against hand-computed examples; the retrieval command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from senclip.data.manifest import read_manifest
from senclip.data.paired import read_chip
from senclip.evaluate.retrieval import average_views, match_ranks, recall_at_k, retrieval_report
from senclip.models.checkpoint import save_model

# cosines: query rows vs gallery rows
#   q0=[1,0]     : g0 .8   g1 1    g2 0    -> true .8, one better  -> rank 1
#   q1=[0,1]     : g0 .6   g1 0    g2 1    -> true 0,  two better  -> rank 2
#   q2=[.6,.8]   : g0 .96  g1 .6   g2 .8   -> true .8, one better  -> rank 1
Q = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
G = np.array([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]])


def test_recall_hand_computed():
    assert match_ranks(Q, G).tolist() == [1, 2, 1]
    assert recall_at_k(Q, G, ks=(1, 2, 3)) == {"R@1": 0.0, "R@2": pytest.approx(2 / 3), "R@3": 1.0}
    # scale does not matter (cosine), tensors and arrays both work
    assert recall_at_k(torch.tensor(Q * 7.0), G * 0.1, ks=(2,)) == {"R@2": pytest.approx(2 / 3)}
    # a perfect gallery
    assert recall_at_k(Q, Q, ks=(1,)) == {"R@1": 1.0}


def test_ties_count_for_the_query_and_report_both_directions():
    same = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert match_ranks(same, same).tolist() == [0, 0]
    # gallery→query: g0 vs q: .8 .6 .96 -> rank 1; g1: 1 0 .6 -> rank 2; g2: 0 1 .8 -> rank 1
    q = np.vstack([Q, [[0.0, -1.0]]])
    g = np.vstack([G, [[0.0, -1.0]]])
    rep = retrieval_report(q, g, ks=(1, 2))
    assert rep["n"] == 4
    assert rep["sat_to_ground"] == {"R@1": 0.25, "R@2": 0.75}
    assert rep["ground_to_sat"] == recall_at_k(g, q, ks=(1, 2))
    with pytest.raises(ValueError, match="both be"):
        recall_at_k(Q, G[:2])


def test_average_views_masks_missing():
    emb = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]],
                        [[0.0, 2.0], [9.0, 9.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out = average_views(emb, mask)
    torch.testing.assert_close(out, torch.tensor([[0.5 ** 0.5, 0.5 ** 0.5], [0.0, 1.0]]))


def test_cli_retrieval_matches_direct_computation(cli, tmp_path, shared_manifest, photo_cache, tiny_vit,
                                                  capsys):
    manifest_csv, cache = shared_manifest, photo_cache
    df = read_manifest(manifest_csv)
    ckpt = save_model(tiny_vit, tmp_path / "sat.safetensors", kind="image")
    out = tmp_path / "r.json"
    status = cli(["retrieval", "--model", "senclip-tiny-vit", "--checkpoint", str(ckpt),
                  "--manifest", str(manifest_csv), "--cache", str(cache.path), "--out", str(out),
                  "--workers", "0", "--batch-size", "4", "--no-progress"])
    assert status == 0, capsys.readouterr().err
    rep = json.loads(out.read_text())
    with torch.no_grad():
        sat = tiny_vit.image_tower(torch.stack([read_chip(p)["image"] for p in df["sat_path"]]))
    ground = average_views(*cache.lookup(list(df["point_id"])))
    expected = retrieval_report(sat, ground)
    assert rep["n"] == 10 and rep["skipped"] == 0
    for direction in ("sat_to_ground", "ground_to_sat"):
        assert rep[direction] == pytest.approx(expected[direction])
    assert rep["sat_to_ground"]["R@10"] == 1.0  # 10 points: every match is in the top 10
    assert rep["model"]["checkpoint"] == str(ckpt) and rep["cache_model"]["model"] == "senclip-tiny-vit"
    assert "sat->ground R@1=" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.partial"))


def test_cli_retrieval_dimension_mismatch(cli, tmp_path, manifest_csv, tiny_vit, capsys):
    from senclip.data.ground_cache import CacheWriter

    df = read_manifest(manifest_csv)
    meta = tiny_vit.describe() | {"preprocess": {}, "views": list("NESWP"), "dim": 7, "sources_sha256": ""}
    w = CacheWriter(tmp_path / "c7", meta, list(df["point_id"]))
    w.write(0, np.ones((10, 5, 7), np.float32), np.ones((10, 5), bool))
    w.finish()
    status = cli(["retrieval", "--model", "senclip-tiny-vit", "--manifest", str(manifest_csv),
                  "--cache", str(tmp_path / "c7"), "--out", str(tmp_path / "r.json"), "--workers", "0",
                  "--no-progress"])
    assert status == 2 and "holds 7-dim embeddings" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
