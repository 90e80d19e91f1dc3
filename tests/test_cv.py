"""Cross-validated studies: the spec and the command line, the grid, each run's split, SLURM's
submission, and one study end to end on tiny synthetic images with its report and its resume."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import submitit
import yaml
from rich.console import Console

import crossed_cv
import depthbench.cpus
from conftest import make_grouped_folder
from depthbench.cli.main import main
from depthbench.data.folds import cell_seed
from depthbench.errors import ConfigError, StudyInterrupted
from depthbench.report import stats as S
from depthbench.runrecord import RUN_DIR_PATTERN
from depthbench.study import local, packing
from depthbench.study.folder import check_folder, preflight, record_cells, record_study
from depthbench.study.grid import plan_runs
from depthbench.study.runner import run_study
from depthbench.study.spec import load_spec, validate_spec
from depthbench.study.summary import Summary

BASE = {"name": "t", "data": "synthetic", "models": ["resnet18", "seresnet18"]}


def write(path: Path, body: dict) -> Path:
    path.write_text(yaml.safe_dump(body))
    return path


# ------------------------------------------------------------------------ spec and command line

def test_folds_on_the_command_line_replace_a_presets_test_fraction(tmp_path):
    spec = load_spec(preset="quick", folds=5)
    assert (spec.split.folds, spec.split.repeats, spec.split.test) == (5, 1, None)
    assert len(plan_runs(spec)) == 5 * len(plan_runs(load_spec(preset="quick")))
    spec = load_spec(write(tmp_path / "s.yaml", {**BASE, "split": {"folds": 3}}), repeats=2)
    assert (spec.split.folds, spec.split.repeats) == (3, 2)
    # groups: a relative path in the file is the file's neighbour
    spec = load_spec(write(tmp_path / "g.yaml", {**BASE, "split": {"groups": "g.csv"}}))
    assert spec.split.groups == str(tmp_path / "g.csv") and spec.split.folds is None


@pytest.mark.parametrize("split, message", [
    ({"folds": 5, "test": 0.15}, r"split\.test: 0\.15 with folds: 5: in cross-validation every "
                                 r"image is tested in its fold.*drop test"),
    ({"repeats": 3}, r"split\.repeats: repeats 3 without folds"),
    ({"folds": 1}, r"split\.folds: folds 1: cross-validation needs at least 2 folds"),
    ({"folds": 4, "repeats": 0}, r"split\.repeats: repeats 0: give at least 1 repeat"),
])
def test_contradictory_splits_are_one_line_errors(split, message):
    with pytest.raises(ConfigError, match=message):
        validate_spec({**BASE, "split": split})


@pytest.mark.parametrize("args, message", [
    (["--folds", "1"], "--folds 1: cross-validation needs at least 2 folds"),
    (["--repeats", "2"], "--repeats 2 without --folds: repeats are of a k-fold partition"),
    (["--folds", "3", "--repeats", "0"], "--repeats 0: give at least 1 repeat"),
])
def test_run_and_data_check_refuse_bad_fold_options_in_one_line(args, message, tmp_path,
                                                                capsys):
    assert main(["run", "--preset", "quick", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert main(["data", "check", "synthetic", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_data_check_prints_each_folds_images_per_class(capsys):
    assert main(["data", "check", "synthetic:n=30,size=16,classes=3,seed=0", "--folds", "3",
                 "--repeats", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    cv = doc["folds"]
    assert (cv["folds"], cv["repeats"], len(cv["counts"])) == (3, 2, 2)
    for repeat in cv["counts"]:  # 10 images a class: 3, 3 and 4 of each in its folds
        assert [sorted(f[c] for f in repeat) for c in doc["classes"]] == [[3, 3, 4]] * 3
    assert main(["data", "check", "synthetic:n=30,size=16,classes=3,seed=0", "--folds", "3"]) == 0
    text = capsys.readouterr().out
    assert "3-fold x 1 repeat" in text and "fold 2" in text and "total" in text


def test_the_grid_has_whole_repeats_first_and_one_training_seed_per_cell():
    spec = validate_spec({**BASE, "split": {"folds": 3, "repeats": 2}, "seeds": 2})
    runs = plan_runs(spec)
    assert len(runs) == 2 * 3 * 2 * 2
    assert runs[0].name == "resnet18__base__s0__r0__f0"
    assert all(r.repeat == 0 for r in runs[:12]) and all(r.repeat == 1 for r in runs[12:])
    assert [(r.seed, r.fold) for r in runs[:4]] == [(0, 0), (0, 0), (0, 1), (0, 1)]
    seeds = {(r.seed, r.repeat, r.fold): set() for r in runs}
    for r in runs:
        seeds[r.seed, r.repeat, r.fold].add(r.train_config().seed)
        named = RUN_DIR_PATTERN.match(r.name)
        assert (int(named["seed"]), int(named["repeat"]), int(named["fold"])) == (
            r.seed, r.repeat, r.fold)
    assert all(s == {cell_seed(*k)} for k, s in seeds.items())  # A and B share a cell's seed
    assert len({next(iter(s)) for s in seeds.values()}) == 12
    assert RUN_DIR_PATTERN.match("resnet18__base__s0")["fold"] is None


def test_a_single_split_records_the_keys_it_always_had(tmp_path):
    """study.yaml of a study without folds is what it was: an older folder is not refused."""
    spec = validate_spec(BASE)
    dumped = spec.model_dump(mode="json")
    assert dumped["split"] == {"val": 0.1, "test": 0.0, "seed": 0}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(dumped))
    check_folder(tmp_path, spec)
    with pytest.raises(ConfigError, match=r"`split\.folds` is not set there, 3 now"):
        check_folder(tmp_path, validate_spec({**BASE, "split": {"folds": 3, "val": 0.1}}))


def test_slurm_jobs_each_find_their_cells_split(tmp_path, monkeypatch):
    """Each submitted job's callable trains from its own run folder's split.json, written before
    submission (a job may start on any node, at any time)."""
    submitted = []

    def submit_array(self, calls):
        submitted.extend(calls)
        return [SimpleNamespace(job_id=f"7_{i}", paths=SimpleNamespace(stdout="o", stderr="e"))
                for i in range(len(calls))]

    monkeypatch.setattr(submitit.AutoExecutor, "submit_array", submit_array)
    spec = validate_spec({**BASE, "models": ["resnet18"], "split": {"folds": 2, "val": 0.2},
                          "data": "synthetic:n=20,size=16,classes=2,seed=0",
                          "executor": {"kind": "slurm"}})
    out = tmp_path / "study"
    summary = run_study(spec, out, detach=True, cluster="local",
                        console=Console(file=io.StringIO()))
    assert sorted(summary.pending) == ["resnet18__base__s0__r0__f0", "resnet18__base__s0__r0__f1"]
    partition = json.loads((out / "folds.json").read_text())["hash"]
    for call in submitted:
        assert call.split == str(Path(call.run_dir) / "split.json")
        doc = json.loads(Path(call.split).read_text())
        assert (doc["partition"], f"__f{doc['fold']}") == (partition, call.run_dir[-4:])
    assert not (out / "split.json").exists() and not (out / "report.md").exists()


def test_packing_on_a_gpu_estimates_from_each_runs_split_and_keeps_repeats_whole(tmp_path,
                                                                                monkeypatch):
    """`jobs: auto` on a GPU (here a pretended one): the memory estimate reads the run folders'
    own split.json, and longest-first stays within a repeat (and seed)."""
    monkeypatch.setattr(packing, "visible_gpus", lambda: [packing.Gpu("0", 80 * 2**30,
                                                                      80 * 2**30)])
    monkeypatch.setattr(depthbench.cpus, "usable_cpus", lambda: list(range(16)))
    monkeypatch.setattr(local, "_worker_context", lambda preload: None)  # no fork server
    spec = validate_spec({**BASE, "models": ["resnet18", "resnet50"], "img_size": 64,
                          "data": "synthetic:n=20,size=16,classes=2,seed=0",
                          "split": {"folds": 2, "repeats": 2, "val": 0.2}})
    out = tmp_path / "study"
    out.mkdir()
    start = preflight(spec, out)
    assert record_study(out, spec, start, Console(file=io.StringIO())) is None
    plans = plan_runs(spec)
    record_cells(out, start.partition, plans)
    s = local.LocalScheduler(spec, out, None, plans, Summary(out, len(plans)),
                             Console(file=io.StringIO()))
    assert s.jobs > 1 and set(s.peaks) == {p.name for p in plans}
    order = [p.name for p in s.todo]
    assert [RUN_DIR_PATTERN.match(n)["repeat"] for n in order] == ["0"] * 4 + ["1"] * 4
    assert order[0].startswith("resnet50")  # the longest first, within repeat 0


# ------------------------------------------------------------------------ one study end to end

def cut_short_after(runs: int, monkeypatch) -> None:
    """The study stops as a Ctrl-C stops it once `runs` runs have ended (in the runner, as the
    signal would arrive: the workers still training are stopped, resumably)."""
    ended = Summary.run_ended

    def run_ended(self, *args, **kwargs):
        ended(self, *args, **kwargs)
        if len(self.finished) + len(self.failed) >= runs:
            raise KeyboardInterrupt

    monkeypatch.setattr(Summary, "run_ended", run_ended)


@pytest.mark.slow
def test_cross_validated_study_end_to_end_cut_short_then_resumed(tmp_path, monkeypatch):
    data = tmp_path / "data"  # 16 px images, duplicates and a groups file
    groups = make_grouped_folder(data, {"a": 12, "b": 12, "c": 12}, ext=".jpg")
    spec = write(tmp_path / "cv.yaml", {
        "name": "cv", "data": str(data), "recipe": "source", "img_size": 16,
        "split": {"folds": 3, "repeats": 2, "val": 0.2, "groups": "groups.csv"},
        "overrides": {"epochs": 1, "batch_size": 8, "lr": 0.001, "limit_train_batches": 1},
        "models": ["resnet18", "seresnet18"], "jobs": 2})
    out = tmp_path / "cv"
    # in this process, as `depthbench run --config` runs it (its command line: the tests above
    # and tests/test_run.py): the workers' fork server then starts once for both invocations
    cut_short_after(4, monkeypatch)
    with pytest.raises(StudyInterrupted, match="interrupted with 4 of 12 runs finished"):
        run_study(load_spec(spec), out, console=Console(file=io.StringIO()))
    monkeypatch.undo()
    assert not (out / "report.md").exists()  # the report comes once, at the end
    # a run still training when the study stopped may have finished its last step meanwhile
    done = sum(json.loads(p.read_text())["status"] == "finished"
               for p in out.glob("*/result.json"))
    log = io.StringIO()
    summary = run_study(load_spec(spec), out, console=Console(file=log, width=200))
    err = log.getvalue()
    assert len(summary.finished) == 12 and not summary.failed, err
    assert done >= 4 and f"{done} runs already finished" in err, err
    assert f"{12 - done} of 12 runs to go" in err, err
    assert "[12/12]" in err and summary.report == out / "report.md"

    names = [f"{m}__base__s0__r{r}__f{k}" for m in ("resnet18", "seresnet18") for r in (0, 1)
             for k in (0, 1, 2)]
    assert sorted(p.parent.name for p in out.glob("*/result.json")) == sorted(names)
    folds = json.loads((out / "folds.json").read_text())
    group = dict(csv.reader(groups.read_text().splitlines()[1:]))
    for r in (0, 1):
        tested = []
        for k in (0, 1, 2):
            cell = [json.loads((out / f"{m}__base__s0__r{r}__f{k}" / "split.json").read_text())
                    for m in ("resnet18", "seresnet18")]
            assert cell[0] == cell[1]  # A and B: the same training and test images
            doc = cell[0]
            assert {x: doc[x] for x in ("folds", "repeats", "repeat", "fold", "partition")} == {
                "folds": 3, "repeats": 2, "repeat": r, "fold": k, "partition": folds["hash"]}
            train = [e for e in doc["entries"] if e["split"] == "train"]
            test = [e for e in doc["entries"] if e["split"] == "test"]
            tested += [e["path"] for e in test]
            # nothing leaks: no content and no group in both the training set and the test fold
            assert not {e["sha256"] for e in train} & {e["sha256"] for e in test}
            assert not {group[e["path"]] for e in train} & {group[e["path"]] for e in test}
            assert {hashlib.sha256((data / e["path"]).read_bytes()).hexdigest()
                    for e in test} == {e["sha256"] for e in test}
            results = [json.loads((out / f"{m}__base__s0__r{r}__f{k}" / "result.json")
                                  .read_text()) for m in ("resnet18", "seresnet18")]
            assert {x["seed"] for x in results} == {cell_seed(0, r, k)}
            assert all(x["best"]["test"]["total"] == len(test) for x in results)
        assert sorted(tested) == sorted(e["path"] for e in folds["entries"])  # once per repeat

    rows = list(csv.DictReader(open(out / "results.csv")))
    assert sorted((x["repeat"], x["fold"]) for x in rows) == sorted(
        [(str(r), str(k)) for r in (0, 1) for k in (0, 1, 2)] * 2)
    (row,) = list(csv.DictReader(open(out / "comparisons.csv")))
    assert (row["a_model"], row["b_model"], row["folds"], row["repeats"], row["J"]) == (
        "seresnet18", "resnet18", "3", "2", "6")
    assert row["n_images"] == str(len(folds["entries"]))
    assert row["method"] == S.CROSSED_CV  # another method needs its own formula here
    _, _, _, p = crossed_cv.from_csv(row["cells"], int(row["image_sq"]))
    assert math.isclose(p, float(row["p"]), rel_tol=1e-5)
    # analysis: one cell's runs, and the report says which
    assert sorted(p.parent.name for p in out.glob("*/analysis.json")) == [
        "resnet18__base__s0__r0__f0", "seresnet18__base__s0__r0__f0"]
    md = (out / "report.md").read_text()
    assert "3-fold x 2 repeats: every image tested twice" in md
    assert "measured on the runs of repeat 0, fold 0" in md
    assert "the test predictions of repeat 0's 3 folds pooled" in md
