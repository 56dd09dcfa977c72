"""text_classifier: ensembling maths, caching, fingerprints."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from senclip.errors import SenclipError
from senclip.prompts import clear_text_classifier_cache, prompts_fingerprint, text_classifier
from senclip.prompts.classifier import _CACHE

PROMPTS = {
    "Forest": ["a photo of a forest.", "dense tree crowns seen from above.", "a pine wood."],
    "River": ["a photo of a river."],
    "Highway": ["a motorway with cars.", "a long grey road across fields."],
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_text_classifier_cache()
    yield
    clear_text_classifier_cache()


class FakeModel:
    """Counts encode_text calls; embeddings are fixed random vectors per string (not normalised)."""

    def __init__(self, checkpoint=None, dim=8):
        self.text_tower = nn.Identity()
        self.checkpoint = checkpoint
        self.dim = dim
        self.calls = 0

    def describe(self):
        return {"model": "fake", "pretrained": None, "checkpoint": self.checkpoint}

    def encode_text(self, texts):
        self.calls += 1
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(sum(map(ord, t)) * 7919 + len(t))
            rows.append(torch.randn(self.dim, generator=g, dtype=torch.float64) * 3)
        return torch.stack(rows)


def test_ensemble_is_the_renormalised_mean_of_normalised_embeddings(tiny_vit):
    weights = text_classifier(tiny_vit, PROMPTS)
    assert weights.shape == (3, tiny_vit.encode_text(["x"]).shape[1])
    assert weights.dtype == torch.float32 and weights.device.type == "cpu"
    for row, ps in zip(weights, PROMPTS.values(), strict=True):
        by_hand = torch.zeros_like(row, dtype=torch.float64)
        for p in ps:  # one prompt at a time, so batching cannot hide a mistake
            e = tiny_vit.encode_text([p])[0].double()
            by_hand += e / e.norm()
        by_hand /= by_hand.norm()
        torch.testing.assert_close(row.double(), by_hand, atol=1e-5, rtol=1e-5)
    single = F.normalize(tiny_vit.encode_text(PROMPTS["Forest"][:1]).float(), dim=-1)[0]
    assert not torch.allclose(weights[0], single, atol=1e-3)  # really an ensemble
    torch.testing.assert_close(weights.norm(dim=-1), torch.ones(3))


def test_unnormalised_encoder_outputs_are_normalised_before_averaging():
    model = FakeModel()
    weights = text_classifier(model, PROMPTS)
    raw = model.encode_text(PROMPTS["Forest"])
    expected = F.normalize(F.normalize(raw, dim=-1).mean(0), dim=0).float()
    torch.testing.assert_close(weights[0], expected)
    assert not torch.allclose(weights[0], F.normalize(raw.mean(0), dim=0).float(), atol=1e-4)


def test_cache_returns_the_same_tensor_without_reencoding():
    model = FakeModel()
    first = text_classifier(model, PROMPTS)
    assert model.calls == 1
    again = text_classifier(model, {k: list(v) for k, v in PROMPTS.items()})
    assert again is first and model.calls == 1
    reordered = {k: PROMPTS[k] for k in ("River", "Forest", "Highway")}
    other = text_classifier(model, reordered)
    assert model.calls == 2 and other is not first
    torch.testing.assert_close(other[1], first[0])


def test_cache_keys_on_model_identity():
    model = FakeModel()
    first = text_classifier(model, PROMPTS)
    model.checkpoint = "trained.safetensors"  # describe() changes -> new entry
    text_classifier(model, PROMPTS)
    assert model.calls == 2
    twin = FakeModel()  # same describe(), different text tower object
    assert text_classifier(twin, PROMPTS) is not first and twin.calls == 1


def test_cache_entry_goes_away_with_the_model():
    model = FakeModel()
    text_classifier(model, PROMPTS)
    assert len(_CACHE) == 1
    del model
    gc.collect()
    assert len(_CACHE) == 0


def test_fingerprint_is_stable_and_order_sensitive():
    fp = prompts_fingerprint(PROMPTS)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == prompts_fingerprint({k: tuple(v) for k, v in PROMPTS.items()})
    assert fp != prompts_fingerprint({k: PROMPTS[k] for k in ("River", "Forest", "Highway")})
    assert fp != prompts_fingerprint({**PROMPTS, "Forest": PROMPTS["Forest"][::-1]})
    assert fp != prompts_fingerprint({**PROMPTS, "River": ["a photo of a river"]})
    assert prompts_fingerprint({"a": ["b", "c"]}) != prompts_fingerprint({"a": ["b, c"]})


@pytest.mark.parametrize(
    ("prompts", "expected"),
    [
        ({}, "prompt set is empty"),
        ({"Forest": []}, "empty prompt list"),
        ({"Forest": "a wood"}, "not one string"),
    ],
)
def test_bad_prompt_dicts(prompts, expected):
    with pytest.raises(SenclipError, match=expected):
        text_classifier(FakeModel(), prompts)
