"""`depthbench plan` and `run`'s first lines: the design, the costs, what each comparison can
decide and the alternatives before anything trains, the per-machine timings kept and reused, and the refusal of a disk too small.

One study is timed for real (a ResNet-18 and a Swin-T at 32 px, as the smoke preset trains
them); every other test reads the timings that one kept, so only it pays for timed steps.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from scipy import stats

from depthbench import runrecord
from depthbench.cli.main import main
from depthbench.data.sources import open_source
from depthbench.data.split import make_split, train_eval_manifest
from depthbench.errors import DepthbenchError
from depthbench.names import family_of
from depthbench.report.analysis import Analysis, plan_comparisons
from depthbench.report.records import load_study
from depthbench.study.grid import plan_runs
from depthbench.study.plan import decide, estimate, timing
from depthbench.study.plan.design import Design, Sizes
from depthbench.study.runner import run_study
from depthbench.study.spec import load_spec

SMOKE = {"data": "synthetic:n=60,size=32,classes=3,seed=0", "split": {"val": 0.2, "test": 0.3},
         "recipe": "modern", "img_size": 32,
         "overrides": {"epochs": 2, "batch_size": 8, "lr": 0.001, "warmup_epochs": 0,
                       "limit_train_batches": 2}}


def study_file(tmp_path, name: str, **changes) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **SMOKE, **changes}))
    return str(path)


def plan_json(capsys, *argv: str) -> dict:
    assert main(["plan", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    """A rate file in which `plan` has timed the smoke preset's three models (two runs at a
    time, one thread each, as tests/test_run.py trains it), and the plan that timed them."""
    folder = tmp_path_factory.mktemp("timed")
    old = os.environ["DEPTHBENCH_CACHE"]
    os.environ["DEPTHBENCH_CACHE"] = str(folder / "cache")
    plan = estimate.plan_study(load_spec(preset="smoke", jobs=2), folder / "study")
    yield folder / "cache", plan
    os.environ["DEPTHBENCH_CACHE"] = old


@pytest.fixture
def cache(timed, monkeypatch):
    """The kept timings in the cache folder; timing anything now fails the test."""
    monkeypatch.setenv("DEPTHBENCH_CACHE", str(timed[0]))

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again, though this machine kept the timings")

    monkeypatch.setattr(timing, "measure", no_timing)
    return timed[0]


def test_plan_times_each_model_once_and_keeps_it(timed):
    cache_dir, plan = timed
    doc = plan.to_dict()
    d = doc["design"]
    assert d["runs"] == 4 == len(plan_runs(plan.spec))
    assert d["runs_by_model"] == {"resnet18": {"base": 1}, "seresnet18": {"base": 1},
                                  "swin_tiny_patch4_window7_224": {"base": 1, "keydrop0.1": 1}}
    # the split `run` makes: int(20 * 0.2) val and int(20 * 0.3) test of each of 3 classes
    assert d["images_per_run"] == {"train": 30, "val": 12, "test": 18, "train_eval": 18}
    models = {m["model"]: m for m in doc["costs"]["models"]}
    assert all(m["timing"] == "timed now" for m in models.values())
    r18 = models["resnet18"]
    # training FLOPs: 3 forward passes a training image, 2 epochs of 2 batches of 8 images
    assert r18["train_flops"] == pytest.approx(3 * 2 * r18["macs"] * 2 * 2 * 8)
    # the checkpoints alone: best.safetensors 4 B/param, last.ckpt 12 B/param (AdamW)
    assert r18["disk_bytes"] > 16 * r18["params"]
    assert r18["peak_bytes"] > 0 and r18["seconds"] > 0 and r18["gpu_seconds"] > 0
    total = doc["costs"]["total"]
    assert total["disk_bytes"] == sum(m["disk_bytes"] for m in models.values()) + 4 * 2**20
    assert total["seconds_this_machine"] >= max(m["seconds"] for m in models.values())
    assert "assumed" in total["gpu_basis"]  # no GPU measured here: the stated throughput
    # kept: one timing per model (the DropKey variant costs its model's), under this machine
    kept = json.loads((cache_dir / timing.RATES_FILE).read_text())
    (key, machine), = kept["machines"].items()
    assert key.endswith(f"{plan.machine.threads} threads") and machine["flops_per_s"] > 0
    assert sorted(json.loads(k)[0] for k in machine["models"]) == [
        "resnet18", "seresnet18", "swin_tiny_patch4_window7_224"]


def test_plan_text_on_the_smoke_preset_reuses_the_timings(cache, capsys, tmp_path):
    assert main(["plan", "--preset", "smoke", "--jobs", "2", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    for words in ("Design: single split, 1 seed: 4 runs", "30 train, 12 val", "18 test",
                  "swin_tiny_patch4_window7_224  base, keydrop0.1", "timed before",
                  "GPU time is an estimate, not a measured run: an A100/H100-class GPU at an assumed", "5-fold x 2, 1 seed",
                  "10-fold x 1, 1 seed", "What each comparison can decide (single split, 1 "
                  "seed; the report's 4 comparisons, Holm over all 4", "Swin-T vs ResNet-18",
                  "Variance: stated defaults", "Cheapest design detecting 3 points in every "
                  "comparison (its worst): – (none of these designs"):
        assert words in out, (words, out)
    assert not (tmp_path / "s").exists()  # plan writes nothing into the study folder


def test_plan_detects_from_the_stated_defaults(cache, capsys, tmp_path):
    """Without --from: the report's comparisons of the grid, each from the stated defaults; at
    one seed the detectable difference is the exact McNemar's at the defaults' discordance."""
    doc = plan_json(capsys, "--preset", "smoke", "--jobs", "2", "--out", str(tmp_path / "s"))
    assert doc["variance"]["source"] == "defaults"
    assert doc["variance"]["discordance"] == decide.DEFAULT_DISCORDANCE
    swin, key = "swin_tiny_patch4_window7_224", ("swin_tiny_patch4_window7_224", "keydrop0.1")
    assert [(c["section"], tuple(c["a"]), tuple(c["b"])) for c in doc["comparisons"]] == [
        ("se", ("seresnet18", "base"), ("resnet18", "base")),
        ("variant", key, (swin, "base")),
        ("across", (swin, "base"), ("resnet18", "base")),
        ("across", (swin, "base"), ("seresnet18", "base"))]
    assert all(c["m"] == 4 and c["variance"] == "defaults" for c in doc["comparisons"])
    z = stats.norm.ppf(1 - 0.05 / 4 / 2) + stats.norm.ppf(0.8)
    n = doc["design"]["images_per_run"]["test"]
    mcnemar = 100 * min(1.0, max(z * (decide.DEFAULT_DISCORDANCE / n) ** 0.5, z * z / n))
    one = {a["design"]: a for a in doc["alternatives"]}
    assert one["single split, 1 seed"]["detectable"] == pytest.approx([mcnemar] * 4)
    assert [c["detectable"] for c in doc["comparisons"]] == one["single split, 1 seed"][
        "detectable"]
    for a in doc["alternatives"]:  # 18 test images decide nothing small: none reaches 3 points
        assert a["detectable_worst"] == max(a["detectable"]) and a["reaches_target"] is False
    assert doc["cheapest_reaching_target"] is None
    # every design reaches 100 points: the cheapest is the one seed of the single split
    loose = plan_json(capsys, "--preset", "smoke", "--jobs", "2", "--target", "100", "--out",
                      str(tmp_path / "s"))
    assert loose["cheapest_reaching_target"] == "single split, 1 seed"


def test_plan_json_on_a_flowers_folder_with_folds(cache, capsys, flowers_dir, tmp_path):
    config = study_file(tmp_path, "fl", data=str(flowers_dir), split={"val": 0.1, "test": 0.1},
                        models=["resnet18", "swin_tiny_patch4_window7_224"], jobs=2)
    doc = plan_json(capsys, "--config", config, "--seeds", "2", "--out", str(tmp_path / "fl"))
    manifest = make_split(open_source(str(flowers_dir)), val=0.1, test=0.1)
    counts = manifest.counts()
    assert doc["design"]["images_per_run"] == {
        "train": counts["train"], "val": counts["val"], "test": counts["test"],
        "train_eval": len(train_eval_manifest(manifest))}
    assert doc["design"]["runs"] == 4 and doc["classes"] == 5
    runs = {a["design"]: a["runs"] for a in doc["alternatives"]}
    assert runs == {"single split, 2 seeds": 4, "single split, 1 seed": 2,
                    "single split, 3 seeds": 6, "single split, 5 seeds": 10,
                    "5-fold x 1, 1 seed": 10, "5-fold x 2, 1 seed": 20, "10-fold x 1, 1 seed": 20}
    # one comparison (Swin-T against ResNet-18, Holm over 1). Several seeds pay for the
    # seed-level t's few degrees of freedom (one seed's McNemar sees no run-to-run variance);
    # from there, more seeds detect less
    assert [c["name"] for c in doc["comparisons"]] == ["Swin-T vs ResNet-18"]
    worst = {a["design"]: a["detectable_worst"] for a in doc["alternatives"]}
    assert (worst["single split, 2 seeds"] > worst["single split, 3 seeds"]
            > worst["single split, 5 seeds"])

    cv = plan_json(capsys, "--config", config, "--folds", "5", "--repeats", "2", "--target", "2",
                   "--out", str(tmp_path / "fl"))
    d = cv["design"]
    assert (d["folds"], d["repeats"], d["runs"]) == (5, 2, 2 * 1 * 5 * 2)
    sizes = d["images_per_run"]
    assert sizes["test"] == round(len(manifest) / 5)  # every image tested once per repeat
    assert sizes["train"] + sizes["val"] + sizes["test"] == len(manifest)
    assert cv["target_points"] == 2
    reaching = [a for a in cv["alternatives"] if a["detectable_worst"] <= 2]
    assert all(a["reaches_target"] == (a in reaching) for a in cv["alternatives"])
    assert cv["cheapest_reaching_target"] == (min(reaching, key=lambda a: a[
        "hours_this_machine"])["design"] if reaching else None)
    # a 10-fold run trains on more images, and tests on half as many, as a 5-fold run
    one = {a["design"]: a["images"] for a in cv["alternatives"]}
    five, ten = one["5-fold x 1, 1 seed"], one["10-fold x 1, 1 seed"]
    assert ten["train"] > five["train"] and abs(2 * ten["test"] - five["test"]) <= 1


def test_run_prints_the_plan_first_and_counts_only_what_is_left(cache, monkeypatch, tmp_path,
                                                                capsys):
    out = tmp_path / "study"
    spec = load_spec(preset="smoke", jobs=2)
    first = runrecord.run_dir_name("resnet18", "base", 0)
    runrecord.write_result(out / first, {"status": "finished", "model": "resnet18",
                                         "variant": "base", "seed": 0})

    def stop(*args, **kwargs):  # the lines are printed; training is not this test's business
        raise DepthbenchError("stopped before training")

    monkeypatch.setattr("depthbench.study.runner._train", stop)
    assert main(["run", "--preset", "smoke", "--jobs", "2", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (f"{out}: 4 runs (3 left to train): 3 models, 4 model x variant, "
                        "single split, 1 seed"), lines
    assert lines[1].startswith("time: about ") and "as `depthbench plan` timed" in lines[1]
    assert lines[2].startswith("disk: ") and "free" in lines[2]
    left = estimate.announce(spec, out, make_split(open_source(spec.data), 0.2, 0.3))
    whole = estimate.announce(spec, tmp_path / "new", make_split(open_source(spec.data), 0.2, 0.3))
    assert 0 < left.need_bytes < whole.need_bytes  # the finished run is not written again


def test_run_refuses_a_disk_too_small_before_writing(cache, monkeypatch, tmp_path, capsys):
    out = tmp_path / "study"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    monkeypatch.setattr(estimate, "free_bytes", lambda path: 10**6)
    assert main(["run", "--preset", "smoke", "--jobs", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs" in err and "1.0 MB free" in err, err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    with pytest.raises(DepthbenchError, match="of disk"):
        run_study(load_spec(preset="smoke"), tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_run_says_when_a_study_takes_more_than_a_day(cache, tmp_path):
    spec = load_spec(study_file(tmp_path, "long", models=["resnet18"], jobs=2,
                                overrides={**SMOKE["overrides"], "epochs": 10**6}))
    lines = estimate.announce(spec, tmp_path / "long",
                              make_split(open_source(spec.data), 0.2, 0.3)).lines
    assert "more than a day" in lines[2] and "--executor slurm" in lines[2], lines


def test_rough_figures_are_labelled_when_nothing_was_measured(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPTHBENCH_CACHE", str(tmp_path / "empty"))
    spec = load_spec(study_file(tmp_path, "rough", models=["resnet18"]))
    lines = estimate.announce(spec, tmp_path / "s", make_split(open_source(spec.data), 0.2, 0.3)).lines
    assert "rough: FLOPs at an assumed" in lines[1], lines


def test_a_gpu_rate_measured_by_plan_is_used_and_named(cache, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DEPTHBENCH_CACHE", str(tmp_path / "cache"))
    shutil.copytree(cache, tmp_path / "cache")
    before = plan_json(capsys, "--preset", "smoke", "--jobs", "2", "--out", str(tmp_path / "s"))
    gpu = timing.machine_key("NVIDIA H100 80GB HBM3", "bf16-mixed", 8)
    timing.RateStore().update(gpu, "cuda", {"k": timing.Timing(
        train_s_per_image=1e-4, eval_s_per_image=3e-5, cold_s=0.5, setup_s=1.0, batch_timed=8,
        flops_per_s=GPU_RATE, measured="2026-01-02")})
    after = plan_json(capsys, "--preset", "smoke", "--jobs", "2", "--out", str(tmp_path / "s"))
    basis = after["costs"]["total"]["gpu_basis"]
    assert basis.startswith(f"{gpu}, as `depthbench plan` measured it") and "assumed" not in basis
    # the rate is ten times the stated one: every run's GPU estimate shrinks
    assert all(a["gpu_seconds"] < b["gpu_seconds"]
               for a, b in zip(after["costs"]["runs"], before["costs"]["runs"]))


GPU_RATE = 10 * 60e12


def test_plan_from_a_study_gives_its_reports_detectable_differences(tmp_path):
    """`--from` a study, at its own design: each comparison's components as the report measured
    them give the report's detectable difference to its last printed digit, for three seeds of
    a single split (crossed and seed-level t) and for 3-fold x 2 repeats x 2 seeds (crossed CV
    t); one seed projects to more seeds by the defaults' split of its discordance."""
    from test_report import make_cv_study, make_study  # the report's hand-made records

    split = make_study(tmp_path / "split", [0, 1, 2], models=[
        "resnet18", "resnet34", "resnet50", "seresnet18", "seresnet50"],
        accs={"resnet34": 0.74, "seresnet50": 0.78}, macs_224=10**9)
    cv = tmp_path / "cv"
    make_cv_study(cv, {"resnet18": 0.9, "resnet34": 0.92, "seresnet18": 0.99})
    for root, at in ((split, Design(3)), (cv, Design(2, 3, 2))):
        an = Analysis(load_study(root))
        plan_comparisons(an)
        points = [k for k in an.groups if an.finished(k)]
        _, planned = decide.planned(points, lambda k: family_of(k[0]), an.gmacs_224, root)
        assert [c.pair.section for c in planned] == [c.section for c in an.comparisons]
        assert all(c.source == "measured" and c.m == len(an.comparisons) for c in planned)
        each = decide.detectable(planned, at, Sizes(0, 0, an.images(), 0), an.images()).each
        assert [f"{x:.4f}" for x in each] == [f"{100 * c.mde:.4f}" for c in an.comparisons]
    one = tmp_path / "one"
    make_study(one, [0], models=["resnet18", "seresnet18"], accs={"seresnet18": 0.8})
    _, (c,) = decide.planned([("resnet18", "base"), ("seresnet18", "base")],
                             lambda k: family_of(k[0]), lambda k: None, one)
    report = Analysis(load_study(one))
    plan_comparisons(report)
    assert c.source == "measured on one seed, split by the defaults"
    n = report.images()
    first, third = (decide.detectable([c], Design(s), Sizes(0, 0, n, 0), n).each[0]
                    for s in (1, 5))
    assert f"{first:.4f}" == f"{100 * report.comparisons[0].mde:.4f}" and third < first
