"""The tower registry: kinds are found by listing, cost no torch, and a new kind needs no other edits."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from senclip.errors import SenclipError
from senclip.models import kinds
from senclip.models.kinds import TowerKind, get_kind, kind_of, register_tower, tower_kinds


def test_builtin_kinds_and_their_inputs(tiny_vit):
    assert tower_kinds()[:2] == ["clip-visual", "timesen"]
    assert get_kind("clip-visual").input == "image" and get_kind("timesen").input == "series"
    assert kind_of(tiny_vit.image_tower).name == "clip-visual"
    with pytest.raises(SenclipError, match="unknown tower kind 'nope'; known: clip-visual, timesen"):
        get_kind("nope")
    with pytest.raises(ValueError, match="input must be image or series"):
        TowerKind("bad", input="text", build=print, load=print)


def test_training_config_lists_the_kinds_without_importing_torch():
    code = ("import sys; from senclip.train.config import load_config; "
            "c = load_config(None, ['model.tower=timesen']); "
            "print(c.model.tower, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["timesen", "False"]


class PixelMLP(nn.Module):
    """A made-up series tower: mean over the valid months, then a linear map."""

    tower_kind = "test-pixel-mlp"

    def __init__(self, bands, dim: int) -> None:
        super().__init__()
        self.bands, self.dim = tuple(bands), dim
        self.proj = nn.Linear(len(self.bands), dim)
        self.head = nn.Identity()

    def forward(self, x, normalize: bool = True):
        out = self.head(self.proj(torch.nan_to_num(x).mean(dim=1)))
        return nn.functional.normalize(out, dim=-1) if normalize else out


@pytest.fixture
def pixel_mlp_kind():
    kind = register_tower(TowerKind(
        "test-pixel-mlp", input="series",
        build=lambda cfg, base, dim: PixelMLP(cfg.bands, dim),
        load=lambda model, header: PixelMLP(header["bands"], header["tower_config"]["dim"]),
        config=lambda tower: {"dim": tower.dim}, same_arch=False))
    yield kind
    kinds._KINDS.pop(kind.name)


def test_a_new_kind_trains_saves_loads_and_maps_from_its_registration(pixel_mlp_kind, tiny_vit, tmp_path):
    from senclip.mapping.pixels import PixelMapper
    from senclip.models import create_model, read_metadata, save_model
    from senclip.models.model import SenCLIP
    from senclip.train.config import load_config
    from senclip.models.kinds import build_tower

    cfg = load_config(None, ["model.tower=test-pixel-mlp", "model.bands=NDVI,B08"])
    base = create_model("senclip-tiny-vit")
    tower = build_tower(cfg.model, base)
    assert isinstance(tower, PixelMLP) and base.image_tower is tower and tower.dim == 128
    path = save_model(base, tmp_path / "mlp.safetensors")
    header = read_metadata(path)
    assert header["tower"] == "test-pixel-mlp" and header["tower_config"] == {"dim": 128}
    loaded = create_model("senclip-tiny-vit", checkpoint=path)
    x = torch.rand(4, 12, 2)
    torch.testing.assert_close(loaded.encode_image(x), base.encode_image(x))
    model = SenCLIP(tiny_vit.name, loaded.image_tower, tiny_vit.text_tower, tiny_vit.logit_scale)
    assert PixelMapper(model, {"forest": ["a forest"], "water": ["a lake"]}).classes == ["forest", "water"]
    with pytest.raises(SenclipError, match="time-series model"):
        PixelMapper(tiny_vit, {"forest": ["a forest"]})
