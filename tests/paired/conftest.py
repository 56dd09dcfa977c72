"""Paired-data fixtures: small manifests whose chips and stand-in photos are real EuroSAT JPEGs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from senclip.data.manifest import PHOTO_COLUMNS, write_manifest

MY_COMMANDS = ["senclip.commands.embed_ground", "senclip.commands.proxy_pairs", "senclip.commands.retrieval"]


@pytest.fixture
def cli(monkeypatch):
    """``senclip.cli.main`` with only this area's commands registered (independent of other areas)."""
    import senclip.cli

    monkeypatch.setattr(senclip.cli, "COMMANDS", MY_COMMANDS)
    return senclip.cli.main


@pytest.fixture(scope="session")
def jpgs(eurosat_rgb) -> list[Path]:
    """40 real EuroSAT JPEGs, 4 of each class, in a fixed order."""
    root = eurosat_rgb / "valid"
    out = []
    for cls in sorted(p.name for p in root.iterdir()):
        out += sorted((root / cls).glob("*.jpg"))[:4]
    return out


def paired_frame(jpgs: list[Path], n: int = 10) -> pd.DataFrame:
    """``n`` points in Europe: chip = jpgs[i], photos = other JPEGs, some views missing.

    Point ``i`` lacks view ``i % 5``, and points 3 and 7 have only their ``P`` photo.
    """
    rows = []
    for i in range(n):
        photos = {c: str(jpgs[(i * 3 + v + 1) % len(jpgs)]) for v, c in enumerate(PHOTO_COLUMNS)}
        photos[PHOTO_COLUMNS[i % 5]] = ""
        if i in (3, 7):
            photos = {c: "" for c in PHOTO_COLUMNS} | {"photo_P": str(jpgs[i + 20])}
        rows.append({"point_id": f"pt{i:03d}", "lat": 45.0 + i * 0.5, "lon": 5.0 + i * 0.25,
                     "date": "2018-06-01", "sat_path": str(jpgs[i]), **photos, "label": i % 3,
                     "lc1": "B11"})
    return pd.DataFrame(rows)


@pytest.fixture
def frame(jpgs):
    """``frame(n)``: :func:`paired_frame` over the session's JPEGs."""
    return lambda n=10: paired_frame(jpgs, n)


@pytest.fixture
def manifest_csv(tmp_path, jpgs) -> Path:
    return write_manifest(paired_frame(jpgs), tmp_path / "manifest.csv")


@pytest.fixture(scope="session")
def shared_manifest(tmp_path_factory, jpgs) -> Path:
    """A 10-point manifest shared by read-only tests."""
    return write_manifest(paired_frame(jpgs), tmp_path_factory.mktemp("paired") / "manifest.csv")


@pytest.fixture(scope="session")
def photo_cache(shared_manifest, tiny_vit):
    """The ground cache of ``shared_manifest`` built once with ``tiny_vit`` (batch size 10); read only."""
    from senclip.data.ground_cache import build_ground_cache
    from senclip.data.manifest import read_manifest

    return build_ground_cache(read_manifest(shared_manifest), tiny_vit, shared_manifest.parent / "cache",
                              batch_size=10, progress=False)
