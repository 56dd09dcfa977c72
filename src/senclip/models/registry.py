"""Registry of published pretrained CLIP weights, kept as data in ``registry.yaml``.

``resolve_pretrained(pretrained, arch)`` turns a registry name into what
:func:`senclip.models.create_model` loads: an open_clip tag, or a local file
downloaded once into ``$SENCLIP_CACHE/weights/<name>/`` (default
``~/.cache/senclip``). Names that are not in the registry (open_clip tags,
``hf-hub:`` ids, local files) pass through unchanged.

Entries whose ``layout`` is a tower layout (``timesenclip``: the published TimeSenCLIP
encoder) are not CLIPs but satellite-tower checkpoints: ``resolve_checkpoint(name)``
turns them into the cached file for ``--checkpoint NAME``; their ``arch`` and
``base_pretrained`` name the base CLIP whose text tower they pair with.

Downloaded files are verified (SHA-256/MD5/size where published; otherwise a
``torch.load(weights_only=True)`` / safetensors header read, which never runs
code from the file) before they enter the cache. Offline (``HF_HUB_OFFLINE=1``
for Hub entries, ``SENCLIP_OFFLINE=1`` for all, or no route to the host) a
missing file fails in seconds with one line naming the cache path and the
offline alternative ``--pretrained /path/to/file``.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from senclip.errors import SenclipError
from senclip.models.convert import TOWER_LAYOUTS
from senclip.net import OfflineError, cache_dir, fetch, network_reachable, offline_switch

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
SOURCES = ("open_clip", "hf_hub", "url")
LAYOUTS = ("open_clip", "openai", "clip-prefixed", "senclip", "timesenclip")  # see senclip.models.convert
OFFLINE_HINT = "; offline, pass the weights file instead: --pretrained /path/to/file"


@dataclass(frozen=True)
class PretrainedEntry:
    """One published checkpoint (see the field list at the top of ``registry.yaml``)."""

    name: str
    arch: str
    source: str
    tag: str | None = None
    repo: str | None = None
    revision: str = "main"
    filename: str | None = None
    url: str | None = None
    archive: str | None = None
    member: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    approx_size: str | None = None
    preprocess: dict = field(default_factory=dict)
    layout: str = "open_clip"
    base_pretrained: str | None = None
    pooling: str | None = None
    unverified: tuple = ()
    paper: str | None = None
    license: str | None = None
    eurosat_zeroshot: dict | None = None
    notes: str | None = None
    origin: str = ""

    @property
    def download_url(self) -> str | None:
        """Where the file comes from (``HF_ENDPOINT`` respected for Hub entries)."""
        if self.source == "hf_hub":
            endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
            return f"{endpoint}/{self.repo}/resolve/{self.revision}/{self.filename}"
        return self.url

    @property
    def tower(self) -> str | None:
        """The tower kind of a satellite-tower checkpoint (``--checkpoint NAME``); ``None``: CLIP weights."""
        return TOWER_LAYOUTS.get(self.layout)

    @property
    def local_name(self) -> str:
        """File name of the weights inside the cache folder."""
        name = self.member if self.archive else (self.filename or self.url or "")
        return PurePosixPath(name.split("?")[0]).name


def _entry(name: str, raw: Any, origin: str) -> PretrainedEntry:
    if not isinstance(raw, dict):
        raise SenclipError(f"registry {origin}: entry {name!r} must be a mapping")
    known = set(PretrainedEntry.__dataclass_fields__) - {"name", "origin"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SenclipError(f"registry {origin}: entry {name!r} has unknown field(s) {', '.join(unknown)}")
    if not raw.get("arch") or raw.get("source") not in SOURCES:
        raise SenclipError(f"registry {origin}: entry {name!r} needs `arch` and `source` "
                           f"(one of {', '.join(SOURCES)})")
    needs = {"open_clip": ("tag",), "hf_hub": ("repo", "filename"), "url": ("url",)}[raw["source"]]
    if raw.get("archive"):
        needs += ("member",)
    missing = [k for k in needs if not raw.get(k)]
    if missing:
        raise SenclipError(f"registry {origin}: entry {name!r} ({raw['source']}) needs {', '.join(missing)}")
    values = {k: v for k, v in raw.items() if v is not None}
    values["preprocess"] = dict(values.get("preprocess") or {})
    values["unverified"] = tuple(values.get("unverified") or ())
    if values.get("layout", "open_clip") not in LAYOUTS:
        raise SenclipError(f"registry {origin}: entry {name!r} has layout {values['layout']!r}; "
                           f"choose one of {', '.join(LAYOUTS)}")
    if values.get("base_pretrained") and values.get("layout") not in TOWER_LAYOUTS:
        raise SenclipError(f"registry {origin}: entry {name!r}: base_pretrained belongs to tower "
                           "checkpoints (layout timesenclip) only")
    return PretrainedEntry(name=name, origin=origin, **values)


def _read(path: Path) -> dict[str, PretrainedEntry]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SenclipError(f"cannot read model registry {path}: {str(exc).splitlines()[0]}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise SenclipError(f"model registry {path} needs a top-level `models:` mapping")
    return {str(name): _entry(str(name), raw, str(path)) for name, raw in models.items()}


def load_registry() -> dict[str, PretrainedEntry]:
    """The packaged entries, overridden/extended by the files in ``SENCLIP_REGISTRY``."""
    entries = _read(REGISTRY_FILE)
    for part in filter(None, os.environ.get("SENCLIP_REGISTRY", "").split(os.pathsep)):
        entries.update(_read(Path(part).expanduser()))
    return entries


def get_entry(name: str) -> PretrainedEntry | None:
    return load_registry().get(name)


def weights_dir(entry: PretrainedEntry) -> Path:
    return cache_dir() / "weights" / entry.name


def cached_path(entry: PretrainedEntry) -> Path | None:
    """The local weights file of an entry if it is cached, else None."""
    if entry.source == "open_clip":
        return _open_clip_cached(entry.arch, entry.tag or "")
    path = weights_dir(entry) / entry.local_name
    return path if path.is_file() else None


def fetch_weights(entry: PretrainedEntry, progress: bool = True) -> Path:
    """Download (once), verify and cache an ``hf_hub``/``url`` entry; returns the file.

    Raises:
        OfflineError: not cached and the host cannot be reached (or offline is set).
        SenclipError: checksum mismatch or a file that is not plain weights (removed).
    """
    if entry.source == "open_clip":
        raise SenclipError(f"{entry.name} is downloaded by open_clip (tag {entry.tag!r}), not by senclip")
    target = weights_dir(entry) / entry.local_name
    if target.is_file():
        return target
    url = entry.download_url or ""
    hint = f"{OFFLINE_HINT} (or copy it to {target})"
    if entry.tower:
        hint = hint.replace("--pretrained", "--checkpoint")
    download = weights_dir(entry) / PurePosixPath(url.split("?")[0]).name if entry.archive else target
    fetch(url, download, size=entry.size, md5=entry.md5, sha256=entry.sha256, progress=progress,
          what=f"{entry.name} weights", offline_hint=hint)
    if entry.archive:
        _extract_member(download, entry.member or "", target)
    check_weights_file(target)
    return target


def _extract_member(archive: Path, member: str, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError as exc:
        raise SenclipError(f"{archive} has no member {member}; check the registry entry") from exc
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise SenclipError(f"{archive} is not a valid zip ({exc}); it was removed, run again") from exc
    os.replace(partial, target)
    archive.unlink()


def check_weights_file(path: Path) -> None:
    """Check that ``path`` holds plain tensors, without executing code from it.

    safetensors files: the header is parsed. Other files:
    ``torch.load(weights_only=True)``, which refuses pickled code and objects.
    A file that fails is removed.

    Raises:
        SenclipError: naming the file and the reason.
    """
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                n = len(list(f.keys()))
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:  # a legacy (non-zip) torch.save file cannot be memory-mapped
                if "mmap" not in str(exc):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)
            state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
            n = sum(isinstance(v, torch.Tensor) for v in state.values()) if isinstance(state, dict) else 0
    except Exception as exc:  # any failure to parse means the file is unusable
        path.unlink(missing_ok=True)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SenclipError(f"{path} is not a loadable weights file ({reason[:200]}); it was removed, "
                           "run again to download it afresh") from exc
    if n == 0:
        path.unlink(missing_ok=True)
        raise SenclipError(f"{path} holds no tensors; it was removed")


def _same_arch(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return s.lower().replace("/", "-").removesuffix("-quickgelu")

    return norm(a) == norm(b)


def resolve_pretrained(pretrained: str | None, arch: str | None) -> tuple[str | None, str | None]:
    """Resolve ``--pretrained`` through the registry.

    Args:
        pretrained: registry name, open_clip tag, ``hf-hub:`` id or local path.
        arch: the requested architecture (``--model``); None takes the entry's.

    Returns:
        ``(architecture, pretrained)`` for open_clip: a registry entry gives its
        own architecture and an open_clip tag or a cached local file; anything
        else comes back unchanged.

    Raises:
        SenclipError: the entry's architecture contradicts ``arch``.
        OfflineError: the weights are not cached and cannot be downloaded.
    """
    if not pretrained or pretrained.startswith("hf-hub:") or Path(pretrained).expanduser().exists():
        return arch, pretrained
    entry = get_entry(pretrained)
    if entry is None:
        if arch:
            _ensure_open_clip_reachable(arch, pretrained)
        return arch, pretrained
    if entry.tower:
        from senclip.models.convert import not_clip_message

        raise SenclipError(not_clip_message(entry.name))
    if arch and not _same_arch(arch, entry.arch):
        raise SenclipError(f"--pretrained {entry.name} holds {entry.arch} weights, but the architecture "
                           f"is {arch}; use --model {entry.arch}")
    if entry.source == "open_clip":
        _ensure_open_clip_reachable(entry.arch, entry.tag or "")
        return entry.arch, entry.tag
    return entry.arch, str(fetch_weights(entry))


def resolve_checkpoint(checkpoint: str) -> str:
    """Resolve ``--checkpoint``: the name of a tower entry (``layout: timesenclip``) becomes its cached
    file, downloaded first if missing (as ``--pretrained NAME`` does); anything else comes back unchanged.

    Raises:
        SenclipError: the name is a CLIP entry (those belong to ``--pretrained``).
        OfflineError: the file is not cached and cannot be downloaded.
    """
    if not checkpoint or Path(checkpoint).expanduser().exists():
        return checkpoint
    entry = get_entry(checkpoint)
    if entry is None:
        return checkpoint
    if not entry.tower:
        raise SenclipError(f"{entry.name} holds CLIP weights, not a tower checkpoint: pass it as "
                           f"--pretrained {entry.name}")
    return str(fetch_weights(entry))


def _open_clip_cfg(arch: str, tag: str) -> dict:
    from open_clip.pretrained import get_pretrained_cfg

    try:
        return get_pretrained_cfg(arch, tag) or {}
    except Exception:  # unknown arch/tag: open_clip reports it when loading
        return {}


def _hf_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _open_clip_cached(arch: str, tag: str) -> Path | None:
    """open_clip's cached file for a pretrained tag (Hugging Face cache or ~/.cache/clip)."""
    cfg = _open_clip_cfg(arch, tag)
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo = cfg["hf_hub"].strip("/")
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str):
                return Path(found)
    if cfg.get("url"):
        path = Path.home() / ".cache" / "clip" / PurePosixPath(cfg["url"]).name
        if path.is_file():
            return path
    return None


