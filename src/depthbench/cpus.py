"""The CPUs this process may run on: its affinity (a SLURM job's cgroup, `taskset`, the cores a
study's runner gives each run), not the machine's count. Every worker, thread and decoding pool
is sized from here."""

from __future__ import annotations

import os


def usable_cpus() -> list[int]:
    """The cores this process may run on, sorted; every core where the platform has no affinity."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def usable_cpu_count() -> int:
    """How many cores `usable_cpus` names (at least 1)."""
    return max(1, len(usable_cpus()))
