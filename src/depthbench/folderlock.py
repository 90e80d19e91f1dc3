"""One process at a time in a folder: the study folder (one `depthbench run`, `study.lock`) and
each run folder (one trainer, `engine.runlock`) are held with the same lock.

The mutual exclusion is an OS file lock on `<folder>/.lock` (`filelock`, flock on POSIX): the
kernel releases it when its process dies, however it dies, so the lock of a killed process is
free and simply taken over. Beside it, `<folder>/.lock.owner` names the holder (pid, host, start
time) for the refusal message; a leftover owner file of a dead process is overwritten by the next
holder, which keeps it as `took_over` to say so, and removes it when it lets go.

The lock file itself stays, empty, in a folder that holds anything else: a process that opened it
to wait must find the same file when its holder lets go (filelock keeps Unix lock files for that
reason). A folder that holds nothing but the lock (a start that failed, or was killed, before it
wrote anything) goes with its lock: the holder removes the lock file while it still holds it, so
a waiter that opened it finds it unlinked (filelock checks) and starts again on a new one.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from depthbench._io import atomic_write_json
from depthbench.errors import DepthbenchError

LOCK_NAME = ".lock"
OWNER_NAME = ".lock.owner"
_ATTEMPTS = 20  # a folder removed under a waiter that many times in a row: give up


class FolderLocked(DepthbenchError):
    """Another live process holds the folder; `owner` is its owner record ({} if unknown)."""

    def __init__(self, message: str, owner: dict):
        super().__init__(message)
        self.owner = owner


class FolderLock:
    """`with FolderLock(folder):` holds `folder` (created if missing). A held folder is refused
    at once (`wait=0`, the default) with `error` and the subclass's `refusal(who)`, or waited for
    up to `wait` seconds (`math.inf`: until it is free), after calling `on_wait(owner)` once."""

    error: type[FolderLocked] = FolderLocked

    def __init__(self, folder: str | os.PathLike, *, wait: float = 0,
                 on_wait: Callable[[dict], None] | None = None):
        self.dir = Path(folder)
        self.wait, self.on_wait = wait, on_wait
        self._lock = FileLock(str(self.dir / LOCK_NAME), timeout=0)
        self.took_over: dict | None = None  # the dead holder's owner record, if one was left

    def refusal(self, who: str) -> str:
        return f"{self.dir} is in use by another process ({who})"

    def __enter__(self):
        owner_path = self.dir / OWNER_NAME
        try:
            self._acquire(0)
        except Timeout:
            owner = read_owner(self.dir)
            if self.wait <= 0:
                raise self.error(self.refusal(describe(owner)), owner) from None
            if self.on_wait:
                self.on_wait(owner)
            try:
                self._acquire(-1 if math.isinf(self.wait) else self.wait)
            except Timeout:
                raise self.error(self.refusal(describe(read_owner(self.dir))), owner) from None
        previous = read_owner(self.dir)
        if previous and previous.get("pid") != os.getpid():
            self.took_over = previous  # its process is gone: the kernel freed its lock
        atomic_write_json(owner_path, {"pid": os.getpid(), "host": socket.gethostname(),
                                       "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        return self

    def _acquire(self, timeout: float) -> None:
        """The file lock, in the folder (created if missing); again when the folder went away
        under a waiter (its holder's start wrote nothing and removed it: module docstring)."""
        for attempt in range(_ATTEMPTS):
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                self._lock.acquire(timeout=timeout)
                return
            except FileNotFoundError:
                if attempt == _ATTEMPTS - 1:
                    raise

    def __exit__(self, *exc) -> None:
        try:
            (self.dir / OWNER_NAME).unlink(missing_ok=True)
            if {p.name for p in self.dir.iterdir()} <= {LOCK_NAME}:  # nothing but the lock
                (self.dir / LOCK_NAME).unlink(missing_ok=True)  # held still: module docstring
                self.dir.rmdir()
        except OSError:  # left as it is: the next holder tries again
            pass
        finally:
            self._lock.release()


def holder(folder: str | os.PathLike) -> dict | None:
    """The owner record of the live process holding `folder` ({} when it left none), or None
    when the folder is free. Probes the lock without keeping it."""
    path = Path(folder) / LOCK_NAME
    if not path.is_file():
        return None
    probe = FileLock(str(path), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return read_owner(folder)
    except OSError:  # a folder we may not write: nobody can hold it through us either
        return None
    probe.release()
    return None


def describe(owner: dict) -> str:
    """`pid 123 on node1, started 2025-01-01 12:00:00`, or `another process` without a record."""
    if not owner:
        return "another process"
    return f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"


def read_owner(folder: str | os.PathLike) -> dict:
    try:
        owner = json.loads((Path(folder) / OWNER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}
