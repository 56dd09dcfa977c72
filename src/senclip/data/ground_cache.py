"""Ground-embedding cache: every ground photo encoded once by the frozen CLIP.

A cache is a directory::

    meta.json        key and facts: model, pretrained, checkpoint, preprocess,
                     views, dim, dtype, n, point_ids_sha256, sources_sha256,
                     complete
    point_ids.json   the N point ids, in row order
    embeddings.npy   (N, V, D) float32, L2-normalised; zeros where a view is missing
    mask.npy         (N, V) bool, True where the view exists
    progress.json    {"rows_done": k}: rows flushed so far (resume marker)
    norms.npy        optional (N, V) float32: each view's norm before L2 normalisation
                     (written by import-sen2lucas), for poolings of raw views

The ``.npy`` files are opened as memory maps, so training reads only the
rows of its batch. :func:`build_ground_cache` flushes the arrays after each
chunk of points and then advances ``rows_done`` (atomically), so a run that
is killed resumes where it stopped; with the same batch size the finished
cache is byte-identical to one built in a single run. A directory built with
another model, preprocessing, point list or photo list is never overwritten:
the builder stops with a :class:`~senclip.errors.SenclipError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from senclip.errors import SenclipError
from senclip.outputs import write_text

FORMAT_VERSION = 1
META, IDS, EMB, MASK, PROGRESS = ("meta.json", "point_ids.json", "embeddings.npy", "mask.npy",
                                  "progress.json")
NORMS = "norms.npy"
_FILES = {META, IDS, EMB, MASK, PROGRESS, NORMS}
KEY_FIELDS = ("model", "pretrained", "checkpoint", "preprocess", "views", "dim", "dtype",
              "point_ids_sha256", "sources_sha256")
"""Fields of ``meta.json`` that must match for a rerun to reuse or resume a cache."""


def sha256_lines(items: Sequence) -> str:
    """sha256 hex of the items' JSON forms, one per line (stable cache keys)."""
    h = hashlib.sha256()
    for item in items:
        h.update(json.dumps(item, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def _write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True))


