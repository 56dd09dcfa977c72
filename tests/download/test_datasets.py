"""ensure_dataset / `senclip download`: archives built from ../shared/data, served over loopback."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from senclip.cli import main
from senclip.data import download as dl
from senclip.data import get_dataset
from senclip.errors import DatasetNotFoundError, SenclipError

CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
           "PermanentCrop", "Residential", "River", "SeaLake"]
MS_NESTED = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"


def eurosat_zip(eurosat_rgb: Path, per_class: int = 1) -> bytes:
    """EuroSAT.zip as released (2750/<Class>/<Class>_<n>.jpg), a few real images per class."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for cls in CLASSES:
            for img in sorted((eurosat_rgb / "train" / cls).glob("*.jpg"))[:per_class]:
                zf.write(img, f"2750/{cls}/{img.name}")
    return buf.getvalue()


def eurosat_ms_zip() -> bytes:
    """EuroSATallBands.zip layout with one small 13-band uint16 GeoTIFF per class."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for cls in CLASSES:
            mem = io.BytesIO()
            profile = dict(driver="GTiff", width=16, height=16, count=13, dtype="uint16",
                           crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10))
            with rasterio.MemoryFile() as mf:
                with mf.open(**profile) as ds:
                    ds.write(rng.integers(0, 4000, (13, 16, 16), dtype=np.uint16))
                mem.write(mf.read())
            zf.writestr(f"{MS_NESTED}/{cls}/{cls}_1.tif", mem.getvalue())
    return buf.getvalue()


def bigearthnet_tar(root: Path, patches: list[str]) -> bytes:
    """BigEarthNet-S2-v1.0.tar.gz layout (BigEarthNet-v1.0/<patch>/...) from real patches."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for p in patches:
            tf.add(root / p, arcname=f"BigEarthNet-v1.0/{p}")
    return buf.getvalue()


@pytest.fixture()
def serve(http_server, monkeypatch):
    """Serve an archive for a dataset; the recorded spec points at the loopback URL."""

    def _serve(name: str, payload: bytes, md5: str | None = "auto", served: bytes | None = None):
        spec = dl.get_spec(name)
        path = f"/{spec.filename}"
        http_server.files[path] = payload if served is None else served
        md5 = hashlib.md5(payload).hexdigest() if md5 == "auto" else md5
        new = dataclasses.replace(spec, urls=(http_server.url(path),), md5=md5)
        monkeypatch.setitem(dl.DATASET_SPECS, spec.name, new)
        return path

    return _serve


def test_eurosat_download_true_then_idempotent(serve, http_server, eurosat_rgb, tmp_path):
    path = serve("eurosat", eurosat_zip(eurosat_rgb))
    root = tmp_path / "eurosat"
    ds = get_dataset("eurosat", root, download=True)
    assert len(ds) == 10 and sorted(ds.labels.tolist()) == list(range(10))
    assert ds[3]["image"].shape == (3, 64, 64)
    marker = json.loads((root / ".senclip-eurosat.json").read_text())
    assert marker["md5"] == hashlib.md5(http_server.files[path]).hexdigest()
    assert not list(root.glob(".senclip-extract-*")) and not list(root.glob("*.partial"))
    # rerun: nothing fetched, nothing extracted again
    assert main(["download", "eurosat", "--root", str(root), "--no-progress"]) == 0
    get_dataset("eurosat", root, download=True)
    assert len(http_server.requests_for(path)) == 1


def test_cli_download_with_mirror_and_delete_archive(serve, http_server, eurosat_rgb, tmp_path, capsys):
    payload = eurosat_zip(eurosat_rgb)
    serve("eurosat", payload)
    http_server.files["/mirror/EuroSAT.zip"] = payload
    root = tmp_path / "e"
    assert main(["download", "eurosat", "--root", str(root), "--no-progress", "--delete-archive",
                 "--url", http_server.url("/gone/EuroSAT.zip"),  # 404: the next location is tried
                 "--url", http_server.url("/mirror/EuroSAT.zip")]) == 0
    assert len(http_server.requests_for("/gone/EuroSAT.zip")) == 1
    assert "verified" in capsys.readouterr().out
    assert len(http_server.requests_for("/mirror/EuroSAT.zip")) == 1
    assert not (root / "EuroSAT.zip").exists()
    assert len(list((root / "2750").rglob("*.jpg"))) == 10


