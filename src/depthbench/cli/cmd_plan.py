"""Plan a study before it trains: its design, what it costs, what each comparison can decide,
and the alternatives beside it.

Takes the study arguments of `depthbench run` and trains nothing. It prints the runs by model and
variant and the images each run trains, selects and tests on (the split `run` would use); the
cost per model and in total (training FLOPs, time on this machine from a few timed training
steps per model, GPU time estimated from a stated throughput, peak memory of a run, disk); the
comparisons the report would make, each with its minimal detectable difference (80% power at the
report's Holm level), from the variance a finished or partial study measured (`--from`) or from
stated defaults; and alternative designs side by side (the single split with 1, 3 and 5 seeds;
5-fold x 1 and x 2; 10-fold x 1), marking the cheapest whose worst comparison detects
`--target` points. The timings are kept per machine (in the cache folder) for `run`'s first
lines and reused here; `--remeasure` times again. `--json` prints one JSON document instead.
"""

from __future__ import annotations

import json

from depthbench.cli.studyargs import add_study_arguments

NONE_YET = "–"  # a figure the plan cannot give (a grid without comparisons)


def add_arguments(p) -> None:
    add_study_arguments(p)
    p.add_argument("--out", metavar="DIR", help="the study folder `run` would use (default: "
                   "runs/<study name>); its split.json, when there is one, is the split planned")
    p.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1 (overrides the study's)")
    p.add_argument("--folds", type=int, metavar="K",
                   help="plan K-fold cross-validation instead of the single split")
    p.add_argument("--repeats", type=int, metavar="R",
                   help="with --folds: repeat the K folds R times with new partitions (default 1)")
    p.add_argument("--jobs", metavar="auto|N", help="runs at once, as `run --jobs`")
    p.add_argument("--target", type=float, default=3.0, metavar="POINTS",
                   help="the difference in accuracy points the study should detect; the "
                        "cheapest design that does is marked (default 3)")
    p.add_argument("--from", dest="from_dir", metavar="STUDY_DIR",
                   help="a finished or partial study whose measured variance (each comparison's "
                        "image and run-to-run terms) the detectable differences use, instead "
                        "of the stated defaults")
    p.add_argument("--remeasure", action="store_true",
                   help="time every model again, even where this machine kept a timing")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    # on use: `--help` stays free of torch
    from rich.console import Console

    from depthbench.study.plan import plan_study
    from depthbench.study.runner import default_study_dir
    from depthbench.study.spec import load_spec

    console = Console(stderr=True, soft_wrap=True)
    spec = load_spec(args.config, preset=args.preset, data=args.data, seeds=args.seeds,
                     jobs=args.jobs)
    out = args.out or default_study_dir(spec)
    plan = plan_study(spec, out, folds=args.folds, repeats=args.repeats, target=args.target,
                      remeasure=args.remeasure, measured_in=args.from_dir,
                      progress=lambda key: console.print(f"timed {json.loads(key)[0]}"))
    doc = plan.to_dict()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_plan(doc))
    return 0


