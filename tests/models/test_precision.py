"""Reduced precision: the choice of ``auto``, bf16 agreeing with fp32, the trimmed text context."""

from __future__ import annotations

import pytest
import torch

from senclip.errors import SenclipError
from senclip.models import create_model
from senclip.models import precision as P

EUROSAT_VALID = "/work/shared/data/eurosat_rgb/valid"


@pytest.fixture
def cpu_flags(monkeypatch):
    def set_flags(*flags):
        monkeypatch.setattr(P, "cpu_flags", lambda: frozenset(flags))
    return set_flags


def test_auto_picks_bf16_only_on_cpus_with_native_bf16(cpu_flags):
    cpu_flags("avx512f", "avx512_bf16", "avx512_vnni")
    assert P.resolve_precision("auto", "cpu") == ("bf16", "auto: CPU has avx512_bf16")
    cpu_flags("avx512f", "amx_bf16", "amx_tile")
    assert P.resolve_precision("auto", "cpu")[0] == "bf16"
    cpu_flags("avx2", "fma")
    assert P.resolve_precision("auto", "cpu")[0] == "fp32"
    assert P.resolve_precision("fp16", "cpu") == ("fp16", "requested")  # asked for: allowed


def test_unknown_precision_is_one_line():
    with pytest.raises(SenclipError, match="unknown precision 'half'"):
        P.resolve_precision("half", "cpu")


def test_cpu_flags_of_this_machine_are_read():
    # Linux exposes /proc/cpuinfo: the flags are read (every x86-64 CPU reports sse2)
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert "sse2" in P.cpu_flags()


@pytest.mark.parametrize("name", ["senclip-tiny-vit", "senclip-tiny-rn-quickgelu", "ViT-B-32"])
def test_trimmed_text_context_equals_open_clip(name):
    """The text tower cuts the context at the last end-of-text token: same embeddings as open_clip."""
    torch.manual_seed(0)
    model = create_model(name)
    texts = ["a photo of a wheat field", "x",
             "an aerial view of a residential area with many houses, gardens and streets seen from above"]
    tokens = model.tokenizer(texts)
    with torch.no_grad():
        ours = model.text_tower(tokens, normalize=False)
        ref = model.text_tower.clip.encode_text(tokens, normalize=False)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() <= 1e-5 * max(1.0, ref.abs().max().item())


def _eurosat_slice(tmp_path, per_class: int, first: bool = False):
    """A folder of links to ``per_class`` EuroSAT validation images of each class: the last files
    (a slice no test tunes on), or the first ones (``first``)."""
    import os
    from pathlib import Path

    for folder in sorted(Path(EUROSAT_VALID).iterdir()):
        (tmp_path / folder.name).mkdir(parents=True)
        files = sorted(folder.glob("*.jpg"))
        for f in files[:per_class] if first else files[-per_class:]:
            os.symlink(f, tmp_path / folder.name / f.name)
    return tmp_path


def _zero_shot_in(name: str, precision: str, data, state: dict | None = None):
    """(embeddings, zero-shot predictions) of ``data`` by model ``name`` with weights ``state``."""
    from senclip.evaluate.embeddings import encode_dataset
    from senclip.prompts import load_prompts, text_classifier

    torch.manual_seed(0)
    model = create_model(name)
    if state is not None:
        model.load_state_dict(state)
    model.eval().set_precision(precision)
    emb = torch.from_numpy(encode_dataset(model, data, workers=0, progress=False))
    weights = text_classifier(model, load_prompts("generic", data.classes, "eurosat"))
    return emb, (emb @ weights.T).argmax(dim=1)


