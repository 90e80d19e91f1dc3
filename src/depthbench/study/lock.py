"""One `depthbench run` per study folder at a time.

The mutual exclusion is an OS file lock (`filelock`, flock on POSIX): the kernel releases it when
its process dies, however it dies, so a lock left by a killed run is free and simply taken over.
Beside it, `.lock.owner` names the holder (pid, host, start time) for the refusal message; a
leftover owner file from a dead process is overwritten by the next holder.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from depthbench._io import atomic_write_json
from depthbench.errors import DepthbenchError

LOCK_NAME = ".lock"
OWNER_NAME = ".lock.owner"


class StudyLocked(DepthbenchError):
    """Another process is running this study folder."""


class StudyLock:
    def __init__(self, study_dir: str | Path):
        self.dir = Path(study_dir)
        self._lock = FileLock(str(self.dir / LOCK_NAME), timeout=0)
        self.took_over: dict | None = None  # the dead holder's owner record, if one was left

    def __enter__(self) -> StudyLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        owner_path = self.dir / OWNER_NAME
        try:
            self._lock.acquire()
        except Timeout:
            owner = _read_owner(owner_path)
            who = (f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"
                   if owner else "another process")
            raise StudyLocked(f"{self.dir} is in use by another `depthbench run` ({who}); wait for it "
                              "to finish or stop it, or pass --out to use another folder") from None
        previous = _read_owner(owner_path)
        if previous and previous.get("pid") != os.getpid():
            self.took_over = previous  # its process is gone: the kernel freed its lock
        atomic_write_json(owner_path, {"pid": os.getpid(), "host": socket.gethostname(),
                                       "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        return self

    def __exit__(self, *exc) -> None:
        try:
            (self.dir / OWNER_NAME).unlink(missing_ok=True)
        finally:
            self._lock.release()


def _read_owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