def format_plan(doc: dict) -> str:
    """The plan as text: design, costs, alternatives."""
    from depthbench.study.plan.estimate import duration, size  # on use, as in `run` above
    d, c, m = doc["design"], doc["costs"], doc["machine"]
    sizes = d["images_per_run"]
    lines = [f"Study {doc['study']}: {doc['data']}, {doc['images']:,} images, "
             f"{doc['classes']} classes", "",
             f"Design: {d['label']}: {d['runs']} runs",
             f"  images per run: {sizes['train']:,} train, {sizes['val']:,} val (selects the "
             f"checkpoint), {sizes['test']:,} test"
             + (f"; each image tested once per repeat ({d['folds']} folds x {d['repeats']})"
                if d["folds"] else ""), ""]
    lines += _table(("model", "variants", "runs"),
                    [(model, ", ".join(v), str(sum(v.values())))
                     for model, v in d["runs_by_model"].items()])
    where = (f"{m['name']}" + ("" if m["device"] == "cuda" else " CPU")
             + f", {m['precision']}, {m['runs_at_once']} run(s) at a time, "
               f"{m['threads_per_run']} thread(s) each")
    lines += ["", f"Cost on this machine ({where}) and on a GPU (estimate):", ""]
    rows = [(r["model"], str(r["runs"]), f"{r['params'] / 1e6:.1f}M", f"{r['macs'] / 1e9:.2f}",
             f"{(r['train_flops'] + r['eval_flops']) / 1e15:.3g}", duration(r["seconds"]),
             duration(r["gpu_seconds"]), size(r["peak_bytes"]), size(r["disk_bytes"]),
             r["timing"]) for r in c["models"]]
    t = c["total"]
    rows.append(("total", str(t["runs"]), "", "", f"{(t['train_flops'] + t['eval_flops']) / 1e15:.3g}",
                 f"{duration(t['seconds_this_machine'])} wall", duration(t["gpu_seconds_estimate"]),
                 size(t["peak_bytes_per_run"]), size(t["disk_bytes"]), ""))
    lines += _table(("model", "runs", "params", "GMACs/img", "PFLOP", "this machine",
                     "GPU (est.)", "step memory", "disk", "timing"), rows)
    lines += ["",
              "  PFLOP: training (forward + backward) and evaluation; this machine: run time "
              "with the analysis (the total: wall time with its runs at once, the report "
              "included); step memory: one training step's tensors (a GPU run adds its CUDA "
              "context); disk: checkpoints (best.safetensors 4 B/param, last.ckpt with the "
              "optimizer state) and records.",
              f"  GPU time is an estimate, not a measured run: {t['gpu_basis']}."]
    if c["longer_than_a_day"]:
        lines.append(f"  This study would take more than a day on this machine "
                     f"({duration(t['seconds_this_machine'])}): train it on a cluster "
                     "(--executor slurm) or on a GPU.")
    lines += _decisions(doc)
    lines += ["", "Alternatives (one seed each unless said; detectable differences in accuracy "
                  "points, 80% power at the report's Holm level):", ""]
    target = doc["target_points"]
    cheapest = doc["cheapest_reaching_target"]
    rows = [(a["design"], str(a["runs"]), f"{a['images']['test']:,}",
             duration(a["hours_this_machine"] * 3600), duration(a["gpu_hours_estimate"] * 3600),
             size(a["disk_bytes"]), _points(a["detectable_median"]),
             _points(a["detectable_worst"]),
             NONE_YET if a["reaches_target"] is None else "no" if not a["reaches_target"]
             else "yes, the cheapest" if a["design"] == cheapest else "yes")
            for a in doc["alternatives"]]
    lines += _table(("design", "runs", "test images/run", "this machine", "GPU (est.)", "disk",
                     "median detectable", "worst detectable",
                     f"worst within {target:g} pts"), rows)
    reason = ("no comparison to make" if not doc["comparisons"] else
              "none of these designs detects it in every comparison")
    lines += ["", f"Cheapest design detecting {target:g} points in every comparison (its worst): "
                  + (cheapest or f"{NONE_YET} ({reason})")]
    return "\n".join(lines)


def _decisions(doc: dict) -> list[str]:
    """The comparisons the report would make and what the study's design detects in each."""
    comps = doc["comparisons"]
    if not comps:
        return ["", "What each comparison can decide: no comparison (the grid has no pair the "
                    "report compares)."]
    lines = ["", f"What each comparison can decide ({doc['design']['label']}; the report's "
                 f"{len(comps)} comparisons, Holm over all {comps[0]['m']}; minimal detectable "
                 "difference at 80% power):", ""]
    rows = [(c["name"], c["section"], str(c["m"]), _points(c["detectable"]), c["variance"])
            for c in comps]
    lines += _table(("comparison", "question", "m", "detectable (points)", "variance"), rows)
    lines += ["", f"  Variance: {doc['variance']['text']}."]
    return lines


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def fmt(cells) -> str:
        return "  " + "  ".join(c.rjust(w) if i and c[:1].isdigit() else c.ljust(w)
                                for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def _points(v: float | None) -> str:
    return NONE_YET if v is None else f"{v:.1f}"
