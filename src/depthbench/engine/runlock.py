"""One trainer per run folder at a time, held by the training process itself (`depthbench
train`, a study's local worker and a SLURM job alike): `train()` holds its run folder's
`depthbench.folderlock` from before it reads the folder's records until it has written the last
one. A second trainer is refused (`depthbench train`) or waits (a study's runs), so no two
processes ever write one run folder; the lock of a dead trainer is free and taken over.
"""

from __future__ import annotations

from depthbench.folderlock import FolderLock, FolderLocked


class RunLocked(FolderLocked):
    """Another live process is training this run folder."""


class RunLock(FolderLock):
    error = RunLocked

    def refusal(self, who: str) -> str:
        return (f"{self.dir} is being trained by another process ({who}); wait for it to finish "
                "or stop it, or use another --out")
