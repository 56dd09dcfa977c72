"""The loopback file server (senclip.testing) and an isolated cache for every download test."""

from __future__ import annotations

import pytest

from senclip.testing import RangeServer


@pytest.fixture()
def http_server():
    """Serves ``files[path] -> bytes``; answers are logged as (path, Range header, bytes sent)."""
    with RangeServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own SENCLIP_CACHE and no user registry."""
    monkeypatch.setenv("SENCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SENCLIP_REGISTRY", raising=False)
    monkeypatch.delenv("SENCLIP_OFFLINE", raising=False)
    monkeypatch.setenv("SENCLIP_DOWNLOAD_TIMEOUT", "5")