def test_bf16_zero_shot_predictions_agree_with_fp32(tmp_path):
    """bf16 and fp32 give the same zero-shot class on >= 99.5% of a held-out EuroSAT slice (tiny
    ViT, seeded random weights), and the embeddings agree to the documented tolerance."""
    from senclip.data import get_dataset

    data = get_dataset("eurosat", _eurosat_slice(tmp_path, 80), bands="B04,B03,B02")
    emb32, pred32 = _zero_shot_in("senclip-tiny-vit", "fp32", data)
    emb16, pred16 = _zero_shot_in("senclip-tiny-vit", "bf16", data)
    assert emb16.dtype == torch.float32
    assert len(pred32.unique()) >= 3  # not a constant prediction, which would agree trivially
    agree = (pred32 == pred16).float().mean().item()
    cosine = torch.nn.functional.cosine_similarity(emb32, emb16).min().item()
    assert agree >= 0.995, f"bf16 vs fp32 predictions agree on {agree:.3%}"
    assert cosine >= 0.998  # the documented embedding tolerance (docs/performance.md)


def test_bf16_resnet_stays_close_to_fp32(tmp_path):
    """The tiny ResNet's bf16 trunk (weights cast, channels-last) against fp32, once its batch-norm
    statistics are estimated on real images: a random ResNet's own statistics (mean 0, variance 1)
    give every image the same embedding (cosine 0.99998 to their mean), where any comparison of
    predictions is empty. With real statistics the embeddings spread (cosine 0.59 to their mean,
    9 classes predicted) and bf16 is measurably less exact than for a ViT: here minimum cosine
    0.9966 and 97.75 % of 400 zero-shot classes the same (docs/performance.md; the trained
    quickstart ResNet: 0.9988, 99.56 %). These bounds guard against a broken reduced path (a
    wrong layout or dtype gives cosines near 0), not the ViT's tolerance."""
    from senclip.data import get_dataset

    torch.manual_seed(0)
    model = create_model("senclip-tiny-rn")
    calib = get_dataset("eurosat", _eurosat_slice(tmp_path / "calib", 20, first=True), bands="B04,B03,B02")
    for bn in (m for m in model.image_tower.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.reset_running_stats()
        bn.momentum = None  # a plain average over the calibration batch
    model.image_tower.train()
    with torch.no_grad():
        model.image_tower(torch.stack([calib[i]["image"] for i in range(len(calib))]))
    state = model.state_dict()
    data = get_dataset("eurosat", _eurosat_slice(tmp_path / "test", 40), bands="B04,B03,B02")
    emb32, pred32 = _zero_shot_in("senclip-tiny-rn", "fp32", data, state)
    emb16, pred16 = _zero_shot_in("senclip-tiny-rn", "bf16", data, state)
    spread = torch.nn.functional.cosine_similarity(emb32, emb32.mean(0, keepdim=True)).mean().item()
    assert spread < 0.9 and len(pred32.unique()) >= 3
    assert torch.nn.functional.cosine_similarity(emb32, emb16).min().item() >= 0.98
    assert (pred32 == pred16).float().mean().item() >= 0.95


def test_precision_is_part_of_the_model_identity():
    """Caches and result files are keyed by precision: bf16 embeddings never pass for fp32 ones."""
    model = create_model("senclip-tiny-vit")
    fp32 = model.describe()
    model.set_precision("bf16")
    assert fp32["precision"] == "fp32" and model.describe()["precision"] == "bf16"


def test_reduced_weights_are_not_passed_off_as_fp32():
    """A trunk whose weights were rounded to bf16 refuses to run as fp32 (its results would not be
    fp32's) and keeps its recorded precision."""
    model = create_model("senclip-tiny-vit")
    model.set_precision("bf16")
    with pytest.raises(ValueError, match="build the model again"):
        model.set_precision("fp32")
    assert model.describe()["precision"] == "bf16"
    model.set_precision("bf16")  # the same precision again is fine


def test_runtime_set_up_respects_the_user(monkeypatch):
    """The commands' allocator set-up stands aside when the user set glibc's own variables."""
    import sys

    from senclip.commands.common import available_cores, configure_runtime, keep_buffers_in_heap

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert keep_buffers_in_heap() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert keep_buffers_in_heap() is True
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert configure_runtime() == 1  # OMP_NUM_THREADS is the user's: kept
    finally:
        torch.set_num_threads(before)
    assert 1 <= available_cores()
