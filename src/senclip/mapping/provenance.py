"""What a map says about where it came from: the model's identity and the time its input stands for.

The class map's STAC Item (``senclip:model``) names the architecture, the weights (registry
name, open_clip tag or file) with the SHA-256 of each weights file read (the base CLIP's and the
tower checkpoint's; hashed once per file and modification time), the preprocessing, the
precision and the prompts, so that a map can be traced to the exact weights that made it.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path


@functools.lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime: int) -> str:
    from senclip.net.fetch import file_digest

    return file_digest(Path(path), "sha256")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, cached per (path, size, modification time)."""
    st = os.stat(path)
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def weights_file(name: str | None, arch: str | None = None) -> Path | None:
    """The local file behind ``--pretrained``/``--checkpoint`` ``name`` (a path, a cached registry entry or
    open_clip tag), or ``None`` (random initialisation, not cached)."""
    if not name:
        return None
    path = Path(name).expanduser()
    if path.is_file():
        return path
    from senclip.models.registry import _open_clip_cached, cached_path, get_entry

    entry = get_entry(name)
    if entry is not None:
        return cached_path(entry)
    return _open_clip_cached(arch, name) if arch else None


def model_identity(model, prompts: dict | None = None) -> dict:
    """The ``senclip:model`` of a map: architecture, weights and their SHA-256, preprocessing, precision,
    prompts (``prompts``: e.g. ``{"classes": "eurosat", "style": "all"}`` or a classifier file)."""
    info = dict(model.describe())
    out = {
        "architecture": info.get("model"),
        "pretrained": info.get("pretrained"),
        "checkpoint": info.get("checkpoint"),
        "precision": info.get("precision"),
        "bands": list(getattr(model.image_tower, "bands", ()) or ()),
    }
    if "preprocess" in info:
        out["preprocess"] = info["preprocess"]
    sha = {}
    for key in ("pretrained", "checkpoint"):
        path = weights_file(info.get(key), info.get("model"))
        if path is not None:
            sha[key] = file_sha256(path)
    out["weights_sha256"] = sha
    if prompts:
        out["prompts"] = prompts
    return out


def input_time(tags: dict, path: str | Path) -> dict:
    """The time a scene stands for, from its tags (``time_start``/``time_end`` of a composite,
    ``acquired`` of an acquired chip, ``dates`` of a stack), else its file's modification time."""
    if tags.get("time_start") and tags.get("time_end"):
        return {
            "start": dt.date.fromisoformat(tags["time_start"][:10]),
            "end": dt.date.fromisoformat(tags["time_end"][:10]),
            "source": "tags",
        }
    if tags.get("acquired"):
        return {"start": dt.datetime.fromisoformat(tags["acquired"].replace("Z", "+00:00")), "source": "tags"}
    if tags.get("dates"):
        dates = sorted(dt.date.fromisoformat(d[:10]) for d in tags["dates"].split(","))
        return {"start": dates[0], "end": dates[-1], "source": "tags"}
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return {"start": dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), "source": "unknown"}
    return {"start": dt.datetime.fromtimestamp(int(mtime), tz=dt.timezone.utc), "source": "file-mtime"}


__all__ = ["file_sha256", "input_time", "model_identity", "weights_file"]