def test_corrupted_archive_rejected_and_removed(serve, eurosat_rgb, tmp_path, capsys):
    good = eurosat_zip(eurosat_rgb)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x55
    serve("eurosat", good, served=bytes(bad))
    root = tmp_path / "eurosat"
    assert main(["download", "eurosat", "--root", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checksum mismatch for EuroSAT.zip: md5") and err.count("\n") == 1
    assert sorted(p.name for p in root.iterdir()) == []  # no archive, no partial, no data
    with pytest.raises(DatasetNotFoundError):
        get_dataset("eurosat", root)


def test_corrupt_archive_without_checksum_fails_integrity(serve, eurosat_rgb, tmp_path):
    good = eurosat_zip(eurosat_rgb)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x55  # inside a stored JPEG: caught by the member's CRC-32
    serve("eurosat", bytes(bad), md5=None)
    root = tmp_path / "eurosat"
    with pytest.raises(SenclipError, match="is corrupt"):
        dl.ensure_dataset("eurosat", root, progress=False)
    assert list(root.iterdir()) == []


def test_interrupted_extraction_is_not_taken_as_complete(serve, eurosat_rgb, tmp_path, monkeypatch):
    serve("eurosat", eurosat_zip(eurosat_rgb))
    root = tmp_path / "eurosat"
    real_extract = zipfile.ZipFile.extract
    calls = {"n": 0}

    def dying_extract(self, member, path=None, pwd=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user hits Ctrl-C mid-extraction
        return real_extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", dying_extract)
    with pytest.raises(KeyboardInterrupt):
        dl.ensure_dataset("eurosat", root, progress=False)
    assert not (root / "2750").exists() and not dl.is_complete(root, "eurosat")
    with pytest.raises(DatasetNotFoundError):
        get_dataset("eurosat", root)
    monkeypatch.setattr(zipfile.ZipFile, "extract", real_extract)
    dl.ensure_dataset("eurosat", root, progress=False)  # reuses the archive, redoes the extraction
    assert len(get_dataset("eurosat", root)) == 10
    assert not list(root.glob(".senclip-extract-*"))


def test_eurosat_ms_layout(serve, tmp_path):
    serve("eurosat-ms", eurosat_ms_zip())
    root = tmp_path / "ms"
    ds = get_dataset("eurosat-ms", root, download=True, transforms=None)
    assert len(ds) == 10 and ds[0]["image"].shape[0] == 13


def test_bigearthnet_tar_gz(serve, bigearthnet_root, tmp_path):
    patches = sorted(p.name for p in bigearthnet_root.iterdir() if p.is_dir())[:2]
    serve("bigearthnet-s2", bigearthnet_tar(bigearthnet_root, patches))
    root = tmp_path / "ben"
    assert main(["download", "bigearthnet-s2", "--root", str(root), "--no-progress"]) == 0
    ds = get_dataset("bigearthnet", root, nomenclature=43)
    assert len(ds) == 2
    for i, patch in enumerate(ds.paths):
        name = Path(patch).name
        meta = json.loads((bigearthnet_root / name / f"{name}_labels_metadata.json").read_text())
        assert sorted(ds.classes[j] for j in np.flatnonzero(ds.labels[i])) == sorted(meta["labels"])


def test_offline_fails_before_creating_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SENCLIP_OFFLINE", "1")
    root = tmp_path / "eurosat"
    assert main(["download", "eurosat", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SENCLIP_OFFLINE=1" in err and f"copy EuroSAT.zip into {root}" in err
    assert not root.exists()


def test_unknown_dataset_name():
    with pytest.raises(SenclipError, match="no download recorded for dataset 'lucas'"):
        dl.get_spec("lucas")