def _ensure_open_clip_reachable(arch: str, tag: str) -> None:
    """Fail fast (one line) when open_clip would need to download weights it cannot reach."""
    cfg = _open_clip_cfg(arch, tag)
    if not cfg or _open_clip_cached(arch, tag) is not None:
        return
    hub = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    endpoint = hub if cfg.get("hf_hub") else cfg.get("url", "")
    where = _hf_cache() if cfg.get("hf_hub") else Path.home() / ".cache" / "clip"
    switch = offline_switch(endpoint)
    if switch or not network_reachable(endpoint):
        why = f"{switch}=1" if switch else f"{endpoint} is unreachable"
        raise OfflineError(f"could not load {arch} '{tag}' weights: not cached in {where} and {why}"
                           f"{OFFLINE_HINT}")


def list_entries() -> list[dict]:
    """Registry rows for ``senclip models``: name, arch, tower kind (tower checkpoints; ``None``: a CLIP),
    pooling, source, cached, location, EuroSAT figure."""
    rows = []
    for entry in load_registry().values():
        cached = cached_path(entry)
        location = entry.tag if entry.source == "open_clip" else entry.download_url
        rows.append({"name": entry.name, "arch": entry.arch, "source": entry.source, "location": location,
                     "repo": entry.repo, "layout": entry.layout, "tower": entry.tower,
                     "base_pretrained": entry.base_pretrained, "pooling": entry.pooling,
                     "preprocess": entry.preprocess.get("profile"),
                     "cached": cached is not None, "path": str(cached) if cached else None,
                     "sha256": entry.sha256, "eurosat_zeroshot": entry.eurosat_zeroshot,
                     "unverified": list(entry.unverified), "paper": entry.paper, "origin": entry.origin})
    return rows


__all__ = ["OfflineError", "PretrainedEntry", "cached_path", "check_weights_file", "fetch_weights",
           "get_entry", "list_entries", "load_registry", "resolve_checkpoint", "resolve_pretrained"]
