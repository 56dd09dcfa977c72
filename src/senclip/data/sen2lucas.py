"""Import Sen2LUCAS chips and the published frozen LUCAS ground embeddings.

Two published inputs let a user train without downloading the LUCAS photos:

* **Sen2LUCAS** (Zenodo record 14231252): one 100 x 100 Sentinel-2 RGB GeoTIFF
  per LUCAS 2018 point, stored as ``<CC>/<pointid>_….tif`` (``CC`` the
  country code), with a list of those relative paths (a text file, one path
  a line; a ``.npy`` array of strings is read too);
* **frozen embeddings** (``LUCAS_CLIP_Frozen_Embeddings/*.pt``): a
  ``torch.save`` dict keyed ``{CC}_{pointid}{N|E|S|W}``, each value a
  ``(1, D)`` tensor: the frozen CLIP image embedding of that point's photo
  looking north / east / south / west.

:func:`import_sen2lucas` writes a paired manifest (``manifest.csv``) and a
ground cache (``ground_cache/``, the format of ``senclip embed-ground``)
with the N/E/S/W slots filled from the ``.pt`` and P missing. The point id
is ``{CC}_{pointid}``, derived from the path as the reference data loader
does (first path component, file name up to the first ``_`` or ``.``).

Band order: the reference loader reads GeoTIFF bands ``[3, 2, 1]`` (1-based)
as R, G, B, i.e. the files hold B02, B03, B04 in bands 1..3. The manifest
records the file order in ``sat_bands`` (default ``B02,B03,B04``), and
:class:`senclip.data.paired.PairedDataset` picks the tower's bands by name,
so an RGB tower sees file bands 3, 2, 1 like the reference.

Embeddings are L2-normalised in the cache (its contract); their original
norms are kept in ``ground_cache/norms.npy`` (N, V) float32 for losses that
average raw views.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from senclip.data.ground_cache import CacheWriter, GroundCache, sha256_lines
from senclip.data.manifest import EUROPE_LAT, EUROPE_LON, PHOTO_COLUMNS, VIEWS, write_manifest
from senclip.errors import SenclipError
from senclip.outputs import atomic_path

EMBEDDED_VIEWS = ("N", "E", "S", "W")
"""Views the published frozen embeddings hold (no P, the point photo)."""
DEFAULT_CHIP_BANDS = ("B02", "B03", "B04")
"""File order of the Sen2LUCAS chip bands the reference loader assumes (it reads bands 3,2,1 as RGB)."""
NORMS = "norms.npy"
_SHOW_BAD = 3
_CHUNK = 4096


def read_path_list(path: str | Path) -> list[str]:
    """Relative chip paths from a text list (one a line) or a ``.npy`` array of strings."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SenclipError(f"paths list not found: {path}")
    try:
        if path.suffix.lower() == ".npy":
            items = [str(v) for v in np.load(path, allow_pickle=False).ravel()]
        else:
            items = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SenclipError(f"{path}: unreadable paths list ({type(exc).__name__})") from exc
    items = [s.strip() for s in items if s.strip() and not s.strip().startswith("#")]
    if not items:
        raise SenclipError(f"{path}: the paths list is empty")
    return items


def point_key(rel_path: str) -> tuple[str, str] | None:
    """``(CC, pointid)`` of a Sen2LUCAS path ``CC/pointid_….tif``; ``None`` if it has no such form."""
    parts = rel_path.replace("\\", "/").strip("/").split("/")
    if len(parts) < 2:
        return None
    cc, pid = parts[0], parts[-1].split(".")[0].split("_")[0]
    return (cc, pid) if cc and pid else None


