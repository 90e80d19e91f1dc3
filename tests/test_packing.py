"""Runs at once (`jobs: auto | N`): the memory estimate, the packing decision with fake GPUs and
core counts, the local scheduler's choice on a GPU machine and on this CPU. No training."""

from __future__ import annotations

import io

import pytest
import torch
import yaml
from rich.console import Console

import depthbench.cpus
from depthbench.cli.main import main
from depthbench.data.sources import open_source
from depthbench.data.split import make_split
from depthbench.engine.config import make_config
from depthbench.errors import ConfigError
from depthbench.models.complexity import count_params, meta_model, training_memory
from depthbench.report.source import FLOWERS_COUNTS
from depthbench.study import local, packing
from depthbench.study.grid import plan_runs
from depthbench.study.packing import GiB, Gpu, core_shares, place, run_peak, slots
from depthbench.study.spec import load_spec, validate_spec
from depthbench.study.summary import Summary
from depthbench.testing.models import measured_step

BASE = {"name": "t", "data": "synthetic", "models": ["resnet18"]}
FLOWERS = sum(FLOWERS_COUNTS.values())  # images of the flowers folder, all held on the device


def config(model: str, batch: int = 128, size: int = 224):
    return make_config({"model": model, "data": "synthetic", "img_size": size,
                        "batch_size": batch}).resolved()


# ------------------------------------------------------------------------------- the spec

