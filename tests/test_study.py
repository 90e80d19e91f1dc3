"""Study specs, the grid, the study-folder lock and failure records: fast, no training."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from depthbench.cli.main import main
from depthbench.data.check import check_dataset
from depthbench.errors import ConfigError, DataError
from depthbench.names import MODELS, family_models
from depthbench.study.folder import Start, check_folder, preflight, record_study
from depthbench.study.grid import plan_runs
from depthbench.study.local import _death_reason
from depthbench.study.lock import StudyLock, StudyLocked
from depthbench.study.records import epochs_done, status_of, write_failure
from depthbench.study.runner import _todo
from depthbench.study.spec import PRESETS, load_spec, validate_spec
from depthbench.study.summary import Summary

BASE = {"name": "t", "data": "synthetic", "models": ["resnet18"]}


def write_spec(tmp_path: Path, body: dict | str, name: str = "study.yaml") -> Path:
    p = tmp_path / name
    p.write_text(body if isinstance(body, str) else yaml.safe_dump(body), encoding="utf-8")
    return p


# ----------------------------------------------------------------------------------- presets

@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load_and_plan(preset, tmp_path):
    data = str(tmp_path) if preset in ("paper", "modern") else None
    spec = load_spec(preset=preset, data=data)
    runs = plan_runs(spec)
    names = [r.name for r in runs]
    assert len(set(names)) == len(names)
    variants = {r.variant for r in runs}
    assert "base" in variants and any(v.startswith("keydrop") for v in variants)
    if preset != "smoke":  # the study's grid: every model, key dropout for both attention families
        assert spec.models == list(MODELS)
        assert {r.model for r in runs if r.variant.startswith("sedrop")} <= set(
            family_models("seresnet"))
        assert any(v.startswith("sedrop") for v in variants)
    for r in runs:  # every grid point resolves to a valid TrainConfig with its model options
        c = r.train_config()
        assert (c.model, c.seed, c.img_size) == (r.model, r.seed, spec.img_size)
        assert (c.key_drop is not None) == r.variant.startswith("keydrop")
        assert (c.se_drop is not None) == r.variant.startswith("sedrop")


def test_paper_needs_data_and_uses_the_source_protocol(tmp_path):
    with pytest.raises(ConfigError, match=r"--data PATH \(a flowers-layout folder"):
        load_spec(preset="paper")
    spec = load_spec(preset="paper", data=str(tmp_path))
    c = plan_runs(spec)[0].train_config()
    assert (spec.img_size, c.recipe, c.epochs, c.batch_size, c.lr, c.optimizer) == (
        224, "source", 100, 128, 2e-4, "adam")
    assert spec.seeds == [0, 1, 2] and spec.split.val == 0.1 and spec.split.test > 0


def test_smoke_seeds_override_and_grid_order():
    spec = load_spec(preset="smoke", seeds=2)
    runs = plan_runs(spec)
    assert spec.seeds == [0, 1]
    per_seed = len(runs) // 2
    assert {r.seed for r in runs[:per_seed]} == {0}  # seed by seed: a cut-short study has whole seeds
    assert runs[0].name == "resnet18__base__s0"
    assert "swin_tiny_patch4_window7_224__keydrop0.1__s1" in [r.name for r in runs]


# ------------------------------------------------------------------------------ validation

@pytest.mark.parametrize("change, message", [
    ({"models": ["resnet18", "seresnet34", "resnet19"]},
     r"models\[2\]: unknown model or family 'resnet19' \(did you mean resnet18\?\)"),
    ({"models": "swim"}, r"models: unknown model or family 'swim' \(did you mean swin\?\); give "
                         r"all, a family"),
    ({"models": ["resnet", "resnet18"]}, r"models: lists 'resnet18' twice"),
    ({"modles": ["resnet18"]},
     r"modles: unknown key \(did you mean models\?\); valid keys here: name, data"),
    ({"split": {"val": 0.5, "test": 0.5}}, r"split: val \+ test = 1 leaves no training images"),
    ({"split": {"vall": 0.1}},
     r"split\.vall: unknown key \(did you mean val\?\); valid keys here: val, test, seed"),
    ({"img_size": "big"}, r"img_size: .*integer"),
    ({"seeds": 0}, r"seeds: 0 seeds"),
    ({"seeds": [1, 1]}, r"seeds: seeds \[1, 1\] repeat a value"),
    ({"models": ["resnet18", "resnet18"]}, r"models: lists 'resnet18' twice"),
    ({"name": "a/b"}, r"name: "),
    ({"variants": {"key_drop": [1.5]}}, r"variants\.key_drop: rate 1\.5 must be between 0 and 1"),
    ({"variants": {"key_drop": [0.1], "models": ["resnet18"]}},
     r"variants\.models\[0\]: 'resnet18' is a resnet model; no variant listed applies"),
    ({"variants": {"se_drop": [0.1], "models": ["seresnet50"]}},
     r"variants\.models\[0\]: 'seresnet50' is not in this study's models"),
])
def test_spec_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message) as e:
        validate_spec({**BASE, **change}, "study.yaml")
    assert str(e.value).startswith("study.yaml: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("change, message", [
    ({"overrides": {"epoch": 3}},
     r"overrides\.epoch: unknown training option \(did you mean epochs\?\)"),
    ({"overrides": {"seed": 3}}, r"overrides\.seed: set by the study itself; use `seeds`"),
    ({"overrides": {"key_drop": 0.1}}, r"use `variants\.key_drop`"),
    ({"overrides": {"epochs": 0}}, r"overrides: epochs: .*greater than or equal to 1 \(got 0\)"),
    ({"model_options": {"resnet": {"window_size": 4}}}, r"resnet18 \(base\): .*window_size"),
    ({"model_options": {"swin": {"lr": 1}}}, r"model_options\.swin\.lr: not a per-model option"),
    ({"model_options": {"resnet19": {"drop_path_rate": 0.1}}}, r"unknown model 'resnet19'"),
])
def test_training_options_checked_on_load(tmp_path, change, message):
    path = write_spec(tmp_path, {**BASE, **change})
    with pytest.raises(ConfigError, match=message) as e:
        load_spec(path)
    assert str(e.value).startswith("study.yaml: ")


def test_yaml_errors_and_relative_data(tmp_path):
    with pytest.raises(ConfigError, match=r"study.yaml: line 3 not valid YAML \(expected"):
        load_spec(write_spec(tmp_path, "name: t\nmodels: [resnet18\n"))
    with pytest.raises(ConfigError, match="study file not found"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="either --config STUDY.yaml or --preset"):
        load_spec(tmp_path / "x.yaml", preset="smoke")
    (tmp_path / "sub").mkdir()
    spec = load_spec(write_spec(tmp_path / "sub", {**BASE, "data": "../imgs"}))
    assert spec.data == str((tmp_path / "imgs").resolve())  # relative to the YAML file
    assert load_spec(write_spec(tmp_path, BASE), data="elpv").data == "elpv"


def _recorded(folder: Path, spec) -> Path:
    """A study folder holding `spec` as its study.yaml, as a started study records it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    return folder