def load_embeddings(path: str | Path) -> dict:
    """The frozen-embeddings dict, loaded with ``torch.load(weights_only=True)`` onto the CPU.

    Raises:
        SenclipError: missing or unreadable file, a pickle that needs code to load, not a dict.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise SenclipError(f"embeddings file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise SenclipError(f"{path}: refused to load (it holds objects other than tensors, which would "
                           "run code when unpickled); pass the published tensor dict") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SenclipError(f"{path}: unreadable embeddings file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:120] if str(exc) else 'truncated?'})") from exc
    if not isinstance(obj, dict) or not obj:
        raise SenclipError(f"{path}: expected a non-empty dict keyed '{{CC}}_{{pointid}}{{N|E|S|W}}', "
                           f"got {type(obj).__name__}")
    return obj


def _vector(value) -> np.ndarray | None:
    """A ``(1, D)`` or ``(D,)`` tensor as float32 ``(D,)`` (CPU); ``None`` for anything else."""
    import torch

    if not isinstance(value, torch.Tensor) or value.dim() not in (1, 2) or (value.dim() == 2
                                                                           and value.shape[0] != 1):
        return None
    return value.detach().reshape(-1).to(torch.float32).numpy()


def _chip_facts(path: str, n_bands: int) -> tuple[float, float] | str | None:
    """``(lat, lon)`` of the chip centre, ``None`` without georeferencing, or why the chip is unusable."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.warp import transform as warp

    if not os.path.isfile(path):
        return f"chip not found: {path}"
    try:
        with warnings.catch_warnings():  # a chip without georeferencing is handled below
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                count, crs, bounds = src.count, src.crs, src.bounds
                named = any(src.descriptions)
    except Exception as exc:  # rasterio raises several error types
        return f"chip unreadable ({type(exc).__name__}): {path}"
    if count != n_bands and not named:
        return f"chip has {count} bands, --chip-bands names {n_bands}: {path}"
    if crs is None:
        return None
    x, y = (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2
    lon, lat = (float(v[0]) for v in warp(crs, "EPSG:4326", [x], [y]))
    return round(lat, 7), round(lon, 7)


_LAT_LON = (("lat", "lon"), ("TH_LAT", "TH_LONG"), ("GPS_LAT", "GPS_LONG"))


def read_points(path: str | Path) -> dict[str, tuple[float, float]]:
    """LUCAS point id -> ``(lat, lon)`` from a CSV with ``point_id``/``POINT_ID`` and
    ``lat``/``lon``, ``TH_LAT``/``TH_LONG`` or ``GPS_LAT``/``GPS_LONG`` (the first pair present)."""
    path = Path(path).expanduser()
    try:
        df = pd.read_csv(path, dtype=str)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SenclipError(f"{path}: unreadable points table ({type(exc).__name__})") from exc
    idcol = next((c for c in ("point_id", "POINT_ID") if c in df.columns), None)
    pair = next((p for p in _LAT_LON if all(c in df.columns for c in p)), None)
    if idcol is None or pair is None:
        raise SenclipError(f"{path}: a points table needs point_id (or POINT_ID) and lat/lon "
                           "(or TH_LAT/TH_LONG, GPS_LAT/GPS_LONG) columns")
    lat, lon = (pd.to_numeric(df[c], errors="coerce") for c in pair)
    return {str(p).strip(): (float(a), float(b)) for p, a, b in zip(df[idcol], lat, lon, strict=True)
            if not (np.isnan(a) or np.isnan(b))}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _describe(bad: Sequence[dict]) -> str:
    return "; ".join(f"line {b['line']} point {b['point_id']!r}: {', '.join(b['problems'])}" for b in bad)


def import_sen2lucas(chips: str | Path, paths: str | Path, embeddings: str | Path, out: str | Path,
                     chip_bands: Sequence[str] = DEFAULT_CHIP_BANDS, skip_bad: bool = False,
                     dim: int | None = None, progress: bool = True,
                     points: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``out/manifest.csv`` and ``out/ground_cache/`` from Sen2LUCAS chips and frozen embeddings.

    Args:
        chips: the Sen2LUCAS root (holds the ``<CC>/`` folders).
        paths: list of chip paths relative to ``chips`` (text, one a line, or ``.npy``).
        embeddings: the frozen-embeddings ``.pt`` dict.
        out: output folder.
        chip_bands: band names of the chip files, in file order (see the module text).
        skip_bad: drop bad rows (reported on stderr) instead of failing.
        dim: expected embedding size (default: the most common size in the file).
        progress: show a tqdm bar while chips are checked.
        points: optional CSV of LUCAS point coordinates (see :func:`read_points`); a point
            found there takes its ``lat``/``lon`` from it, others from the chip centre.

    A row is bad when its path has no ``CC/pointid`` form, repeats a point, its chip is
    missing, unreadable, has another band count, has no georeferencing and is not in
    ``points``, or one of its four
    keys is absent from the embeddings or holds a vector of the wrong size, non-finite or zero.

    Returns:
        ``(manifest_path, cache_dir)``.

    Raises:
        SenclipError: unreadable inputs; bad rows without ``skip_bad`` (nothing is written).
    """
    import logging

    from tqdm import tqdm

    log = logging.getLogger(__name__)
    chips, out = Path(chips).expanduser(), Path(out)
    chip_bands = tuple(b.strip() for b in chip_bands if b.strip())
    if not chip_bands:
        raise SenclipError("--chip-bands is empty; give the chip files' band names in file order")
    if not chips.is_dir():
        raise SenclipError(f"chips folder not found: {chips}")
    rel_paths = read_path_list(paths)
    where = read_points(points) if points else {}
    table = load_embeddings(embeddings)
    vectors = {k: _vector(v) for k, v in table.items() if isinstance(k, str)}
    if dim is None:
        sizes = Counter(len(v) for v in vectors.values() if v is not None)
        if not sizes:
            raise SenclipError(f"{embeddings}: no (1, D) tensors found")
        dim = sizes.most_common(1)[0][0]

    rows, bad, seen = [], [], set()
    for line, rel in enumerate(tqdm(rel_paths, disable=not progress, desc="import-sen2lucas", unit="point"),
                               start=1):
        key = point_key(rel)
        pid = f"{key[0]}_{key[1]}" if key else rel
        problems = []
        if key is None:
            problems.append("path is not of the form <CC>/<pointid>_….tif")
        elif pid in seen:
            problems.append("duplicate point")
        seen.add(pid)
        views = []
        for v in EMBEDDED_VIEWS:
            vec = vectors.get(f"{pid}{v}")
            if f"{pid}{v}" not in table:
                problems.append(f"key {pid}{v} absent from the embeddings")
            elif vec is None or len(vec) != dim:
                shape = tuple(getattr(table[f"{pid}{v}"], "shape", ()))
                problems.append(f"key {pid}{v} has shape {shape}, expected (1, {dim})")
            elif not np.all(np.isfinite(vec)) or not np.any(vec):
                problems.append(f"key {pid}{v} is zero or not finite")
            views.append(vec)
        sat = os.path.join(chips, rel)
        facts = _chip_facts(sat, len(chip_bands))
        if isinstance(facts, str):
            problems.append(facts)
        elif key is not None and key[1] in where:
            facts = where[key[1]]
        elif facts is None:
            problems.append(f"chip has no georeferencing and the point is not in --points, so its "
                            f"lat/lon are unknown: {sat}")
        if problems:
            bad.append({"line": line, "point_id": pid, "problems": problems})
            continue
        lat, lon = facts
        rows.append({"point_id": pid, "lat": lat, "lon": lon, "sat_path": os.path.abspath(sat),
                     "views": np.stack(views), "country": key[0], "lucas_point": key[1], "list_path": rel})
    if bad and not skip_bad:
        more = f" … and {len(bad) - _SHOW_BAD} more" if len(bad) > _SHOW_BAD else ""
        raise SenclipError(f"{paths}: {len(bad)} bad row{'s' * (len(bad) != 1)} (first: "
                           f"{_describe(bad[:_SHOW_BAD])}{more}); fix them or pass --skip-bad")
    for b in bad:
        log.warning("%s: skipping %s", paths, _describe([b]))
    if not rows:
        raise SenclipError(f"{paths}: no usable rows ({len(bad)} bad)")
    outside = sum(not (EUROPE_LAT[0] <= r["lat"] <= EUROPE_LAT[1]
                       and EUROPE_LON[0] <= r["lon"] <= EUROPE_LON[1]) for r in rows)
    if outside:
        log.warning("%d chip centre(s) lie outside Europe; check the chips' georeferencing", outside)

    ids = [r["point_id"] for r in rows]
    emb_path = Path(embeddings).expanduser()
    meta = {"model": f"frozen embeddings {emb_path.name}", "pretrained": None, "checkpoint": None,
            "preprocess": {"kind": "imported-embeddings", "source": emb_path.name,
                           "sha256": _file_sha256(emb_path), "normalised": "L2, on import"},
            "views": list(VIEWS), "dim": int(dim),
            "sources_sha256": sha256_lines([[r["point_id"] + v for v in EMBEDDED_VIEWS] for r in rows]),
            "note": "Sen2LUCAS import: N/E/S/W from the published frozen embeddings, P missing"}
    writer = CacheWriter(out / "ground_cache", meta, ids)
    slots = [VIEWS.index(v) for v in EMBEDDED_VIEWS]
    norms = np.zeros((len(rows), len(VIEWS)), dtype=np.float32)
    while not writer.complete:
        start = writer.rows_done
        stop = min(start + _CHUNK, len(rows))
        emb = np.zeros((stop - start, len(VIEWS), dim), dtype=np.float32)
        mask = np.zeros((stop - start, len(VIEWS)), dtype=bool)
        for i in range(start, stop):
            raw = rows[i]["views"].astype(np.float64)
            n = np.linalg.norm(raw, axis=1)
            norms[i, slots] = n
            emb[i - start, slots] = (raw / n[:, None]).astype(np.float32)
            mask[i - start, slots] = True
        writer.write(start, emb, mask)
    with atomic_path(writer.path / NORMS) as tmp, open(tmp, "wb") as f:
        np.save(f, norms)
    cache: GroundCache = writer.finish()
    df = pd.DataFrame({
        "point_id": ids, "lat": [r["lat"] for r in rows], "lon": [r["lon"] for r in rows], "date": "",
        "sat_path": [r["sat_path"] for r in rows], "sat_bands": ",".join(chip_bands),
        **{c: "" for c in PHOTO_COLUMNS}, "embedded_views": True,
        "country": [r["country"] for r in rows], "lucas_point": [r["lucas_point"] for r in rows],
        "list_path": [r["list_path"] for r in rows],
    })
    manifest = write_manifest(df, out / "manifest.csv")
    return manifest, cache.path
