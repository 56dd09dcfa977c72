"""A loopback STAC API (rustac serve) over the COGs of senclip.testing.areas, for the area tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from senclip.testing import RangeServerProcess, StacServer
from senclip.testing.areas import build_area_catalogue


@dataclass
class AreaStac:
    url: str
    root: Path
    cogs: RangeServerProcess

    @property
    def assets(self) -> Path:
        return self.root / "assets"


@pytest.fixture(scope="session")
def area_stac(tmp_path_factory) -> AreaStac:
    root = tmp_path_factory.mktemp("area_stac")
    (root / "assets").mkdir()
    cogs = RangeServerProcess(root / "assets").start()
    files = build_area_catalogue(root, cogs.url())
    stac = StacServer(files).start()
    yield AreaStac(stac.url, root, cogs)
    stac.stop()
    cogs.stop()


@pytest.fixture
def cogs(area_stac):
    """The COG server with faults cleared before and after the test."""
    area_stac.cogs.faults.clear()
    yield area_stac.cogs
    area_stac.cogs.faults.clear()


@pytest.fixture(scope="session")
def tiny_vit_file(tmp_path_factory, tiny_vit):
    """The session's tiny ViT saved as a full senclip checkpoint (as tests/mapping does)."""
    from senclip.models import save_model

    return save_model(tiny_vit, tmp_path_factory.mktemp("model") / "tiny-vit.safetensors", kind="full")


@pytest.fixture(scope="session")
def tiny_timesen_file(tmp_path_factory, tiny_vit):
    """A tiny time-series tower on bands B04, B08 (Sentinel-2 DN, scale 1e-4)."""
    import torch

    from senclip.models import save_model
    from senclip.models.timesen import TimeSenConfig, build_timesen_model

    cfg = TimeSenConfig(
        bands=("B04", "B08"),
        embed_dim=128,
        width=32,
        layers=2,
        heads=4,
        mlp_dim=64,
        dropout=0.0,
        scale=(1e-4, 1e-4),
        mean=(0.07, 0.27),
        std=(0.03, 0.1),
    )
    torch.manual_seed(5)
    model = build_timesen_model(tiny_vit, cfg)
    return save_model(model, tmp_path_factory.mktemp("timesen") / "timesen.safetensors")


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    """One intra-op thread, as the mapping tests (the commands keep OMP_NUM_THREADS)."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