def test_rerun_with_another_study_names_every_difference_in_full(tmp_path):
    data = str(tmp_path / ("a_long_folder_name_" * 4) / "cells")
    old = validate_spec({**BASE, "data": data, "overrides": {
        "epochs": 2, "batch_size": 16, "limit_train_batches": 4, "lr": 0.001}})
    _recorded(tmp_path, old)
    new = validate_spec({**BASE, "data": data + "2", "img_size": 64, "overrides": {
        "epochs": 2, "batch_size": 16, "limit_train_batches": 4, "lr": 0.01}})
    with pytest.raises(ConfigError) as e:
        check_folder(tmp_path, new)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'study.yaml'}: this folder holds another study: ")
    assert f"`data` is {json.dumps(data)} there, {json.dumps(data + '2')} now" in msg, msg
    assert "`overrides.lr` is 0.001 there, 0.01 now" in msg, msg
    assert "`img_size` is 224 there, 64 now" in msg and "pass --out" in msg, msg
    assert "epochs" not in msg and "\n" not in msg  # only what differs, on one line


def test_a_rerun_may_change_seeds_jobs_and_how_runs_execute(tmp_path):
    """Another seed count, jobs, or an operational training option (a corrected accelerator)
    is the same study; --retry-failed then trains its failed runs again."""
    _recorded(tmp_path, validate_spec({**BASE, "seeds": 3, "overrides": {"accelerator": "gpu"}}))
    fixed = validate_spec({**BASE, "seeds": 2, "jobs": 2, "overrides": {"accelerator": "cpu"}})
    check_folder(tmp_path, fixed)
    run = tmp_path / "resnet18__base__s0"
    write_failure(run, {"model": "resnet18"}, "base", "--accelerator gpu: no CUDA GPU")
    summary, todo = _todo(tmp_path, plan_runs(fixed), True, Console(file=io.StringIO()))
    assert [p.name for p in todo] == ["resnet18__base__s0", "resnet18__base__s1"]
    assert not summary.failed


