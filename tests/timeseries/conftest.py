"""Fixtures for the time-series tests: the real eo-learn patch as raw arrays and a tiny tower."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest


@pytest.fixture(scope="session")
def eopatch_arrays(eopatch_root):
    """NDVI (T, H, W), cloud mask (T, H, W) and dates of the real EOPatch, read with plain NumPy."""
    ndvi = np.load(eopatch_root / "data" / "NDVI.npy")[..., 0]
    clm = np.load(eopatch_root / "mask" / "CLM.npy")[..., 0]
    stamps = json.loads((eopatch_root / "timestamps.json").read_text())
    dates = [dt.date.fromisoformat(t[:10]) for t in stamps]
    return ndvi, clm, dates


@pytest.fixture(scope="session")
def ndvi_tower_config():
    from senclip.models.timesen import TimeSenConfig

    return TimeSenConfig(bands=("NDVI",), embed_dim=128, width=32, layers=2, heads=4, mlp_dim=64,
                         dropout=0.0, mean=(0.5,), std=(0.25,))
