"""Resumable work state of one output: ``<output>.partial/``.

The folder holds ``state.json`` (a hash of everything that determines the
result, and how many rows are done) and one raw ``float32`` array file per
result (memory-mapped, written row by row). A row is counted as done only
after its data are flushed, and ``state.json`` is replaced atomically, so a
process killed at any point (``kill -9`` included) leaves a state that a rerun
with the same arguments continues from; a rerun with other arguments starts
over. The final outputs are made from these arrays and moved into place with
``os.replace``; the folder is removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from senclip.errors import SenclipError

STATE = "state.json"


def config_hash(config: dict) -> str:
    """SHA-256 of the JSON of ``config`` (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def partial_dir(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".partial")


def check_writable(output: str | Path) -> None:
    """Fail early, before any work, if ``output`` cannot be written."""
    parent = Path(output).expanduser().resolve().parent
    if not parent.is_dir():
        raise SenclipError(f"output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SenclipError(f"output folder {parent} is not writable; choose another output path")
    if Path(output).is_dir():
        raise SenclipError(f"output {output} is a folder; give a file name")


class RowStore:
    """Arrays of shape ``(rows, *row_shape)`` filled row by row, resumably.

    Args:
        output: the final output path (the store lives beside it).
        config: everything that determines the result (hashed).
        arrays: name → ``(shape, dtype)``; the first dimension is the row.
    """

    def __init__(self, output: str | Path, config: dict, arrays: dict[str, tuple[tuple[int, ...], str]]):
        self.dir = partial_dir(output)
        self.hash = config_hash(config)
        self.specs = arrays
        self.rows = next(iter(arrays.values()))[0][0]
        try:
            self.rows_done = self._open_or_create(config)
            self.arrays = {
                name: np.memmap(self.dir / f"{name}.bin", dtype=dtype, mode="r+", shape=shape)
                for name, (shape, dtype) in arrays.items()
            }
        except OSError:  # e.g. a full disk while sizing the arrays: leave no half-made store
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _read_state(self) -> dict | None:
        try:
            return json.loads((self.dir / STATE).read_text())
        except (OSError, ValueError):
            return None

    def _open_or_create(self, config: dict) -> int:
        state = self._read_state()
        if state is not None and state.get("hash") == self.hash and all(
            (self.dir / f"{n}.bin").is_file() for n in self.specs
        ):
            return int(state.get("rows_done", 0))
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        for name, (shape, dtype) in self.specs.items():
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            with open(self.dir / f"{name}.bin", "wb") as f:
                f.truncate(size)
        self._write_state(0, config)
        return 0

    def _write_state(self, rows_done: int, config: dict | None = None) -> None:
        state = self._read_state() or {}
        state.update({"hash": self.hash, "rows_done": rows_done, "rows": self.rows})
        if config is not None:
            state["config"] = json.loads(json.dumps(config, default=str))
        tmp = self.dir / (STATE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / STATE)

    @property
    def complete(self) -> bool:
        return self.rows_done >= self.rows

    def write_row(self, row: int, **values: np.ndarray) -> None:
        """Store row ``row`` of each array (rows must come in order)."""
        self.write_rows(row, **{name: np.asarray(v)[None] for name, v in values.items()})

    def write_rows(self, row: int, **values: np.ndarray) -> None:
        """Store a block of rows from ``row`` on (``len(value)`` rows; blocks must come in order)."""
        if row != self.rows_done:
            raise RuntimeError(f"row {row} written out of order (expected {self.rows_done})")
        n = len(next(iter(values.values())))
        for name, value in values.items():
            self.arrays[name][row:row + n] = value
        for arr in self.arrays.values():
            arr.flush()
        self.rows_done = row + n
        self._write_state(self.rows_done)

    def work_path(self, name: str) -> Path:
        """A scratch file inside the store (final outputs are built here, then moved)."""
        return self.dir / name

    def remove(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
