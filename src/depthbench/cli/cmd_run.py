"""Run a whole study: every model, variant and seed of a preset or a study YAML, then the report.

Without options this runs the `quick` preset (bundled `elpv` data, sized for a 2-core laptop)
into runs/quick. Rerunning the same command skips finished runs and resumes unfinished ones.
"""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--preset", choices=["quick", "paper", "modern", "smoke"],
                   help="a study shipped with depthbench (default: quick)")
    p.add_argument("--config", metavar="STUDY.yaml", help="your own study file (instead of --preset)")
    p.add_argument("--data", metavar="DATA", help="image folder (one sub-folder per class) or a "
                                                 "bundled name: elpv, synthetic; overrides the study's")
    p.add_argument("--out", metavar="DIR", help="study folder (default: runs/<study name>)")
    p.add_argument("--seeds", type=int, metavar="N", help="run seeds 0..N-1 (overrides the study's)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="runs at once (default: one per GPU, else 1); CPU threads are divided")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the runs that failed before (default: keep their failure)")
    p.add_argument("--no-analyze", action="store_true",
                   help="skip `depthbench analyze` of the finished runs before the report")
    # SLURM (the study's `executor:` holds partition, GPUs, time, ...; see the README)
    p.add_argument("--executor", choices=["local", "slurm"],
                   help="where runs train: this machine (default) or SLURM jobs through submitit "
                        "(overrides the study's executor.kind)")
    p.add_argument("--detach", action="store_true",
                   help="with --executor slurm: return once the jobs are submitted; the same "
                        "command later collects them and builds the report")


def run(args) -> int:
    from rich.console import Console

    from depthbench.errors import ConfigError
    from depthbench.study import load_spec, run_study
    from depthbench.study.runner import StudyInterrupted

    console = Console(stderr=True, soft_wrap=True)
    spec = load_spec(args.config, preset=args.preset, data=args.data, seeds=args.seeds,
                     jobs=args.jobs, executor=args.executor)
    if args.detach and spec.executor.kind != "slurm":
        raise ConfigError("--detach: only with --executor slurm (or `executor: {kind: slurm}`)")
    try:
        summary = run_study(spec, args.out, retry_failed=args.retry_failed, console=console,
                            build_report=args.no_analyze, detach=args.detach)
    except StudyInterrupted as e:
        console.print(f"[yellow]depthbench: {e}")
        return e.exit_code
    d = summary.study_dir
    if summary.pending:
        console.print(f"{d}: {len(summary.finished)} of {summary.total} runs finished, "
                      f"{len(summary.pending)} queued or running on SLURM; the report follows "
                      "when a later `depthbench run` finds them all done")
        return 0
    if not args.no_analyze:  # SE, attention, CKA, Grad-CAM; then the report that shows them
        _analyze_then_report(d, console)
    mins = summary.seconds / 60
    console.print(f"{d}: {len(summary.finished)} of {summary.total} runs finished"
                  + (f", {len(summary.failed)} failed" if summary.failed else "")
                  + f" ({mins:.1f} min)")
    for name, reason in summary.failed.items():
        console.print(f"[red]  failed: {name}: {reason}")
    console.print(f"report: {d / 'report.md'} and {d / 'report.html'}")
    return 0


def _analyze_then_report(study_dir, console) -> None:
    """`depthbench analyze` on every finished run, then the report (which reads analysis.json)."""
    import time

    from depthbench.cli.cmd_analyze import analyze
    from depthbench.errors import DepthbenchError
    from depthbench.report import build_report

    t0 = time.monotonic()
    if any(study_dir.glob("*/result.json")):
        try:
            out = analyze(study_dir, progress=lambda name: console.print(f"analyzing {name}"),
                          figures=False)  # the report draws the study's figures
        except DepthbenchError as e:  # the runs and their report stand without the analysis
            console.print(f"[yellow]analysis skipped: {e}; the report is built without it")
        else:
            done = sum(isinstance(r, dict) for r in out.values())
            console.print(f"analysis: {done} runs in {time.monotonic() - t0:.0f} s")
    build_report(study_dir)
