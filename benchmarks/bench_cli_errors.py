"""Seconds from a typo to its one-line error, in each command that trains or loads a model.

    python -m benchmarks.bench_cli_errors [--quick] [--rounds 5] [--before REV]

Each case is one `python -m depthbench ...` with one mistake in it (an unknown model, a missing
data folder, a misspelt study key, a YAML file given as a checkpoint, `--top-k 0`), timed from
start to exit, twice per round: `before` runs the source tree of git revision REV (extracted with
`git archive` into a temporary folder and put first on PYTHONPATH, so the same interpreter and
packages run it), `after` this checkout. The two alternate within each round, so a burst of
load on a shared machine hits both; the table gives the median of the rounds, the exit codes
and the error line each printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import markdown_table, section

ROOT = Path(__file__).resolve().parents[1]
# The revision before the command line checked its inputs ahead of torch.
BEFORE = "65aec8a"

STUDY = """name: typo
data: synthetic:n=24,size=16,classes=2
img_size: 16
models: [resnet18]
overrides: {epochs: 1, batchsize: 8}
"""

CASES = {
    "train: unknown model": ["train", "--model", "resnet19", "--data", "synthetic", "--out", "r1"],
    "train: no data folder": ["train", "--model", "resnet18", "--data", "cels", "--out", "r2"],
    "run: misspelt key": ["run", "--config", "typo.yaml", "--out", "s1"],
    "evaluate: a YAML file": ["evaluate", "typo.yaml", "--data", "synthetic"],
    "predict: --top-k 0": ["predict", "w.safetensors", "a.png", "--top-k", "0"],
}


def source_tree(rev: str, into: Path) -> Path:
    """`src/` of git revision `rev`, extracted under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def timed(argv: list[str], cwd: Path, pythonpath: Path | None) -> tuple[float, int, str]:
    """(seconds, exit code, last stderr line) of `python -m depthbench argv`."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath),
                                             *filter(None, [env.get("PYTHONPATH")])])
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "depthbench", *argv], cwd=cwd, env=env,
                       capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    lines = p.stderr.strip().splitlines()
    return seconds, p.returncode, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_cli_errors",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--before", default=BEFORE, metavar="REV",
                   help=f"the revision to compare with (default {BEFORE})")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before = source_tree(args.before, work / "before")
        (work / "typo.yaml").write_text(STUDY, encoding="utf-8")
        (work / "w.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b"{}" + b" " * 14)
        runs: dict[str, dict[str, list]] = {c: {"before": [], "after": []} for c in CASES}
        for r in range(1 if args.quick else args.rounds):
            for case, cmd in CASES.items():
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for which in order:
                    tree = before if which == "before" else None
                    runs[case][which].append(timed(cmd, work, tree))
    rows, lines = [], []
    for case, got in runs.items():
        b, a = (statistics.median(s for s, _, _ in got[w]) for w in ("before", "after"))
        rows.append({"command": case, "before s": b, "after s": a, "before / after": b / a,
                     "exit (before, after)": f"{got['before'][0][1]}, {got['after'][0][1]}"})
        lines += [f"- {case}", f"  - before: `{got['before'][0][2]}`",
                  f"  - after: `{got['after'][0][2]}`"]
    body = (f"Median of {len(runs[next(iter(CASES))]['after'])} round(s); before = revision "
            f"{args.before}, after = this checkout.\n\n" + markdown_table(rows) + "\n"
            + "\n".join(lines) + "\n")
    print(section("Seconds to a typo's error line (benchmarks/bench_cli_errors.py)", body),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