def test_study_yaml_says_the_study_as_it_now_stands(tmp_path):
    """A rerun with fewer seeds records them (the report then covers those and names the other
    seeds' folders as left out), not the union of every seed ever run."""
    start = Start(manifest=None, new_split=False, warnings=[])
    console = Console(file=io.StringIO())
    record_study(tmp_path, validate_spec({**BASE, "seeds": 3}), start, console)
    record_study(tmp_path, validate_spec({**BASE, "seeds": 2}), start, console)
    assert yaml.safe_load((tmp_path / "study.yaml").read_text())["seeds"] == [0, 1]


def test_what_fails_every_run_is_refused_before_anything_is_written(tmp_path):
    import torch

    out = tmp_path / "study"
    if not torch.cuda.is_available():
        gpu = validate_spec({**BASE, "overrides": {"accelerator": "gpu"}})
        with pytest.raises(ConfigError, match=r"overrides\.accelerator: gpu: no CUDA GPU"):
            preflight(gpu, out)
    missing = validate_spec({**BASE, "overrides": {"pretrained": str(tmp_path / "w.pt")}})
    with pytest.raises(ConfigError, match=r"overrides\.pretrained: .*w\.pt not found"):
        preflight(missing, out)
    with pytest.raises(DataError, match="cels"):
        preflight(validate_spec({**BASE, "data": str(tmp_path / "cels")}), out)
    assert not out.exists()


def test_a_study_says_when_it_starts_what_data_check_warns(image_folder):
    """A class too small for a split, in data check's words; and a setting known to undertrain."""
    root = image_folder({"a": 10, "b": 10, "solo": 1})
    spec = validate_spec({**BASE, "data": str(root), "split": {"val": 0.1, "test": 0.1},
                          "recipe": "modern", "overrides": {"batch_size": 8, "lr": 1e-6}})
    start = preflight(spec, root.parent / "study")
    checked = check_dataset(str(root), val=0.1, test=0.1)
    small = [p["problem"] for p in checked["problems"] if p["kind"] == "class_too_small"]
    assert small and all(w in start.warnings for w in small), (start.warnings, small)
    assert any("class 'solo' has 1 image:" in w and "test gets none" in w for w in small), small
    assert any("lr 1e-06 is far below the modern recipe's" in w for w in start.warnings)


def test_one_img_size_rule_for_train_and_study():
    from depthbench.configio import IMG_SIZE_RANGE
    from depthbench.engine.config import make_config

    low, high = IMG_SIZE_RANGE
    for size in (low, high):
        assert validate_spec({**BASE, "img_size": size}).img_size == size
        assert make_config({"model": "resnet18", "data": "x", "img_size": size}).img_size == size
    for size in (low - 1, high + 1):
        with pytest.raises(ConfigError, match="img_size"):
            validate_spec({**BASE, "img_size": size})
        with pytest.raises(ConfigError, match="img_size"):
            make_config({"model": "resnet18", "data": "x", "img_size": size})


