"""What one invocation of a study did, and the one line each run gets when it ends (both
schedulers, local and SLURM, report through `Summary.run_ended`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from depthbench.study.records import score_line


@dataclass
class Summary:
    study_dir: Path
    total: int
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run name -> reason
    interrupted: list[str] = field(default_factory=list)  # stopped by a signal: a rerun resumes
    skipped: int = 0  # finished or failed before this invocation
    pending: list[str] = field(default_factory=list)  # queued or running on SLURM (--detach)
    seconds: float = 0.0
    analyzed: int = 0  # runs given an analysis.json by this invocation
    report: object = None

    def run_ended(self, name: str, result: dict, console, *, detail: str, reason: str,
                  log: Path | None = None) -> None:
        """Count run `name` as finished, interrupted or failed by its `result` and print its one
        line: `[n/total] <run>: finished (<detail>), <scores>`, `[n/total] <run>: interrupted
        (<detail>) after N epochs; ...` (a rerun resumes it) or `[n/total] <run>: FAILED
        (<detail>: <reason>); ...`. `detail` says how it ran ("in 12 s",
        "job 42_0, requeued 1x"); `reason` stands for the failure when the record names none;
        `log` is where to read more."""
        n = len(self.finished) + len(self.failed) + len(self.interrupted) + 1
        tag = f"[{n}/{self.total}] {name}"
        if result.get("status") == "finished":
            self.finished.append(name)
            console.print(f"{tag}: finished ({detail}), {score_line(result)}")
            return
        if result.get("status") == "interrupted":
            self.interrupted.append(name)
            console.print(f"[yellow]{tag}: interrupted ({detail}) after "
                          f"{result.get('epochs_completed') or 0} epochs; rerunning the study "
                          "resumes it" + (f"; log: {log}" if log else ""))
            return
        reason = (result.get("failure") or {}).get("reason") or reason
        self.failed[name] = reason
        console.print(f"[red]{tag}: FAILED ({detail}: {reason}); the study goes on, the report "
                      "shows it" + (f"; log: {log}" if log else ""))
