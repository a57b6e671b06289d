"""The files of one reward-data directory: numbered files per class, and the manifest that lists them.

Files are never overwritten: numbering continues after what a class directory already holds and
a name taken meanwhile (another rank) is skipped. A written file is *pending* until the next
:meth:`DataStore.commit` adds it to ``manifest.json`` (at every rollout end). If a write fails
(full or read-only disk), the store commits what it has or, if the manifest cannot be written
either, deletes the pending files, then raises the one-line :class:`FileSystemError`: no file is
left on disk that the manifest does not list.

At start-up :meth:`DataStore.open` repairs what a killed run left: it removes stale temp files,
adds files the manifest does not list (each as its own trajectory, with a negative id that no
collecting episode uses), drops entries whose file is gone, and says what it fixed.
"""
from __future__ import annotations

import contextlib
import fcntl
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from embodireward.config import ConfigError
from embodireward.rewards.checkpoint import check_env_compatibility
from embodireward.rewards.manifest import FORMAT_VERSION, MANIFEST, SUFFIXES
from embodireward.rewards.manifest import class_names as manifest_class_names
from embodireward.utils.io import (FileSystemError, atomic_write_json, create_exclusive, make_dirs, read_json,
                                   remove_stale_temp_files, writing)

_NUMBERED = re.compile(r"^(\d{6,})\.(npy|png)$")
COMPARED_KEYS = ("format", "labels", "camera_keys", "image_size", "render", "class_names", "robot_state_dim")


