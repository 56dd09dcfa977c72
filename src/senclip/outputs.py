"""No data lost: the one output-safety rule of every command that writes.

A command declares what it reads and writes as a :class:`Plan`. Before the
command reads or writes anything, :func:`claim` enforces, in this order:

1. **No output is an input.** An output or side file (legend, quick-look,
   probabilities, report, manifest) that resolves to the same file as an
   input or as another output — same path, symlink or hard link — is refused.
   ``--overwrite`` never lifts this.
2. **Outputs can be written.** Missing output folders are created; a folder
   that cannot be created or written, or a file output that is a folder, is
   refused.
3. **Existing outputs are not replaced by surprise.** The command records its
   job (a hash of the command, its options and its inputs' sizes and
   modification times) in a hidden record beside the first output
   (``.NAME.senclip.json``, or ``DIR/.senclip.json`` for a folder output).
   Rerunning the same job resumes its unfinished work, or reports its finished
   outputs as done (exit 0, untouched); any other existing output is refused
   unless ``--overwrite``.
4. **One writer per output.** A lock file beside the first output
   (``.NAME.lock``, holding the owner's pid) is taken with ``flock``; a second
   process stops with one line. The kernel drops the lock of a dead process
   (``kill -9`` included), so a stale lock file is taken over; a finished run
   removes it.

Writes themselves go through :func:`atomic_path` (a temporary file in the
output's folder, renamed into place), so an output path only ever holds the
previous file or the complete new one.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from senclip.errors import SenclipError

RECORD_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """What a command reads and writes.

    Attributes:
        command: the command's name.
        outputs: files the command writes; the first one (or ``folders[0]`` if
            there are no files) carries the job record and the lock.
        inputs: files or folders it reads (URLs and missing paths are ignored).
        required: inputs that must exist (a missing one is reported first).
        folders: output folders the command fills (created if missing); an
            existing non-empty folder must hold this job's record.
        shared: folders that several jobs fill file by file, each file
            resumable on its own, or that check their own identity (a dataset
            root, an acquisition folder, a ground-embedding cache): locked and
            checked against the inputs, never refused for existing; the
            command makes them.
        updates: files that several jobs update in place (the acquisition
            manifest that ``acquire photos`` completes): only checked against
            the inputs.
        options: everything else that determines the result (hashed).
    """

    command: str
    outputs: Sequence[str | Path] = ()
    inputs: Sequence[str | Path | None] = ()
    required: Sequence[str | Path] = ()
    folders: Sequence[str | Path] = ()
    shared: Sequence[str | Path] = ()
    updates: Sequence[str | Path] = ()
    options: dict = field(default_factory=dict)

    @property
    def anchor(self) -> Path:
        """The output that carries the record and the lock."""
        for group in (self.outputs, self.folders, self.shared):
            if group:
                return Path(group[0]).expanduser()
        raise ValueError("a plan needs at least one output")


def _is_path(value) -> bool:
    text = str(value)
    return bool(text) and "://" not in text and not text.startswith(("/vsi", "hf-hub:"))


def _file_identity(path: Path) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def job_hash(plan: Plan) -> str:
    """SHA-256 of the command, its options and its inputs (path, size, mtime)."""
    inputs = []
    for p in plan.inputs:
        if p is None or not _is_path(p):
            inputs.append(str(p))
            continue
        path = Path(p).expanduser()
        inputs.append([str(path.resolve()), _file_identity(path) if path.is_file() else None])
    state = {"command": plan.command, "options": plan.options, "inputs": inputs,
             "outputs": [str(Path(p).expanduser().resolve()) for p in (*plan.outputs, *plan.folders)]}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def record_path(plan: Plan) -> Path:
    anchor = plan.anchor
    if plan.outputs or not plan.folders:  # beside a file or a shared folder, inside an exclusive folder
        return anchor.with_name(f".{anchor.name}.senclip.json")
    return anchor / ".senclip.json"


def lock_path(plan: Plan) -> Path:
    anchor = plan.anchor.resolve()
    return anchor.with_name(f".{anchor.name}.lock")


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _check_distinct(plan: Plan) -> None:
    outs = [Path(p).expanduser() for p in (*plan.outputs, *plan.folders, *plan.shared, *plan.updates)]
    ins = [Path(p).expanduser() for p in plan.inputs if p is not None and _is_path(p)]
    for i, out in enumerate(outs):
        for inp in ins:
            if inp.exists() and _same(out, inp):
                raise SenclipError(f"output {out} is the input {inp}; choose another output path "
                                   "(inputs are never written over)")
        for other in outs[i + 1:]:
            if _same(out, other):
                raise SenclipError(f"two outputs are the same file: {out} and {other}; name them apart")


def _check_folder(folder: Path, created: list[Path]) -> None:
    """Create ``folder`` (and its missing parents, appended to ``created``) and check it is writable."""
    missing = [d for d in (folder, *folder.parents) if not d.exists()]
    for d in (folder, *folder.parents):
        if d.exists() and not d.is_dir():
            raise SenclipError(f"cannot write into {folder}: {d} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SenclipError(f"cannot create output folder {folder}: {exc.strerror}") from exc
    created.extend(missing)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SenclipError(f"output folder {folder} is not writable; choose another output path")


def _check_writable(plan: Plan) -> list[Path]:
    """Check (and create) the output folders; returns those a failed run removes again.

    A shared folder itself is left for its command to make (it knows when its input is good),
    only its parent is checked here.
    """
    created: list[Path] = []
    try:
        for p in plan.outputs:
            out = Path(p).expanduser()
            if out.is_dir():
                raise SenclipError(f"output {out} is a folder; give a file name")
            _check_folder(out.absolute().parent, created)
        for p in plan.folders:
            _check_folder(Path(p).expanduser().absolute(), created)
        for p in plan.shared:
            folder = Path(p).expanduser().absolute()
            if folder.exists() and not folder.is_dir():
                raise SenclipError(f"cannot write into {folder}: it is not a folder")
            _check_folder(folder.parent, created)
        for p in plan.updates:
            _check_folder(Path(p).expanduser().absolute().parent, created)
    except BaseException:
        _remove_empty(created)
        raise
    return created


def _remove_empty(folders: list[Path]) -> None:
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            pass


def read_record(plan: Plan) -> dict | None:
    try:
        record = json.loads(record_path(plan).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_record(plan: Plan, record: dict) -> None:
    path = record_path(plan)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))


def _existing(plan: Plan) -> list[Path]:
    """Outputs that already exist (a folder output counts when it is not empty)."""
    found = [Path(p).expanduser() for p in plan.outputs if Path(p).expanduser().exists()]
    for p in plan.folders:
        folder = Path(p).expanduser()
        if folder.is_dir() and any(e.name not in (".senclip.json",) for e in folder.iterdir()):
            found.append(folder)
    return found


def _finished(plan: Plan, record: dict | None, job: str) -> bool:
    """Whether every output is the untouched result of a finished run of ``job``."""
    if not record or record.get("job") != job or record.get("state") != "done":
        return False
    files = record.get("files", {})
    for p in plan.outputs:  # side files a run may not write (a plot) are absent from the record
        out = Path(p).expanduser()
        if out.name in files and (not out.is_file() or files[out.name] != _file_identity(out)):
            return False
    if plan.outputs and Path(plan.outputs[0]).name not in files:
        return False
    return all(Path(p).expanduser().is_dir() for p in plan.folders)


class Claim:
    """The outcome of :func:`claim`: a held lock and the job's record.

    ``done`` is true when the outputs are the finished result of the same job
    (nothing to do). Use as a context manager around the command's work;
    :meth:`finish` records success.
    """

    def __init__(self, plan: Plan, job: str, done: bool, lock_fd: int,
                 created: list[Path] | None = None) -> None:
        self.plan, self.job, self.done, self._fd = plan, job, done, lock_fd
        self.created = created or []
        self._drop_folders = False

    def start(self) -> None:
        record = read_record(self.plan)
        if record is None or record.get("job") != self.job:
            record = {"version": RECORD_VERSION, "command": self.plan.command, "job": self.job}
        record["state"] = "running"
        _write_record(self.plan, record)

    def finish(self) -> None:
        files = {Path(p).name: _file_identity(Path(p).expanduser())
                 for p in self.plan.outputs if Path(p).expanduser().is_file()}
        _write_record(self.plan, {"version": RECORD_VERSION, "command": self.plan.command,
                                  "job": self.job, "state": "done", "files": files})

    def abandon(self) -> None:
        """After a failure: drop the record (and the folders made for it) if no output is left."""
        if not _existing(self.plan):
            record_path(self.plan).unlink(missing_ok=True)
            self._drop_folders = True

    def release(self) -> None:
        """Remove the lock file, then drop the lock (a waiter that opened the old file retries)."""
        if self._fd >= 0:
            lock_path(self.plan).unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1
            if self._drop_folders:
                _remove_empty(self.created)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(plan: Plan) -> int:
    path = lock_path(plan)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            try:
                owner = path.read_text().strip() or "?"
            except OSError:
                owner = "?"
            raise SenclipError(f"{plan.anchor} is being written by another senclip process (pid {owner}); "
                               "wait for it to finish") from None
        try:  # the file may have been replaced since we opened it: lock the one at the path
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def claim(plan: Plan, overwrite: bool = False) -> Claim:
    """Check ``plan`` against the rule above and take its lock.

    Raises:
        SenclipError: an output is an input, cannot be written, exists and
            is not this job's (without ``overwrite``), or is locked.
    """
    for p in plan.required:
        if p is not None and _is_path(p) and not Path(p).expanduser().exists():
            raise SenclipError(f"{p} not found")
    _check_distinct(plan)
    created = _check_writable(plan)
    try:
        fd = _lock(plan)
    except BaseException:
        _remove_empty(created)
        raise
    claim_ = Claim(plan, "", False, fd, created)
    try:
        job = job_hash(plan)
        record = read_record(plan)
        if not overwrite and _finished(plan, record, job):
            return Claim(plan, job, True, fd, created)
        existing = _existing(plan)
        ours = record is not None and record.get("job") == job
        if existing and not ours and not overwrite:
            raise SenclipError(f"{existing[0]} exists and was not written by this job; pass --overwrite "
                               "to replace it")
    except BaseException:
        claim_.abandon()
        claim_.release()
        raise
    return Claim(plan, job, False, fd, created)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".partial") -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to ``path`` if the block succeeds.

    On any failure (disk full, permission, interruption) the temporary file
    or folder is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


@contextmanager
def io_errors() -> Iterator[None]:
    """Surface a writer's own I/O error type as ``OSError`` (a full disk is one line, not a traceback).

    safetensors raises ``SafetensorError`` where a write fails.
    """
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as exc:
        raise OSError(f"could not write: {exc}") from exc


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
