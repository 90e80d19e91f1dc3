"""`depthbench run` end to end through the real command line, on the tiny `smoke` data.

The smoke preset is the real pipeline shrunk (32 px synthetic images, two epochs of two batches);
each test here trains for real and reads the records the way a user would.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from depthbench.analysisrecord import read_analysis

pytestmark = pytest.mark.slow

SMOKE_RUNS = ["resnet18__base", "seresnet18__base", "swin_tiny_patch4_window7_224__base",
              "swin_tiny_patch4_window7_224__keydrop0.1"]
TINY = {"data": "synthetic:n=60,size=32,classes=3,seed=0", "split": {"val": 0.2, "test": 0.3},
        "recipe": "modern", "img_size": 32,
        "overrides": {"epochs": 2, "batch_size": 8, "lr": 0.001, "warmup_epochs": 0,
                      "limit_train_batches": 2}}


def depthbench(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "depthbench", *args], capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())


def result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def study_file(tmp_path: Path, name: str, **changes) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump({"name": name, **TINY, **changes}))
    return p


def test_smoke_two_seeds_end_to_end_then_rerun_skips(tmp_path, monkeypatch, capsys):
    out = tmp_path / "smoke"
    # two runs at a time, one thread each (the CLI's --jobs; `auto` trains one at a time on a CPU)
    p = depthbench("run", "--preset", "smoke", "--seeds", "2", "--jobs", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr
    names = [f"{r}__s{s}" for s in (0, 1) for r in SMOKE_RUNS]
    assert sorted(d.name for d in out.iterdir() if d.is_dir() and "__" in d.name) == sorted(names)
    split = (out / "split.json").read_bytes()
    for name in names:
        run = out / name
        for f in ("config.yaml", "split.json", "metrics.csv", "best.safetensors", "last.ckpt",
                  "result.json", "train.log"):
            assert (run / f).is_file(), f"{name}/{f}"
        r = result(run)
        assert r["status"] == "finished" and r["epochs_completed"] == 2
        assert (r["variant"], r["seed"]) == (name.split("__")[1], int(name[-1]))
        assert (run / "split.json").read_bytes() == split  # one manifest for the whole study
        assert r["best"]["test"]["total"] == 18  # int(20 * 0.3) per class, 3 classes
    assert yaml.safe_load((out / "study.yaml").read_text())["seeds"] == [0, 1]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 8 and {r["seed"] for r in rows} == {"0", "1"}
    md = (out / "report.md").read_text()
    assert (out / "report.html").is_file() and "SE-ResNet-18" in md and "Swin-T" in md
    # the pipeline analyzed every run before the report: an analysis.json each, read back
    assert all(read_analysis(out / name)["run"] == name for name in names)
    # the paired comparisons over both seeds: the SE pair, the key-dropout pair, and Swin-T
    # against the CNNs nearest it in compute (here the only ones: ResNet-18 and SE-ResNet-18)
    rows = list(csv.DictReader(open(out / "comparisons.csv")))
    pairs = {(r["section"], r["a_model"], r["a_variant"], r["b_model"]) for r in rows}
    swin = "swin_tiny_patch4_window7_224"
    assert pairs == {("se", "seresnet18", "base", "resnet18"),
                     ("variant", swin, "keydrop0.1", swin),
                     ("across", swin, "base", "resnet18"), ("across", swin, "base", "seresnet18")}
    assert all(c["seeds"] == "2" and c["n_images"] == "18" and c["method"] for c in rows)
    assert all(0 <= float(c["p"]) <= 1 for c in rows)
    assert len(list((out / "figures").glob("*.png"))) >= 3
    assert "8 of 8 runs finished" in p.stderr
    # progress on stderr, the result files on stdout
    assert p.stdout.splitlines() == [f"report: {out / 'report.md'}", f"report: {out / 'report.html'}",
                                     f"results: {out / 'results.csv'}",
                                     f"comparisons: {out / 'comparisons.csv'}"], p.stdout
    plan_agrees_with_the_report(out, monkeypatch, capsys, tmp_path)

    # rerun with one seed: every run skipped (records untouched), the report rebuilt for the
    # study as it now stands (seed 0), naming seed 1's folders as left out
    stamps = {n: (out / n / "result.json").stat().st_mtime_ns for n in names}
    p = depthbench("run", "--preset", "smoke", "--seeds", "1", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    assert "4 runs already finished" in p.stderr and "to go" not in p.stderr
    assert "4 of 4 runs finished" in p.stderr
    doc = json.loads(p.stdout)
    assert doc["finished"] == [f"{r}__s0" for r in SMOKE_RUNS] and not doc["failed"], doc
    assert doc["report_md"] == str(out / "report.md") and doc["runs"] == 4, doc
    assert yaml.safe_load((out / "study.yaml").read_text())["seeds"] == [0]
    assert {r["seed"] for r in csv.DictReader(open(out / "results.csv"))} == {"0"}
    left_out = (out / "report.md").read_text().split("### Left out", 1)[1]
    assert all(f"{r}__s1" in left_out for r in SMOKE_RUNS), left_out
    assert stamps == {n: (out / n / "result.json").stat().st_mtime_ns for n in names}


def plan_agrees_with_the_report(out: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    """`plan --from` the finished study, at its own design: every comparison the report made,
    and no other, with the report's Holm family and detectable difference to comparisons.csv's
    last digit (the costs are not this check's business: the models' timings are made up)."""
    from depthbench.cli.main import main
    from depthbench.study.plan import timing

    def made_up(configs, **kwargs):
        return {k: timing.Timing(1e-3, 1e-4, 0.1, 0.1, 8, 1e9, "today") for k in configs}, 0.0

    argv = ["plan", "--preset", "smoke", "--seeds", "2", "--jobs", "2", "--out", str(out),
            "--from", str(out), "--json"]
    with monkeypatch.context() as m:  # the made-up timings are kept in a cache of their own
        m.setattr(timing, "measure", made_up)
        m.setenv("DEPTHBENCH_CACHE", str(tmp_path / "plan-cache"))
        assert main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["variance"]["source"] == str(out)
    planned = {(*c["a"], *c["b"]): c for c in plan["comparisons"]}
    rows = list(csv.DictReader(open(out / "comparisons.csv")))
    assert len(planned) == len(rows) and all(c["variance"] == "measured" for c in planned.values())
    for r in rows:
        c = planned[r["a_model"], r["a_variant"], r["b_model"], r["b_variant"]]
        assert (c["section"], c["m"]) == (r["section"], len(rows))
        assert f"{c['detectable']:.4f}" == r["mde_pts"], (c, r)


def _wait_for(pred, timeout=900.0, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"runner exited early: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError("timed out")


def _worker_pid(run: Path) -> int | None:
    try:
        lines = (run / "train.log").read_text().splitlines()
    except OSError:
        return None
    pids = [int(ln.split()[-1]) for ln in lines if ln.startswith("worker pid ")]
    return pids[-1] if pids else None


def test_killed_worker_fails_alone_sigterm_stops_and_rerun_resumes(tmp_path):
    """A worker killed from outside (the OOM killer) fails its run and the study goes on; SIGTERM
    to the runner stops it with a resume hint; the same command then resumes the started run."""
    spec = study_file(tmp_path, "kill", models=["resnet18", "seresnet18"],
                      overrides={**TINY["overrides"], "epochs": 3})
    out = tmp_path / "kill"
    cmd = [sys.executable, "-m", "depthbench", "run", "--config", str(spec), "--out", str(out)]
    runner = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first, second = out / "resnet18__base__s0", out / "seresnet18__base__s0"
        _wait_for(lambda: _worker_pid(first) is not None, proc=runner)
        os.kill(_worker_pid(first), signal.SIGKILL)
        _wait_for(lambda: (second / "metrics.csv").is_file(), proc=runner)
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=300)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, err
    assert "rerun the same command to resume" in err
    r = result(first)
    assert r["status"] == "failed" and r["failure"]["reason"].startswith("worker killed by SIGKILL")
    assert result(second)["status"] in ("running", "interrupted")
    pid = _worker_pid(second)
    with pytest.raises(ProcessLookupError):  # stopped with the runner, not orphaned
        os.kill(pid, 0)
    assert not (out / ".lock.owner").exists()

    # the rerun finds the started run held by another trainer: it names it and waits for it
    holder = subprocess.Popen([sys.executable, "-c", HOLD_RUN, str(second)],
                              stdout=subprocess.PIPE, text=True)
    log, rerun = tmp_path / "rerun.log", None
    try:
        assert holder.stdout.readline().strip() == "held"
        with open(log, "w") as f:
            rerun = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, text=True)
        _wait_for(lambda: "waiting for pid" in (second / "train.log").read_text(), proc=rerun)
        assert result(second)["status"] in ("running", "interrupted")  # not trained meanwhile
        holder.kill()
        holder.wait()
        rc = rerun.wait(timeout=600)
    finally:
        for proc in (holder, rerun):
            if proc is not None and proc.poll() is None:
                proc.kill()
    err = log.read_text()
    assert rc == 3, err  # the failed run is kept: the study still has a failure
    assert f"{second.name}: pid {holder.pid} on" in err and "is still training it" in err, err
    assert "1 failed before (kept; --retry-failed" in err
    assert result(second)["status"] == "finished" and result(second)["epochs_completed"] == 3
    assert "resume" in (second / "train.log").read_text().split("worker pid")[-2]
    assert "worker killed by SIGKILL" in (out / "report.md").read_text()


# holds a run folder as a trainer does, until killed
HOLD_RUN = ("import sys, time\nfrom depthbench.engine.runlock import RunLock\n"
            "with RunLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n")