class DataStore:
    """Numbered data files under ``<data_dir>/<class_names[k]>/`` and ``manifest.json``.

    ``header`` is the manifest without counts and file lists (format, labels, env, cameras,
    image size, render, class_names, num_classes). The listing maps each listed file to its
    trajectory id (frames format) or None (trajectory format: one file, one trajectory).
    """

    def __init__(self, data_dir: Path, header: Dict[str, Any]):
        self.data_dir = data_dir
        self.header = header
        self.format = header["format"]
        self.dirs: List[str] = list(header["class_names"])
        self.suffix = SUFFIXES[self.format]
        self.manifest_path = data_dir / MANIFEST
        self.counts = [0] * len(self.dirs)  # files per class directory (all writers)
        self.written = [0] * len(self.dirs)  # files this store wrote
        self.next_number = [0] * len(self.dirs)
        self.pending: Dict[str, Optional[int]] = {}  # written, not yet in the manifest -> trajectory id

    # ------------------------------------------------------------------ reading

    def read_manifest(self) -> Optional[Dict[str, Any]]:
        if not self.manifest_path.is_file():
            return None
        return read_json(self.manifest_path, lambda message: ConfigError(str(self.manifest_path), message),
                         "unreadable (fix or remove it)")

    def check_compatible(self, existing: Dict[str, Any]) -> None:
        """The existing data must have been recorded like this run's (env, cameras, classes, ...)."""
        source = str(self.manifest_path)
        check_env_compatibility(existing.get("env", {}), self.header["env"], source)
        older = {"labels": "success", "class_names": manifest_class_names(existing)} if "format" in existing else {}
        for key in COMPARED_KEYS:
            value = existing.get(key, older.get(key))
            if value != self.header.get(key):
                raise ConfigError(source, f"'{key}' is {value!r} in the existing data but {self.header.get(key)!r} in this run; use a new data_dir or matching settings")

    def numbers(self, k: int) -> List[int]:
        folder = self.data_dir / self.dirs[k]
        if not folder.is_dir():
            return []
        return [int(m.group(1)) for m in map(_NUMBERED.match, (p.name for p in folder.iterdir())) if m and m.group(0).endswith(self.suffix)]

    def files_on_disk(self) -> List[str]:
        return [f"{self.dirs[k]}/{n:06d}{self.suffix}" for k in range(len(self.dirs)) for n in sorted(self.numbers(k))]

    def listing(self, manifest: Optional[Dict[str, Any]]) -> Dict[str, Optional[int]]:
        manifest = manifest or {}
        if self.format == "frames":
            return dict(manifest.get("frame_trajectories") or {})
        return {name: None for name in manifest.get("trajectory_files") or []}

    # ------------------------------------------------------------------ start-up

    def open(self, rollback_to: Optional[Sequence[int]] = None) -> List[str]:
        """Create the directory, repair it (see the module docstring) and commit; return what was fixed.

        ``rollback_to`` (a resumed run's numbering at its checkpoint): files numbered from there on
        were written after the checkpoint, so they are deleted; the resumed run writes them again.
        """
        make_dirs(self.data_dir)
        fixed = []
        with self.lock():
            stale = remove_stale_temp_files(self.data_dir)
            if stale:
                fixed.append(f"removed {len(stale)} stale temp file(s)")
            manifest = self.read_manifest()
            if manifest is not None:
                self.check_compatible(manifest)
            listing = self.listing(manifest)
            if rollback_to is not None:
                after = [f"{self.dirs[k]}/{n:06d}{self.suffix}" for k in range(len(self.dirs)) for n in self.numbers(k) if n >= rollback_to[k]]
                for name in after:
                    with writing(self.data_dir / name):
                        (self.data_dir / name).unlink()
                    listing.pop(name, None)
                if after:
                    fixed.append(f"removed {len(after)} file(s) written after the checkpoint this run resumes from")
            listing.update(self.pending)
            on_disk = set(self.files_on_disk())
            dropped = sorted(set(listing) - on_disk)
            added = sorted(on_disk - set(listing))
            for name in dropped:
                del listing[name]
            lowest = min([i for i in listing.values() if i is not None] + [0])
            for offset, name in enumerate(added, start=1):
                listing[name] = lowest - offset if self.format == "frames" else None
            if added:
                fixed.append(f"added {len(added)} file(s) missing from the manifest (e.g. {added[0]})")
            if dropped:
                fixed.append(f"dropped {len(dropped)} manifest entr{'y' if len(dropped) == 1 else 'ies'} whose file is gone (e.g. {dropped[0]})")
            self._write_manifest(listing)
        self.pending.clear()
        self.next_number = list(rollback_to) if rollback_to is not None else [max(self.numbers(k), default=-1) + 1 for k in range(len(self.dirs))]
        return fixed

    # ------------------------------------------------------------------ writing

    def write(self, k: int, data: bytes, trajectory_id: Optional[int] = None) -> str:
        """Write ``data`` as the next free number of class ``k``; returns its relative name.

        If the file system refuses, the files written so far are committed (or deleted, see
        :meth:`commit`) before the one-line :class:`FileSystemError` is raised.
        """
        while True:
            name = f"{self.dirs[k]}/{self.next_number[k]:06d}{self.suffix}"
            self.next_number[k] += 1
            try:
                created = create_exclusive(self.data_dir / name, data)
            except FileSystemError:
                with contextlib.suppress(FileSystemError):
                    self.commit()
                raise
            if created:
                self.counts[k] += 1
                self.written[k] += 1
                self.pending[name] = trajectory_id
                return name

    def commit(self) -> None:
        """Add the pending files to the manifest (merged with what other ranks listed meanwhile).

        If the manifest cannot be written, the pending files are deleted and the error raised: no
        file stays on disk that the manifest does not list (what cannot be deleted either, e.g. on
        a read-only disk, is listed by the next start's repair).
        """
        try:
            with self.lock():
                listing = self.listing(self.read_manifest())
                listing.update(self.pending)
                self._write_manifest(listing)
        except FileSystemError:
            for name in self.pending:
                with contextlib.suppress(OSError):
                    (self.data_dir / name).unlink(missing_ok=True)
            self.pending.clear()
            raise
        self.pending.clear()

    def _write_manifest(self, listing: Dict[str, Optional[int]]) -> None:
        manifest = dict(self.header)
        manifest["counts"] = {name: len(self.numbers(k)) for k, name in enumerate(self.dirs)}
        manifest["version"] = FORMAT_VERSION
        if self.format == "frames":
            manifest["frame_trajectories"] = dict(sorted(listing.items()))
        else:
            manifest["trajectory_files"] = sorted(listing)
        atomic_write_json(self.manifest_path, manifest)
        self.counts = list(manifest["counts"].values())  # includes files other ranks wrote

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Ranks sharing a data directory merge their listings into one manifest, one at a time."""
        path = self.data_dir / ".manifest.lock"
        with writing(path):
            handle = open(path, "a")
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