# ------------------------------------------------------------------------------------ lock

HOLD = textwrap.dedent("""
    import sys, time
    from depthbench.study.lock import StudyLock
    with StudyLock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
""")


def test_lock_refuses_a_second_run_and_takes_over_a_dead_ones(tmp_path, capsys):
    study = tmp_path / "study"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(study)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StudyLocked, match=rf"in use by another `depthbench run` \(pid {holder.pid}"):
            StudyLock(study).__enter__()
        # through the real command line: one line on stderr, exit code 2, nothing run
        assert main(["run", "--preset", "smoke", "--out", str(study)]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another `depthbench run` (pid {holder.pid}" in err
        assert err.count("\n") == 1 and not (study / "study.yaml").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the killed holder left its owner file; its flock died with it
    assert json.loads((study / ".lock.owner").read_text())["pid"] == holder.pid
    with StudyLock(study) as lock:
        assert lock.took_over["pid"] == holder.pid
        assert json.loads((study / ".lock.owner").read_text())["pid"] == os.getpid()
    assert not (study / ".lock.owner").exists()


# ------------------------------------------------------------------------- failure records

def test_write_failure_keeps_engine_records_and_fills_in_dead_ones(tmp_path):
    run = tmp_path / "resnet18__base__s0"
    run.mkdir()
    assert status_of(run) == "new"
    (run / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,0.4\n")
    assert epochs_done(run) == 2
    config = {"model": "resnet18", "seed": 0, "epochs": 5}
    (run / "result.json").write_text(json.dumps({"status": "running", "costs": {"x": 1}}))
    r = write_failure(run, config, "base", "Traceback ...\nRuntimeError: boom")
    assert r["status"] == "failed" and r["failure"] == {"epoch": 3, "reason": "RuntimeError: boom"}
    assert (r["model"], r["family"], r["variant"], r["seed"], r["epochs_completed"]) == (
        "resnet18", "resnet", "base", 0, 2)
    assert r["best"] is None and r["costs"] == {"x": 1}  # what the engine wrote is kept
    assert status_of(run) == "failed"
    engine = {"status": "failed", "failure": {"epoch": 1, "reason": "non-finite loss"}}
    (run / "result.json").write_text(json.dumps(engine))
    assert write_failure(run, config, "base", "other")["failure"]["reason"] == "non-finite loss"


def test_death_reasons(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("=== start\nworker pid 7\nValueError: bad\n")
    assert _death_reason(-signal.SIGKILL, log) == "worker killed by SIGKILL (out of memory?)"
    assert _death_reason(1, log) == "worker exited with code 1: ValueError: bad"


def test_one_run_end_line_for_both_executors(tmp_path):
    """`Summary.run_ended` counts a run and prints its `[n/total]` line; the local and the SLURM
    scheduler both end a run through it."""
    buf = io.StringIO()
    console = Console(file=buf, width=300)
    s = Summary(tmp_path, total=3)
    finished = {"status": "finished", "best": {"epoch": 2, "val": {"accuracy": 0.5}}}
    s.run_ended("a", finished, console, detail="in 3 s", reason="exit code 0")
    s.run_ended("b", {"status": "failed", "failure": {"reason": "NaN"}}, console,
                detail="job 7_1", reason="FAILED")
    s.run_ended("c", {"status": "running"}, console, detail="in 1 s", reason="exit code -9",
                log=tmp_path / "c" / "train.log")
    assert s.finished == ["a"] and s.failed == {"b": "NaN", "c": "exit code -9"}
    lines = buf.getvalue().splitlines()
    assert lines[0] == "[1/3] a: finished (in 3 s), best epoch 2: val 0.500"
    assert lines[1].startswith("[2/3] b: FAILED (job 7_1: NaN)")
    assert lines[2].startswith("[3/3] c: FAILED (in 1 s: exit code -9)") and "train.log" in lines[2]