class GroundCache:
    """Read access to a finished (or, on request, partial) cache directory.

    Attributes:
        path: the directory.
        meta: the contents of ``meta.json``.
        point_ids: ids in row order.
        embeddings: ``(N, V, D)`` float32 memory map.
        mask: ``(N, V)`` bool memory map.
    """

    def __init__(self, path: Path, meta: dict, point_ids: list[str]) -> None:
        self.path = Path(path)
        self.meta = meta
        self.point_ids = point_ids
        self._row = {pid: i for i, pid in enumerate(point_ids)}
        self._emb: np.memmap | None = None
        self._mask: np.memmap | None = None

    @classmethod
    def open(cls, path: str | Path, allow_incomplete: bool = False) -> GroundCache:
        """Open the cache in directory ``path``.

        Raises:
            SenclipError: not a cache, or unfinished (unless ``allow_incomplete``).
        """
        path = Path(path).expanduser()
        if not (path / META).is_file():
            raise SenclipError(f"{path}: not a ground-embedding cache (no {META}); "
                               "build one with `senclip embed-ground` or `senclip proxy-pairs`")
        try:
            meta = json.loads((path / META).read_text())
            point_ids = json.loads((path / IDS).read_text())
        except (OSError, ValueError) as exc:
            raise SenclipError(f"{path}: corrupt ground cache ({exc})") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise SenclipError(f"{path}: cache format {meta.get('format_version')} is not supported "
                               f"(expected {FORMAT_VERSION}); rebuild it")
        if not meta.get("complete") and not allow_incomplete:
            raise SenclipError(f"{path}: ground cache is unfinished; rerun the command that built it "
                               "to resume")
        return cls(path, meta, point_ids)

    def _maps(self) -> tuple[np.memmap, np.memmap]:
        if self._emb is None:
            self._emb = np.load(self.path / EMB, mmap_mode="r")
            self._mask = np.load(self.path / MASK, mmap_mode="r")
        return self._emb, self._mask

    @property
    def embeddings(self) -> np.memmap:
        return self._maps()[0]

    @property
    def mask(self) -> np.memmap:
        return self._maps()[1]

    @property
    def norms(self) -> np.memmap | None:
        """``(N, V)`` norms of the views before normalisation (``norms.npy``), or ``None``."""
        if getattr(self, "_norms", None) is None and (self.path / NORMS).is_file():
            self._norms = np.load(self.path / NORMS, mmap_mode="r")
        return getattr(self, "_norms", None)

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def views(self) -> list[str]:
        return list(self.meta["views"])

    def __len__(self) -> int:
        return len(self.point_ids)

    def __contains__(self, point_id: str) -> bool:
        return point_id in self._row

    def rows(self, point_ids: Sequence[str]) -> np.ndarray:
        """Row index of each id; a :class:`SenclipError` names the first missing one."""
        try:
            return np.array([self._row[p] for p in point_ids], dtype=np.int64)
        except KeyError as exc:
            missing = [p for p in point_ids if p not in self._row]
            raise SenclipError(f"{len(missing)} point(s) not in ground cache {self.path} "
                               f"(first: {missing[0]!r}); build the cache from this manifest") from exc

    def lookup(self, point_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``(N, V, D)`` float32 and mask ``(N, V)`` bool of the given points."""
        idx = self.rows(point_ids)
        emb, mask = self._maps()
        return np.asarray(emb[idx], dtype=np.float32), np.asarray(mask[idx], dtype=bool)

    def __getstate__(self) -> dict:
        # memory maps are reopened in each DataLoader worker instead of being pickled
        return self.__dict__ | {"_emb": None, "_mask": None, "_norms": None}


def ground_norm(cache: GroundCache, row: int) -> dict:
    """``{"ground_norm": (V,) float32}``, the views' norms before normalisation, when the cache has
    them (``norms.npy``); else ``{}``. A sample field for poolings of raw views."""
    norms = cache.norms
    if norms is None:
        return {}
    import torch

    return {"ground_norm": torch.from_numpy(np.array(norms[row], dtype=np.float32))}


class CacheWriter:
    """Creates or resumes a cache directory and writes rows into it.

    Args:
        path: cache directory.
        meta: key fields (see :data:`KEY_FIELDS`) plus free facts.
        point_ids: ids in row order.
    """

    def __init__(self, path: str | Path, meta: dict, point_ids: Sequence[str]) -> None:
        self.path = Path(path).expanduser()
        self.point_ids = list(point_ids)
        n, v, d = len(self.point_ids), len(meta["views"]), int(meta["dim"])
        self.meta = meta | {"format_version": FORMAT_VERSION, "n": n, "dtype": "float32",
                            "point_ids_sha256": sha256_lines(self.point_ids)}
        self.shape = (n, v, d)
        self.rows_done = self._open_or_create()

    def _check_existing(self, old: dict) -> None:
        diff = [k for k in KEY_FIELDS if old.get(k) != self.meta.get(k)]
        if diff:
            what = ", ".join(f"{k}={old.get(k)!r}" if k in ("model", "pretrained", "dim") else k
                             for k in diff)
            raise SenclipError(f"{self.path} holds a ground cache built differently ({what}); "
                               "choose another output directory or delete it")

    def _open_or_create(self) -> int:
        p = self.path
        if (p / META).is_file():
            self._check_existing(json.loads((p / META).read_text()))
            progress = json.loads((p / PROGRESS).read_text())
            self.emb = np.load(p / EMB, mmap_mode="r+")
            self.mask = np.load(p / MASK, mmap_mode="r+")
            return int(progress["rows_done"])
        if p.exists() and not p.is_dir():
            raise SenclipError(f"{p} exists and is not a directory; choose another output directory")
        if p.is_dir():
            strangers = [f.name for f in p.iterdir() if f.name.removesuffix(".partial") not in _FILES]
            if strangers:
                raise SenclipError(f"{p} is not empty and not a ground cache ({strangers[0]}, …); "
                                   "choose another output directory")
        p.mkdir(parents=True, exist_ok=True)
        _write_json(p / IDS, self.point_ids)
        self.emb = np.lib.format.open_memmap(p / EMB, mode="w+", dtype=np.float32, shape=self.shape)
        self.mask = np.lib.format.open_memmap(p / MASK, mode="w+", dtype=bool, shape=self.shape[:2])
        self.emb.flush()
        self.mask.flush()
        _write_json(p / PROGRESS, {"rows_done": 0})
        _write_json(p / META, self.meta | {"complete": False})  # last: marks a resumable cache
        return 0

    @property
    def complete(self) -> bool:
        return self.rows_done >= self.shape[0]

    def write(self, start: int, emb: np.ndarray, mask: np.ndarray) -> None:
        """Write rows ``start .. start+len(emb)``, flush, and advance the resume marker."""
        stop = start + len(emb)
        if start != self.rows_done:
            raise ValueError(f"rows must be written in order: expected {self.rows_done}, got {start}")
        self.emb[start:stop] = np.where(mask[..., None], emb, 0.0).astype(np.float32)
        self.mask[start:stop] = mask
        self.emb.flush()
        self.mask.flush()
        self.rows_done = stop
        _write_json(self.path / PROGRESS, {"rows_done": stop})

    def finish(self) -> GroundCache:
        """Mark the cache complete and open it for reading."""
        if not self.complete:
            raise ValueError(f"cache has {self.rows_done} of {self.shape[0]} rows")
        _write_json(self.path / META, self.meta | {"complete": True})
        del self.emb, self.mask
        return GroundCache.open(self.path)


# --- building from photos -------------------------------------------------------------------

PHOTO_RESIZE = "shorter side to image_size (bilinear, antialiased), centre crop; EXIF orientation applied"


def load_photo(path: str, size: int):
    """A ground photo as a ``(3, size, size)`` float tensor in [0, 1].

    The shorter side is resized to ``size`` and the centre cropped (CLIP's
    photo convention); JPEGs are decoded at reduced scale when they are much
    larger than needed (``PIL.Image.draft``), which is deterministic.
    """
    import torch
    import torch.nn.functional as F
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))
            im = ImageOps.exif_transpose(im).convert("RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise SenclipError(f"unreadable ground photo {path} ({type(exc).__name__}); "
                           "fix or remove it from the manifest") from exc
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True,
                          align_corners=False)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[:, top:top + size, left:left + size].clamp_(0.0, 1.0)


class _PhotoRows:
    """Dataset over manifest rows: ``(V, 3, S, S)`` photos and a ``(V,)`` mask."""

    def __init__(self, photos: list[list[str | None]], size: int) -> None:
        self.photos, self.size = photos, size

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int):
        import torch

        row = self.photos[i]
        x = torch.zeros(len(row), 3, self.size, self.size)
        for v, p in enumerate(row):
            if p is not None:
                x[v] = load_photo(p, self.size)
        return x, torch.tensor([p is not None for p in row])


def photo_tower_key(model) -> dict:
    """The ``model``/``preprocess`` part of a photo cache's key."""
    tower = model.image_tower
    pre = getattr(tower, "preprocess", None)
    if pre is None or len(getattr(tower, "bands", ())) != 3 or pre.mean.shape[1] != 3:
        raise SenclipError("embed-ground needs an RGB CLIP image tower (the frozen base model); "
                           "do not pass a multispectral or time-series checkpoint")
    return model.describe() | {"preprocess": {
        "kind": "photo", "image_size": pre.image_size,
        "mean": [round(float(v), 6) for v in pre.mean.flatten()],
        "std": [round(float(v), 6) for v in pre.std.flatten()],
        "resize": PHOTO_RESIZE}}


def build_ground_cache(manifest_df, model, out: str | Path, batch_size: int = 64, device="cpu",
                       workers: int = 0, progress: bool = True) -> GroundCache:
    """Encode every ground photo of ``manifest_df`` once; resumable.

    Args:
        manifest_df: from :func:`senclip.data.manifest.read_manifest`.
        model: a :class:`~senclip.models.SenCLIP`; its image tower (frozen, eval)
            encodes the photos.
        out: cache directory (created, resumed, or reused when complete).
        batch_size: photos per forward pass (points per chunk = batch_size // 5).
        device: where to run the tower.
        workers: DataLoader processes decoding photos.
        progress: show a tqdm bar.

    Raises:
        SenclipError: ``out`` holds another cache, unreadable photo, non-RGB tower.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from senclip.data.manifest import VIEWS, photo_matrix

    photos = photo_matrix(manifest_df)
    key = photo_tower_key(model)
    tower = model.image_tower.to(device)
    with torch.inference_mode():
        dim = int(tower(torch.zeros(1, 3, tower.image_size, tower.image_size, device=device)).shape[-1])
    meta = key | {"views": list(VIEWS), "dim": dim, "sources_sha256": sha256_lines(photos)}
    writer = CacheWriter(out, meta, [str(p) for p in manifest_df["point_id"]])
    chunk = max(1, batch_size // len(VIEWS))
    loader = DataLoader(_PhotoRows(photos[writer.rows_done:], tower.image_size), batch_size=chunk,
                        num_workers=workers, shuffle=False)
    was_training = tower.training
    tower.eval()
    try:
        with tqdm(total=len(photos), initial=writer.rows_done, disable=not progress,
                  desc="embed-ground", unit="point") as bar, torch.inference_mode():
            for x, m in loader:
                emb = torch.zeros(*m.shape, dim)
                if m.any():
                    emb[m] = tower(x[m].to(device), normalize=True).float().cpu()
                writer.write(writer.rows_done, emb.numpy(), m.numpy())
                bar.update(len(m))
    finally:
        tower.train(was_training)
    return writer.finish()
