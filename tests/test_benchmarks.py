"""Smoke tests of the benchmark harness at tiny sizes: it runs and prints its tables. No timing
assertions (speed figures belong in the benchmarks' own output, not in tests)."""

from __future__ import annotations

import importlib
import re

import pytest
import torch
from benchmarks import __main__ as harness
from benchmarks import (
    bench_augment,
    bench_channels_last,
    bench_optimizer,
    bench_pointwise,
    bench_precision,
    memory,
    roofline,
)
from benchmarks._common import compare, make_train_step, markdown_table, time_steps


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a busy shared machine two OpenMP threads wait on each other at every
    barrier, and a smoke test gains nothing from them."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_list_and_unknown_module(capsys):
    assert harness.main(["--list"]) == 0
    names = capsys.readouterr().out.split()
    for name in ("roofline", "memory", "bench_compile", "bench_threads", "bench_worker_start",
                 "gpu_check"):
        assert name in names
    # on request only, listed last
    assert names[-3:] == ["gpu_check", "precision_parity", "bench_cv_gain"]
    assert harness.main(["--only", "nosuch"]) == 2
    assert "no such benchmark module" in capsys.readouterr().err


def test_every_benchmark_module_imports():
    """What the harness would run imports: a name a benchmark takes from depthbench still
    exists."""
    for name in harness.available():
        importlib.import_module(f"benchmarks.{name}")


def test_timing_helpers_and_table():
    calls = {"a": 0, "b": 0}

    def bump(k):
        return lambda: calls.__setitem__(k, calls[k] + 1)

    res = compare({"a": bump("a"), "b": bump("b")}, rounds=3, steps=2, warmup=1)
    assert set(res) == {"a", "b"} and all(v >= 0 for v in res.values())
    assert calls == {"a": 7, "b": 7}  # 1 warm-up + 3 rounds x 2 steps each
    assert time_steps(bump("a"), warmup=2, steps=3) >= 0 and calls["a"] == 12
    table = markdown_table([{"model": "r18", "x": 0.5}, {"model": "r50", "x": 1234.5}])
    assert table.splitlines()[:2] == ["| model | x |", "|---|---|"]
    assert "| r50 | 1234.5 |" in table


def test_train_step_learns_and_keeps_layout():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3))
    step = make_train_step(model, 4, 8, num_classes=3, channels_last=True, lr=0.05)
    first = step().item()
    for _ in range(10):
        last = step().item()
    assert last < first  # the closure really trains (a fixed batch is memorised)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_roofline_quick(capsys):
    rc = roofline.main(["--quick", "--models", "resnet18", "--img-size", "32", "--batch-size", "2",
                        "--no-investigate", "--no-profile"])
    out = capsys.readouterr().out
    assert rc == 0
    peak = float(re.search(r"\*\*(\d+) GFLOP/s\*\*", out).group(1))
    assert peak > 0
    row = next(line for line in out.splitlines() if line.startswith("| resnet18 |"))
    assert re.search(r"\| \d+% \|$", row)


def table_row(out: str, start: str) -> dict[str, str]:
    """The Markdown table row of `out` that starts with `start`, as {column: cell}."""
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(start))
    head = next(lines[j - 1] for j in range(i, 0, -1) if lines[j].startswith("|---"))
    cells = [c.strip() for c in lines[i].strip(" |").split("|")]
    return dict(zip([c.strip() for c in head.strip(" |").split("|")], cells))


def assert_ratio(row: dict[str, str], ratio: str, num: str, den: str) -> None:
    """The speed-up column is the ratio of the two timings it names (3 significant digits)."""
    assert float(row[num]) > 0 and float(row[den]) > 0
    assert float(row[ratio]) == pytest.approx(float(row[num]) / float(row[den]), rel=0.02)


def test_channels_last_quick(capsys):
    assert bench_channels_last.main(["--quick"]) == 0
    row = table_row(capsys.readouterr().out, "| resnet18 | 32 |")
    assert_ratio(row, "channels_last speed-up", "contiguous s/step", "channels_last s/step")


def test_pointwise_quick_compares_the_two_convolutions(capsys):
    assert bench_pointwise.main(["--quick", "--threads", "1"]) == 0
    row = table_row(capsys.readouterr().out, "| resnet50 | 32 |")
    assert row["1x1 convs"] == "33"  # every unstrided 1x1 conv of ResNet-50 was swapped
    assert_ratio(row, "speed-up", "nn.Conv2d s/step", "PointwiseConv2d s/step")


def test_optimizer_quick_times_for_loop_and_fused(capsys):
    assert bench_optimizer.main(["--quick"]) == 0
    row = table_row(capsys.readouterr().out, "| resnet18 | 32 | 2 | adam |")
    assert_ratio(row, "fused speed-up", "for-loop s/step", "fused s/step")


def test_precision_quick_times_fp32_and_bf16(capsys):
    assert bench_precision.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "native bf16 on this CPU:" in out
    row = table_row(out, "| resnet18 | 32 | 4 |")
    assert_ratio(row, "bf16 speed-up", "fp32 s/step", "bf16 s/step")


def test_memory_child_rss_is_its_own():
    # this process holds torch and models (hundreds of MiB): the child's figures must not
    # inherit that peak, as ru_maxrss would
    r = memory.cpu_peak_mb("resnet18", 32, 2, steps=2, threads=1)
    assert 50 < r["idle_mib"] < r["peak_mib"]
    # resnet18's gradients + Adam's two moments alone are 3 x 45 MiB beyond the weights
    assert r["train_mib"] > 120


def test_bench_augment_quick(capsys):
    assert bench_augment.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "torchvision per image img/s" in out and "ours img/s" in out


def test_recipe_grid_labels_and_table():
    from benchmarks.recipe_grid import recipe_options, table

    assert recipe_options("modern", 64) == ("modern", {})
    assert recipe_options("modern@0.002", 32) == ("modern", {"lr": pytest.approx(1e-3)})
    assert recipe_options("source:optimizer=adamw,lr=5e-4", 32) == (
        "source", {"optimizer": "adamw", "lr": 5e-4})
    row = {"folder": "digits", "model": "resnet18", "batch": 32, "epochs": 5, "majority": 0.1}
    rows = [{**row, "recipe": "source", "test_acc": 0.9, "best_val": 0.95},
            {**row, "recipe": "modern", "test_acc": 0.5, "best_val": 0.55}]
    lines = table(rows).splitlines()
    assert lines[0].startswith("| folder (majority) | model | batch | epochs | modern test (val)")
    assert lines[2] == "| digits (10%) | resnet18 | 32 | 5 | 50.0% (55.0%) | 90.0% (95.0%) |"
