"""One `depthbench run` per study folder at a time: the study folder's `depthbench.folderlock`
(an OS file lock, freed by the kernel when its holder dies, so a killed run's lock is taken over).
"""

from __future__ import annotations

from depthbench.folderlock import LOCK_NAME, OWNER_NAME, FolderLock, FolderLocked

__all__ = ["LOCK_NAME", "OWNER_NAME", "StudyLock", "StudyLocked"]


class StudyLocked(FolderLocked):
    """Another process is running this study folder."""


class StudyLock(FolderLock):
    error = StudyLocked

    def refusal(self, who: str) -> str:
        return (f"{self.dir} is in use by another `depthbench run` ({who}); wait for it to "
                "finish or stop it, or pass --out to use another folder")
