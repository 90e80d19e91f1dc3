"""Run a whole study: every model, variant and seed of a preset or a study YAML, then the report.

Without options this runs the `quick` preset (bundled `elpv` data, sized for a 2-core laptop)
into runs/quick. Rerunning the same command skips finished runs and resumes unfinished ones.

Progress goes to stderr; the paths of the results (report.md, report.html, results.csv,
comparisons.csv) to stdout, or one JSON document with `--json`. Exit status: 0 when every run
finished (or is queued on SLURM with --detach), 3 when any run failed (the report is built and
shows it), 2 on a user error before anything ran, 130 when interrupted (the study, or one of its
runs by a signal of its own: rerunning resumes it).
"""

from __future__ import annotations

import json

from depthbench.cli.studyargs import add_study_arguments
from depthbench.errors import RunFailed, StudyInterrupted


def add_arguments(p) -> None:
    add_study_arguments(p)
    p.add_argument("--out", metavar="DIR", help="study folder (default: runs/<study name>)")
    p.add_argument("--seeds", type=int, metavar="N", help="run seeds 0..N-1 (overrides the study's)")
    p.add_argument("--folds", type=int, metavar="K",
                   help="cross-validate: repeated stratified K-fold (K >= 2), one run per model, "
                        "variant, seed, repeat and fold; every image is tested once per repeat "
                        "(the study's test fraction is not used)")
    p.add_argument("--repeats", type=int, metavar="R",
                   help="with --folds (or split.folds): R partitions of the images, each "
                        "shuffled anew (default 1)")
    p.add_argument("--jobs", metavar="auto|N",
                   help="runs at once (default auto: on a GPU machine as many per GPU as its "
                        "memory and the cores allow, else 1); the cores are divided among them")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the runs that failed before (default: keep their failure)")
    p.add_argument("--no-analyze", action="store_true",
                   help="skip `depthbench analyze` of the finished runs before the report")
    # SLURM (the study's `executor:` holds partition, GPUs, time, ...; see docs/cluster.md)
    p.add_argument("--executor", choices=["local", "slurm"],
                   help="where runs train: this machine (default) or SLURM jobs through submitit "
                        "(overrides the study's executor.kind)")
    p.add_argument("--detach", action="store_true",
                   help="with --executor slurm: return once the jobs are submitted; the same "
                        "command later collects them and builds the report")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document on stdout: the runs and the result files")


def run(args) -> int:
    # on use: `--help` stays free of torch, and a study's keys, names and data are checked
    # before torch loads (`load_spec` imports it only to build the models on the meta device)
    from rich.console import Console

    from depthbench.study.spec import load_spec

    console = Console(stderr=True, soft_wrap=True)
    spec = load_spec(args.config, preset=args.preset, data=args.data, seeds=args.seeds,
                     jobs=args.jobs, executor=args.executor, folds=args.folds,
                     repeats=args.repeats, check_data=True)
    from depthbench.study.runner import run_study

    try:
        s = run_study(spec, args.out, retry_failed=args.retry_failed, console=console,
                      analyze=not args.no_analyze, detach=args.detach)
    except StudyInterrupted as e:
        console.print(f"[yellow]depthbench: {e}")
        return e.exit_code
    if args.json:
        print(json.dumps(_document(s), indent=2))
    if s.pending:
        console.print(f"{s.study_dir}: {len(s.finished)} of {s.total} runs finished, "
                      f"{len(s.pending)} queued or running on SLURM; the report follows "
                      "when a later `depthbench run` finds them all done")
        return 0
    console.print(f"{s.study_dir}: {len(s.finished)} of {s.total} runs finished"
                  + (f", {len(s.failed)} failed" if s.failed else "")
                  + (f", {len(s.interrupted)} interrupted (rerun the same command to resume "
                     "them)" if s.interrupted else "") + f" ({s.seconds / 60:.1f} min)")
    for name, reason in s.failed.items():
        console.print(f"[red]  failed: {name}: {reason}")
    if not args.json:
        for key, path in _outputs(s).items():
            print(f"{key.split('_')[0]}: {path}")
    if s.interrupted:
        return StudyInterrupted.exit_code
    return RunFailed.exit_code if s.failed else 0


def _outputs(s) -> dict[str, str]:
    """The result files of a study whose report was built, by their `--json` key."""
    names = {"report_md": "report.md", "report_html": "report.html",
             "results_csv": "results.csv", "comparisons_csv": "comparisons.csv"}
    return {k: str(s.study_dir / v) for k, v in names.items()} if s.report else {}


def _document(s) -> dict:
    return {"study": str(s.study_dir), "runs": s.total, "finished": s.finished,
            "failed": s.failed, "interrupted": s.interrupted, "pending": s.pending,
            "analyzed": s.analyzed,
            "seconds": round(s.seconds, 1), **_outputs(s)}
