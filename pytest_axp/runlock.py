"""One writer per run: an OS lock (flock) that the process writing a run holds.

The lock is keyed by the run's ULID, not its folder: an xdist controller hands the ULIDs to
its workers before anything is collected, so it cannot know the experiment id that names
the folder, and the workers, its children, write while it holds the lock. The lock file
sits beside the run folders (`.<ULID>.lock`), so it is no artifact of any run, and it is
removed on release. The OS drops the lock of a process that dies: a stale file never blocks.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

# path -> (descriptor, how many holders in this process)
_held: dict[Path, tuple[int, int]] = {}


class RunBusy(Exception):
    """Another process holds the run."""

    def __init__(self, run: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"run {run} is being written by {holder}; wait for it to end "
                         "(or stop it) and try again")
        self.run = run
        self.pid = pid


def lock_path(runs_dir: Path, ulid: str) -> Path:
    return runs_dir / f".{ulid}.lock"


def acquire(runs_dir: Path, ulid: str, run_name: str | None = None) -> None:
    """Hold the run of `ulid` for this process (re-entrant); RunBusy if another holds it."""
    path = lock_path(runs_dir, ulid)
    if path in _held:
        fd, count = _held[path]
        _held[path] = (fd, count + 1)
        return
    runs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunBusy(run_name or f"*-{ulid}", _holder_pid(path)) from None
        # A holder that released in the meantime unlinked the file we opened: lock anew.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "run": run_name}).encode())
    _held[path] = (fd, 1)


def release(runs_dir: Path, ulid: str) -> None:
    path = lock_path(runs_dir, ulid)
    if path not in _held:
        return
    fd, count = _held.pop(path)
    if count > 1:
        _held[path] = (fd, count - 1)
        return
    # Unlink while still holding it: whoever opened the old file re-checks the inode.
    try:
        path.unlink()
    except OSError:
        pass
    os.close(fd)


def _holder_pid(path: Path) -> int | None:
    # The holder writes its pid right after taking the lock; give it a moment.
    for _ in range(20):
        try:
            data = json.loads(path.read_text() or "null")
        except (OSError, ValueError):
            data = None
        pid = data.get("pid") if isinstance(data, dict) else None
        if isinstance(pid, int):
            return pid
        time.sleep(0.05)
    return None


def holder_alive(runs_dir: Path, ulid: str) -> bool:
    """Whether a live process holds the run of `ulid` (it is being written). The lock file
    is only read, never locked: a reader must not make a writer wait."""
    try:
        data = json.loads(lock_path(runs_dir, ulid).read_text() or "null")
    except (OSError, ValueError):
        return False
    return process_alive(data.get("pid") if isinstance(data, dict) else None)


def process_alive(pid: object) -> bool:
    """Whether `pid` (as read from a lock, state file or label) names a running process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
