"""File writes that never leave a torn file, and one-line errors for file-system faults.

Atomic writes go to a temp file in the same directory, then rename over the target: a run killed
mid-write leaves either the old file or the new one. Temp files are named
``.<name>.<pid>.<random>.tmp``; :func:`remove_stale_temp_files` deletes those whose writer process
is gone (a killed write), so they do not pile up.

Every OSError of a write becomes a :class:`FileSystemError` naming the path and the cause (no space
left, read-only file system, not a directory, ...), which the command-line entry points print as
one line.
"""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, List

CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a parent path is a file, not a directory",
    errno.EISDIR: "is a directory",
    errno.EEXIST: "already exists",
    errno.ENOENT: "a parent directory does not exist",
    errno.ENAMETOOLONG: "file name too long",
}
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


class FileSystemError(RuntimeError):
    """A write that the file system refused. ``str()`` is one line naming the path and the cause."""

    def __init__(self, path: str | os.PathLike, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot write '{self.path}': {cause}")

    @classmethod
    def from_os_error(cls, path: str | os.PathLike, exc: OSError) -> "FileSystemError":
        return cls(path, CAUSES.get(exc.errno, exc.strerror or type(exc).__name__))


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised inside the block into a :class:`FileSystemError` about ``path``."""
    try:
        yield
    except FileSystemError:
        raise
    except OSError as exc:
        raise FileSystemError.from_os_error(path, exc) from None


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p`` with a one-line error (e.g. a parent that is a file, a read-only disk)."""
    path = Path(path)
    with writing(path):
        if path.exists() and not path.is_dir():
            raise FileSystemError(path, "exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
    return path


def _temp_file(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success rename it onto ``path``."""
    path = Path(path)
    make_dirs(path.parent)
    with writing(path):
        tmp_path = _temp_file(path)
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
    make_dirs(path.parent)
    with writing(path):
        tmp = _temp_file(path)
        try:
            with open(tmp, "wb") as fh:
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


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(directory: str | os.PathLike, recursive: bool = True) -> List[Path]:
    """Delete temp files of atomic writes whose writer process no longer exists; return them.

    A live writer's temp file (another rank, a concurrent run) is left alone.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for candidate in (directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp")):
        match = _TEMP_NAME.match(candidate.name)
        if match and candidate.is_file() and not _process_alive(int(match.group(1))):
            try:
                candidate.unlink()
            except FileNotFoundError:
                continue
            removed.append(candidate)
    return removed


MIN_FREE_BYTES = 1 << 20


def is_writable_location(path: str | os.PathLike) -> str | None:
    """None when ``path`` (a directory, existing or not) could be created and written; else why not.

    Checks the nearest existing ancestor: a file in the way, a read-only mount, missing permission,
    less than 1 MiB free. Nothing is created.
    """
    path = Path(path).absolute()
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"'{ancestor}' exists and is not a directory"
            try:
                stats = os.statvfs(ancestor)
            except OSError:
                stats = None
            if stats is not None and stats.f_flag & os.ST_RDONLY:
                return f"'{ancestor}' is on a read-only file system"
            if not os.access(ancestor, os.W_OK | os.X_OK):
                return f"'{ancestor}' is not writable (permission denied)"
            if stats is not None and stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
                return f"no space left on the device of '{ancestor}'"
            return None
    return f"no existing parent directory of '{path}'"
