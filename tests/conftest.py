"""Shared fixtures: offline guard, the real data in ../shared/data, tiny models."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# set before anything imports huggingface_hub, which reads it once at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SENCLIP_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never reach the internet: connections to non-loopback hosts fail."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and self.family in (socket.AF_INET, socket.AF_INET6):
            if not (host.startswith("127.") or host in ("localhost", "::1")):
                raise OSError(f"network access blocked in tests: {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared test data not found at {SHARED_DATA} (set SENCLIP_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def eurosat_rgb(shared_data) -> Path:
    return shared_data / "eurosat_rgb"


@pytest.fixture(scope="session")
def bigearthnet_root(shared_data) -> Path:
    return shared_data / "bigearthnet_s2_example"


@pytest.fixture(scope="session")
def eopatch_root(shared_data) -> Path:
    return shared_data / "eolearn_test_eopatch"


@pytest.fixture(scope="session")
def tiny_vit():
    """A randomly initialised tiny ViT CLIP (64 px input), seeded."""
    import torch

    from senclip.models import create_model

    torch.manual_seed(0)
    return create_model("senclip-tiny-vit")


@pytest.fixture(scope="session")
def tiny_rn():
    import torch

    from senclip.models import create_model

    torch.manual_seed(0)
    return create_model("senclip-tiny-rn")
