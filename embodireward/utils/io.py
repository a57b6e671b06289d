"""Atomic file writes: write to a temp file in the same directory, then rename over the target.

A run killed mid-write leaves either the old file or the new one, never a torn file.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, error: Callable[[str], Exception], context: str) -> Any:
    """Parse the JSON file at ``path``; if it cannot be read or parsed, raise ``error(f"{context}: {cause}")``.

    ``context`` names the file (e.g. ``"reward model sidecar '<path>' is unreadable"``) so the one-line
    error says which file is bad and why. The caller checks the file exists and the value's shape.
    """
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{context}: {exc}") from None


def create_exclusive(path: str | os.PathLike, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if it does not exist yet (atomic, never overwrites).

    Returns False when ``path`` already exists. Used for numbered data files so that two
    writers (or a re-run) never overwrite each other.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if path exists: no overwrite race
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)