def test_jobs_is_auto_by_default_or_a_number(tmp_path):
    assert validate_spec(BASE).jobs == "auto"
    assert validate_spec({**BASE, "jobs": None}).jobs == "auto"  # a study.yaml that left it null
    assert validate_spec({**BASE, "jobs": 3}).jobs == 3
    assert validate_spec({**BASE, "jobs": "2"}).jobs == 2
    for bad in (0, "many", True):
        with pytest.raises(ConfigError, match=r"^study\.yaml: jobs: .*give auto or a number of "
                                              r"runs at once \(at least 1\)$"):
            validate_spec({**BASE, "jobs": bad}, "study.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "jobs": 2}))
    assert load_spec(path).jobs == 2
    assert load_spec(path, jobs="auto").jobs == "auto"
    assert load_spec(path, jobs="4").jobs == 4
    with pytest.raises(ConfigError, match=r"^--jobs x: give auto or a number"):
        load_spec(path, jobs="x")


def test_jobs_on_the_command_line_is_one_line(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert main(["run", "--config", str(path), "--jobs", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == "depthbench: error: --jobs 0: give auto or a number of runs at once " \
                  "(at least 1)\n"


# ----------------------------------------------------------------------------- the estimate

@pytest.mark.parametrize("model, batch, size", [("resnet18", 8, 32),
                                                ("swin_tiny_patch4_window7_224", 2, 64)])
def test_the_estimate_bounds_a_measured_step_closely(model, batch, size):
    torch.set_num_threads(1)
    est = training_memory(model, size, batch, "adamw").total
    measured = measured_step(model, batch, size)  # the live tensors of a real step
    assert measured <= est <= 1.5 * measured, (est, measured)


def test_the_estimate_is_a_few_gb_for_resnet18_at_224():
    mem = training_memory("resnet18", 224, 128, "adamw")
    assert mem.states == 20 * count_params(meta_model("resnet18"))  # weights, grads x2, AdamW
    assert 2 * GiB < mem.activations < 4 * GiB
    assert training_memory("resnet18", 224, 64, "adamw").activations == mem.activations // 2


# ------------------------------------------------------------------------------ the packing

def test_packing_by_memory_and_cores():
    r18, swin_b = run_peak(config("resnet18"), FLOWERS), run_peak(
        config("swin_base_patch4_window7_224"), FLOWERS)
    assert 3 * GiB < r18 < 8 * GiB and 25 * GiB < swin_b < 60 * GiB, (r18 / GiB, swin_b / GiB)
    h200 = [int(141e9 * packing.GPU_SHARE)]
    assert slots([r18] * 40, h200, cpus=128) >= 20  # many ResNet-18 runs fit a 141 GB GPU
    assert 2 <= slots([swin_b] * 40, h200, cpus=128) <= 4  # Swin-B fewer
    assert slots([r18] * 40, h200, cpus=16) == 16 // packing.CORES_PER_GPU_RUN  # cores cap
    assert slots([r18] * 40, [8 * 10**9], cpus=16) == 1  # one run on an 8 GB GPU
    assert slots([swin_b], [8 * 10**9], cpus=16) == 1  # above the GPU: alone, not never
    assert slots([r18] * 100, h200 * 2, cpus=256) >= 2 * slots([r18] * 100, h200, cpus=256) - 1
    # a run starts where its estimate fits beside what is running; else it waits
    assert place(swin_b, h200, [h200[0] - swin_b + 1]) is None
    assert place(r18, h200, [h200[0] - swin_b]) == 0
    assert place(swin_b, h200 * 2, [h200[0], 0]) == 1
    assert core_shares(list(range(16)), 3) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9],
                                               [10, 11, 12, 13, 14]]


def _scheduler(tmp_path, monkeypatch, spec, gpus, cpus):
    monkeypatch.setattr(packing, "visible_gpus", lambda: gpus)
    monkeypatch.setattr(depthbench.cpus, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(local, "_worker_context", lambda preload: None)  # no fork server
    split = tmp_path / "split.json"
    make_split(open_source(spec.data), val=0.2, test=0.2).save(split)
    plans = plan_runs(spec)
    log = io.StringIO()
    s = local.LocalScheduler(spec, tmp_path / "study", split, plans, Summary(tmp_path, len(plans)),
                             Console(file=log, width=300))
    return s, log


MIXED = {"name": "t", "data": "synthetic:n=40,size=32,classes=2", "img_size": 224,
         "models": ["resnet18", "swin_base_patch4_window7_224"], "seeds": 3,
         "overrides": {"batch_size": 128}}


def _start_all(s) -> list[str]:
    started = []
    while (nxt := s._next()) is not None:
        plan, slot, gpu = nxt
        s.active[slot] = local._Active(plan, None, 0.0, 0, gpu=gpu)
        started.append(plan.name)
    return started


def test_auto_packs_a_gpu_by_memory_and_divides_the_cores(tmp_path, monkeypatch):
    h200 = Gpu("0", 141 * 10**9, 141 * 10**9)
    s, _ = _scheduler(tmp_path, monkeypatch, validate_spec(MIXED), [h200], list(range(16)))
    assert (s.jobs, s.threads) == (6, 2)  # all six fit 134 GB (three Swin-B at ~37 GB)
    assert len({c for share in s.shares for c in share}) == 12  # disjoint shares of 2 cores
    assert len(_start_all(s)) == 6 and s.used[0] <= h200.budget
    assert s.where.startswith("on GPU 0 (131 GiB free; est. peak 4.") and \
        s.where.endswith("GiB a run), 2 cores each")

    a100 = Gpu("0", 80 * GiB, 80 * GiB)  # 76 GB: one Swin-B beside the ResNet-18s
    s, _ = _scheduler(tmp_path, monkeypatch, validate_spec(MIXED), [a100], list(range(16)))
    assert s.jobs == 4
    started = _start_all(s)
    assert [n.split("__")[0] for n in started] == ["swin_base_patch4_window7_224"] + [
        "resnet18"] * 3  # the second Swin-B waits: it does not fit beside the first
    slot = next(i for i, a in s.active.items() if a.plan.name == started[0])
    s.used[0] -= s.peaks[started[0]]  # the first Swin-B ends (what _finish does)
    del s.active[slot]
    assert _start_all(s) == ["swin_base_patch4_window7_224__base__s1"]


def test_a_fixed_number_on_gpus_is_kept_with_its_cores(tmp_path, monkeypatch):
    gpus = [Gpu("2", 80 * GiB, 80 * GiB), Gpu("5", 80 * GiB, 80 * GiB)]
    s, _ = _scheduler(tmp_path, monkeypatch, validate_spec({**MIXED, "jobs": 3}), gpus,
                      list(range(12)))
    assert (s.jobs, s.threads, s.peaks) == (3, 4, {})
    _start_all(s)
    assert [a.gpu for a in s.active.values()] == [0, 1, 0]  # the GPUs in turn, no memory check
    assert s.where == "on GPU 2,5, 4 cores each"


def test_without_a_gpu_auto_is_one_run_with_every_core(tmp_path, monkeypatch):
    cpus = [0, 1, 2, 3]
    small = {**MIXED, "img_size": 32, "models": ["resnet18", "resnet34"], "overrides": {}}
    s, _ = _scheduler(tmp_path, monkeypatch, validate_spec(small), [], cpus)
    assert (s.jobs, s.threads, s.shares, s.gpus) == (1, 4, [None], [])  # no pinning
    s, _ = _scheduler(tmp_path, monkeypatch, validate_spec({**small, "jobs": 2}), [], cpus)
    assert (s.jobs, s.threads, s.shares) == (2, 2, [None, None])
    assert s.where == "2 CPU thread(s) each"
    gpu = [Gpu("0", 80 * GiB, 80 * GiB)]  # a GPU the runs are told not to use: the CPU path
    spec = validate_spec({**small, "overrides": {"accelerator": "cpu"}})
    s, _ = _scheduler(tmp_path, monkeypatch, spec, gpu, cpus)
    assert (s.jobs, s.gpus) == (1, [])


@pytest.mark.slow
def test_runs_sharing_a_gpu_get_their_own_cores(tmp_path, monkeypatch):
    """A whole study on a pretend GPU (its runs train on this CPU): two runs at once, each
    worker pinned to its own core and told its GPU. Slow: on a GPU machine
    the fork server preloads nothing, so both workers import torch and Lightning afresh."""
    from depthbench.study.runner import run_study

    cpus = depthbench.cpus.usable_cpus()
    if len(cpus) < 2:
        pytest.skip("needs two cores")
    monkeypatch.setattr(packing, "visible_gpus", lambda: [Gpu("0", 80 * GiB, 80 * GiB)])
    monkeypatch.setattr(depthbench.cpus, "usable_cpus", lambda: cpus[:2])
    monkeypatch.setattr(packing, "CORES_PER_GPU_RUN", 1)
    spec = validate_spec({"name": "t", "data": "synthetic:n=40,size=32,classes=2,seed=0",
                          "split": {"val": 0.25, "test": 0.0}, "img_size": 32,
                          "models": ["resnet18"], "seeds": 2,
                          "overrides": {"epochs": 1, "batch_size": 8, "limit_train_batches": 2,
                                        "warmup_epochs": 0}})
    log = io.StringIO()
    summary = run_study(spec, tmp_path / "study", console=Console(file=log, width=300),
                        analyze=False)
    assert len(summary.finished) == 2, log.getvalue()
    assert "2 of 2 runs to go, up to 2 at a time, on GPU 0 (80 GiB free; est. peak" in log.getvalue()
    cores = set()
    for run in ("resnet18__base__s0", "resnet18__base__s1"):
        text = (tmp_path / "study" / run / "train.log").read_text()
        assert "1 threads, GPU 0, est. peak" in text, text
        cores.add(text.split("worker pid ", 1)[1].split("cores ", 1)[1].split()[0])
    assert cores == {str(c) for c in cpus[:2]}
