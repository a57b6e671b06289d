"""Helpers for fault tests: run a CLI in-process as its console script would, hash a tree, and
mount real small file systems (a read-only one, a nearly full one) for disk faults."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

COMMANDS = {
    "train": "embodireward.train",
    "train_reward": "embodireward.train_reward",
    "list": "embodireward.list",
}


def invoke(command: str, argv: List[str]) -> Tuple[int, str]:
    """Run ``python -m embodireward.<command> argv`` in this process: exit status and stderr.

    ``run_cli`` is what the console scripts run, so an error it does not turn into one line
    escapes from here as an exception (the traceback a user would see) and fails the test.
    """
    import importlib

    from embodireward.cli import run_cli

    module = importlib.import_module(COMMANDS[command])
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            run_cli(lambda: module.main(argv))
        except SystemExit as exc:
            return int(exc.code or 0), stderr.getvalue()
    return 0, stderr.getvalue()


def tree_hashes(root: Path) -> Dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root``; directories as ``<dir>/``."""
    hashes = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            hashes[rel + "/"] = "dir"
        elif path.is_file():
            hashes[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def can_mount() -> str | None:
    """None when this process may mount tmpfs file systems (root), else why not."""
    if os.geteuid() != 0:
        return "read-only and full-disk cases mount tmpfs file systems, which needs root (CI runs as root)"
    return None


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int, read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kib}k" + (",ro" if read_only else "")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        if os.environ.get("CI"):
            raise RuntimeError(f"cannot mount tmpfs at {path}: {result.stderr.strip()}")
        pytest.skip(f"cannot mount tmpfs at {path}: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave_kib: int) -> None:
    """Fill the file system of ``path`` until only about ``leave_kib`` KiB are free."""
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    (path / "filler.bin").write_bytes(b"\0" * max(0, free - leave_kib * 1024))


# -- killing real training processes ---------------------------------------------------------

TIME_TAGS = ("charts/sps", "charts/rollout_time_share", "reward_model/seconds")  # wall-clock figures differ between runs


def train_process(config_path: Path, *sets: str, repo_root: Path) -> subprocess.Popen:
    """``python -m embodireward.train`` in a child process (one torch thread, output to a log)."""
    import sys

    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    args = [sys.executable, "-m", "embodireward.train", "--config", str(config_path)]
    for item in sets:
        args += ["--set", item]
    log = open(config_path.with_suffix(f".{len(list(config_path.parent.glob('*.log')))}.log"), "w")
    return subprocess.Popen(args, cwd=repo_root, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_to_end(config_path: Path, *sets: str, repo_root: Path, timeout: float = 600) -> None:
    process = train_process(config_path, *sets, repo_root=repo_root)
    code = process.wait(timeout=timeout)
    if code != 0:
        logs = sorted(config_path.parent.glob("*.log"))
        raise AssertionError(f"training exited with {code}: {logs[-1].read_text()[-2000:] if logs else ''}")


def kill_at(process: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL ``process`` after ``seconds``; False if it finished before."""
    import signal

    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def kill_when(process: subprocess.Popen, ready: Callable[[], Any], timeout: float = 300, poll: float = 0.0005) -> Any:
    """SIGKILL ``process`` as soon as ``ready()`` returns something truthy, and return that; None if
    the process ended (or ``timeout`` passed) first."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        found = ready()
        if found:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return found
        time.sleep(poll)
    return None


def kill_during_write(process: subprocess.Popen, folder: Path, pattern: str = ".latest.pt.*.tmp", timeout: float = 300) -> Path | None:
    """SIGKILL ``process`` the moment a temp file of an atomic write appears in ``folder``.

    Returns the temp file left behind (the write was cut), or None if the process ended first.
    """
    temps = kill_when(process, lambda: list(folder.glob(pattern)) if folder.is_dir() else [], timeout)
    return temps[0] if temps else None


def logged_scalars(run_dir: Path) -> Dict[str, List[Tuple[int, float]]]:
    """Every scalar of a run (TensorBoard honours the purge events a resume writes), by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "logs"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: sorted((e.step, e.value) for e in accumulator.Scalars(tag)) for tag in accumulator.Tags()["scalars"]}


def scalar_differences(a: Dict[str, list], b: Dict[str, list]) -> List[str]:
    """Tags whose logged values differ (time-based tags ignored); empty when bit-identical."""
    tags = (set(a) | set(b)) - set(TIME_TAGS)
    return sorted(tag for tag in tags if a.get(tag) != b.get(tag))
