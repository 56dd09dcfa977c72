"""Download, verify and extract the public datasets: ``ensure_dataset(name, root)``.

The archives are the official releases, laid out in ``root`` exactly as they
unpack (``root/2750/<Class>/``, ``root/ds/images/.../tif/<Class>/``,
``root/BigEarthNet-v1.0/<patch>/``), which the dataset classes accept. The
steps, each safe to interrupt:

1. ``root/<archive>`` is fetched through ``<archive>.partial`` (HTTP ``Range``
   resume) and verified against the MD5 its dataset class records before it gets its name;
   a mismatch deletes it. Where no checksum is published the archive is only
   checked to unpack cleanly (zip CRC-32 / gzip CRC of every member).
2. It is extracted into the hidden ``root/.senclip-extract-<name>.partial``;
   only when every member is out are its top-level folders moved into
   ``root`` and the marker ``root/.senclip-<name>.json`` written. A run cut
   short leaves no folder the loaders would mistake for a complete dataset;
   the next run starts the extraction over.
3. A rerun finds the marker (or the extracted folder) and returns at once.

Each dataset class records where its archive lives (``download_spec``, a
:class:`DatasetSpec`, with its sources: see ``docs/downloads.md``).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from senclip.errors import SenclipError
from senclip.net import OfflineError, fetch
from senclip.outputs import write_text


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's archive lives and how it unpacks.

    Attributes:
        name: senclip dataset name.
        filename: archive file name.
        urls: download locations, tried in order (same file at each).
        md5: published MD5 of the archive, or None if no source states one.
        sha256: published SHA-256, or None.
        size: archive size in bytes, or None if not published.
        extracted: top-level path inside the archive that holds the data.
        approx_size: human-readable size for messages (from the host's listing).
        source: where url and checksum come from.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    extracted: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    approx_size: str | None = None
    source: str = ""
    aliases: tuple[str, ...] = field(default=())


DATASET_SPECS: dict[str, DatasetSpec] = {}
"""Spec name -> spec, filled by :mod:`senclip.data` from each dataset class's ``download_spec``
(this module cannot import the dataset classes: they import it)."""


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` for a dataset name or alias."""
    key = name.lower()
    for spec in DATASET_SPECS.values():
        if key == spec.name or key in spec.aliases:
            return spec
    raise SenclipError(f"no download recorded for dataset {name!r}; "
                       f"choose from {', '.join(sorted(DATASET_SPECS))}")


def marker_path(root: Path, spec: DatasetSpec) -> Path:
    return Path(root) / f".senclip-{spec.name}.json"


def is_complete(root: str | os.PathLike, name: str) -> bool:
    """Whether ``root`` holds the extracted dataset (marker or official folder present)."""
    spec = get_spec(name)
    root = Path(root).expanduser()
    return (root / spec.extracted).is_dir()


def ensure_dataset(name: str, root: str | os.PathLike, *, progress: bool = True,
                   urls: tuple[str, ...] | list[str] | None = None,
                   delete_archive: bool = False) -> Path:
    """Make sure ``root`` holds the dataset ``name``; download and extract it if not.

    Args:
        name: "eurosat", "eurosat-ms" or "bigearthnet-s2" (alias "bigearthnet").
        root: dataset folder (created if needed); the archive is kept in it.
        progress: show tqdm bars for the transfer, checksum and extraction.
        urls: download locations overriding the recorded ones (a mirror of the
            same file: the recorded checksum still applies).
        delete_archive: remove the archive once extracted.

    Returns:
        ``root``, ready for the dataset class.

    Raises:
        OfflineError: no network (one line naming ``root`` and what to do).
        SenclipError: checksum mismatch (archive removed), corrupt archive
            (removed), archive without the expected folder.
    """
    spec = get_spec(name)
    root = Path(root).expanduser()
    if is_complete(root, spec.name):
        return root
    archive = root / spec.filename
    if not archive.exists():
        _download(spec, archive, tuple(urls) if urls else spec.urls, progress)
    _extract(spec, archive, root, progress)
    marker = {"dataset": spec.name, "archive": spec.filename, "md5": spec.md5,
              "sha256": spec.sha256, "extracted": spec.extracted}
    _write_json(marker_path(root, spec), marker)
    if delete_archive:
        archive.unlink(missing_ok=True)
    return root


def _download(spec: DatasetSpec, archive: Path, urls: tuple[str, ...], progress: bool) -> None:
    hint = (f"; offline, copy {spec.filename} into {archive.parent} (or the extracted "
            f"{spec.extracted}/ folder) and run again")
    errors: list[SenclipError] = []
    for url in urls:
        try:
            fetch(url, archive, size=spec.size, md5=spec.md5, sha256=spec.sha256, progress=progress,
                  what=spec.filename, offline_hint=hint)
            return
        except SenclipError as exc:
            errors.append(exc)
            if "forbids downloading" in str(exc):
                break
    if len(errors) == 1:
        raise errors[0]
    if all(isinstance(e, OfflineError) for e in errors):
        hosts = ", ".join(dict.fromkeys(urllib.parse.urlparse(u).netloc for u in urls))
        raise OfflineError(f"cannot reach {hosts} to download {spec.filename}; "
                           f"nothing at {archive}{hint}") from errors[-1]
    raise type(errors[-1])(f"{errors[-1]} (tried {len(errors)} locations)") from errors[0]


def _extract(spec: DatasetSpec, archive: Path, root: Path, progress: bool) -> None:
    staging = root / f".senclip-extract-{spec.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        if archive.name.endswith(".zip"):
            _extract_zip(archive, staging, progress)
        else:
            _extract_tar(archive, staging, progress)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SenclipError(f"archive {archive} is corrupt ({reason}); "
                           "it was removed, run again to download it afresh") from exc
    if not (staging / spec.extracted).exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise SenclipError(f"archive {archive} has no {spec.extracted}/ folder; is it the "
                           f"{spec.name} release? Delete it and run again")
    for entry in sorted(staging.iterdir()):
        target = root / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(entry, target)
    staging.rmdir()


def _safe_member(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"unsafe path in archive: {name}")
    return name


def _extract_zip(archive: Path, dest: Path, progress: bool) -> None:
    from tqdm import tqdm

    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress,
                         leave=False):
            _safe_member(info.filename)
            zf.extract(info, dest)  # reads the whole member: CRC-32 checked


def _extract_tar(archive: Path, dest: Path, progress: bool) -> None:
    from tqdm import tqdm

    with tarfile.open(archive, "r:*") as tf, tqdm(desc=f"extract {archive.name}", unit="file",
                                                   disable=not progress, leave=False) as bar:
        for member in tf:  # streaming: the gzip CRC is checked at the end of the stream
            _safe_member(member.name)
            if not (member.isfile() or member.isdir()):
                continue  # no links or devices from an archive
            if hasattr(tarfile, "data_filter"):
                tf.extract(member, dest, filter="data")
            else:  # Python < 3.10.12: members were checked by _safe_member
                tf.extract(member, dest)
            bar.update(1)
        while tf.fileobj.read(1 << 20):  # read to the end so that the gzip CRC is checked
            pass


def _write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
