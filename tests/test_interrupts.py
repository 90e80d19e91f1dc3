"""A stop never cuts a write, and a run stopped by one is interrupted, never failed.

Each source of interrupt is placed inside a write on purpose: SIGINT, SIGTERM and SIGUSR2 raised
from within the data of a checkpoint (`signal_inside_write`, conftest), and the watcher of a
study's worker whose runner is killed while the worker is paused inside a write. The whole study
under kill -9, signals and reruns is tests/test_reliability.py's kill chain.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

from depthbench._io import (
    HELD_SIGNALS,
    atomic_torch_save,
    atomic_write_json,
    held_interrupts,
    safe_torch_load,
)
from depthbench.engine.cadence import Cadence, Checkpoints
from depthbench.engine.config import TrainConfig
from depthbench.engine.loop import StopRequested
from depthbench.errors import ConfigError, interrupted
from depthbench.runrecord import METRICS_COLUMNS, read_metrics
from depthbench.study import worker
from depthbench.study.summary import Summary


def _raising(calls: list):
    def handler(signum, frame):  # as Ctrl-C's, or a worker's SIGTERM outside the training loop
        calls.append(signum)
        raise KeyboardInterrupt
    return handler


@pytest.fixture
def handlers():
    """Install handlers for the test; the ones found come back after it."""
    found = {s: signal.getsignal(s) for s in HELD_SIGNALS}
    yield lambda signum, handler: signal.signal(signum, handler)
    for s, h in found.items():
        signal.signal(s, h)


@pytest.mark.parametrize("signum", HELD_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_inside_a_checkpoint_waits_for_the_whole_write(
        tmp_path, signal_inside_write, handlers, signum):
    """The signal arrives inside torch's zip writer; its handler runs once the file is renamed
    (a handler raising there tore the zip writer, whose own error then hid the interrupt)."""
    calls = []
    handlers(signum, _raising(calls))
    signal_inside_write("last.ckpt", signum)
    state = {"w": torch.arange(200_000, dtype=torch.float32), "epoch": 3}
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save(state, tmp_path / "last.ckpt")
    assert calls == [signum]
    loaded = safe_torch_load(tmp_path / "last.ckpt")
    assert torch.equal(loaded["w"], state["w"]) and loaded["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_held_signals_reach_the_handlers_found_once_each_in_order(handlers):
    calls = []
    for s in HELD_SIGNALS:
        handlers(s, lambda signum, frame: calls.append(signum))
    with held_interrupts():
        with held_interrupts():  # nested: the outer block holds
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
        assert calls == []
    assert calls == [signal.SIGTERM, signal.SIGINT]
    signal.raise_signal(signal.SIGINT)  # the handlers are back
    assert calls == [signal.SIGTERM, signal.SIGINT, signal.SIGINT]


class _Record:
    """Stands in for the engine's Recorder: result.json through the same atomic writer."""

    def __init__(self, out: Path):
        self.out = out

    def write(self, status, history, best, failure=None):
        atomic_write_json(self.out / "result.json", {"status": status, "epochs": len(history),
                                                     "best": best, "failure": failure})


def _state(epoch: int) -> dict:
    row = dict.fromkeys(METRICS_COLUMNS, 0) | {"epoch": epoch, "train_loss": 1.0, "lr": 1e-3}
    return {"model": {"w": torch.full((1000,), float(epoch))}, "epoch": epoch,
            "history": [row | {"epoch": e} for e in range(1, epoch + 1)],
            "best": {"epoch": epoch, "val_acc": 0.5}}


def test_a_stop_during_a_flush_waits_for_its_four_files(tmp_path, signal_inside_write, handlers):
    """A flush writes best.safetensors, last.ckpt, metrics.csv and result.json for one epoch; a
    stop that arrives in the middle of last.ckpt waits for all four, so they agree."""
    calls = []
    handlers(signal.SIGTERM, _raising(calls))
    checkpoints = Checkpoints(tmp_path, Cadence(every_s=0.0), {"model": "m"}, _Record(tmp_path))
    checkpoints.epoch_done(_state(1), improved=True)
    signal_inside_write("last.ckpt", signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.epoch_done(_state(2), improved=True)
    assert calls == [signal.SIGTERM]
    assert safe_torch_load(tmp_path / "last.ckpt")["epoch"] == 2
    rows, problem = read_metrics(tmp_path / "metrics.csv")
    assert problem is None and [r["epoch"] for r in rows] == [1, 2]
    assert json.loads((tmp_path / "result.json").read_text())["epochs"] == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_close_records_the_epoch_the_files_hold(tmp_path):
    """An interrupt between an epoch's end and its checkpoint: the record names the epoch on
    disk (which resuming continues from), not the live run's."""
    checkpoints = Checkpoints(tmp_path, Cadence(every_s=3600.0), {"model": "m"}, _Record(tmp_path))
    checkpoints.epoch_done(_state(1), improved=True)  # the first epoch is written
    checkpoints.epoch_done(_state(2), improved=False)  # held
    checkpoints.close("interrupted")
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "interrupted" and result["epochs"] == 2
    assert safe_torch_load(tmp_path / "last.ckpt")["epoch"] == 2
    fresh = Checkpoints(tmp_path, Cadence(), {}, _Record(tmp_path), history=_state(2)["history"],
                        best={"epoch": 2})
    fresh.close("interrupted")  # a resumed run stopped before its first epoch ended
    assert json.loads((tmp_path / "result.json").read_text())["epochs"] == 2


def _chain(first: BaseException, then: BaseException) -> BaseException:
    try:
        try:
            raise first
        except BaseException:
            raise then  # noqa: B904 - the implicit context is the point
    except BaseException as e:
        return e


def test_a_failure_is_named_by_its_first_cause():
    def torn():
        return RuntimeError("[enforce fail at inline_container.cc] . unexpected pos 123692800 vs "
                            "123692688")

    assert interrupted(_chain(KeyboardInterrupt(), torn()))  # the zip writer cut by Ctrl-C
    assert interrupted(_chain(StopRequested(), ConfigError("while stopping")))
    assert interrupted(KeyboardInterrupt()) and interrupted(StopRequested())
    assert not interrupted(torn())
    assert not interrupted(_chain(ValueError("NaN"), KeyboardInterrupt()))  # a fault came first


VALUES = TrainConfig(model="resnet18", data="synthetic").model_dump(mode="json")


def _torn_by_an_interrupt(*args, **kwargs):
    try:
        raise KeyboardInterrupt  # the worker's SIGTERM handler, inside torch.save
    except KeyboardInterrupt:
        raise RuntimeError("unexpected pos 123692800 vs 123692688") from None


def test_a_worker_records_an_interrupt_as_interrupted_and_a_fault_as_failed(tmp_path, monkeypatch):
    run = tmp_path / "resnet18__base__s0"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"status": "interrupted", "epochs_completed": 2}))
    monkeypatch.setattr(worker, "train", _torn_by_an_interrupt)
    threads = torch.get_num_threads()  # train_run sets this process's threads
    assert worker.train_run(run, VALUES, "split.json", "base", threads) == worker.INTERRUPTED
    assert json.loads((run / "result.json").read_text())["status"] == "interrupted"  # kept

    def fault(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(worker, "train", fault)
    assert worker.train_run(run, VALUES, "split.json", "base", threads) == 1
    failed = json.loads((run / "result.json").read_text())
    assert failed["status"] == "failed" and "out of memory" in failed["failure"]["reason"]


def test_the_command_line_names_an_interrupt_by_its_first_cause(monkeypatch, capsys):
    from depthbench.cli import cmd_models
    from depthbench.cli.main import main

    monkeypatch.setattr(cmd_models, "run", _torn_by_an_interrupt)
    assert main(["models"]) == 130
    assert capsys.readouterr().err.strip() == ("depthbench: interrupted; rerun the same command "
                                               "to resume")


def test_an_interrupted_run_is_counted_as_such(tmp_path):
    buf = io.StringIO()
    s = Summary(tmp_path, total=2)
    s.run_ended("a", {"status": "interrupted", "epochs_completed": 1}, Console(file=buf, width=300),
                detail="in 3 s", reason="exit code 130")
    assert s.interrupted == ["a"] and not s.failed and not s.finished
    assert buf.getvalue().startswith("[1/2] a: interrupted (in 3 s) after 1 epochs; rerunning the "
                                     "study resumes it")


WATCHED = r"""
import multiprocessing, os, sys, time
from pathlib import Path

import torch

import depthbench._io as dio
from depthbench.study import worker

out = Path(sys.argv[1])


class Paused:
    # a checkpoint being written that pauses in its data until a stop signal is held
    def __init__(self, f):
        self.f, self.paused = f, False

    def write(self, data):
        if not self.paused:
            self.paused = True
            (out / "paused").write_text(str(os.getpid()))
            deadline = time.monotonic() + 60
            while not dio.held_signals() and time.monotonic() < deadline:
                time.sleep(0.01)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def child():
    worker._stop_with_runner()  # what run_worker sets up, before training
    worker.signal.signal(worker.signal.SIGTERM, worker._raise_interrupt)
    fdopen = os.fdopen
    dio.os.fdopen = lambda fd, *a, **k: Paused(fdopen(fd, *a, **k))
    try:
        dio.atomic_torch_save({"w": torch.arange(200_000.0)}, out / "last.ckpt")
        ended = "no interrupt"
    except BaseException as e:
        ended = type(e).__name__
    (out / "ended.tmp").write_text(ended)
    os.replace(out / "ended.tmp", out / "ended")


if __name__ == "__main__":
    p = multiprocessing.get_context("fork").Process(target=child)
    p.start()
    p.join()
"""


def test_the_watcher_of_a_killed_runner_waits_for_the_write(tmp_path):
    """A study's worker outlives its runner's kill -9 and stops itself through its watcher's
    SIGTERM: the checkpoint it was writing is finished first, then the interrupt ends it."""
    runner = subprocess.Popen([sys.executable, "-c", WATCHED, str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "paused").exists():
            assert runner.poll() is None and time.monotonic() < deadline, "never paused"
            time.sleep(0.02)
    finally:
        runner.kill()  # the worker is paused inside its write now
        runner.wait()
    deadline = time.monotonic() + 30
    while not (tmp_path / "ended").exists():
        assert time.monotonic() < deadline, "the worker did not stop"
        time.sleep(0.02)
    assert (tmp_path / "ended").read_text() == "KeyboardInterrupt"
    assert torch.equal(safe_torch_load(tmp_path / "last.ckpt")["w"], torch.arange(200_000.0))
    assert not list(tmp_path.glob(".*.tmp"))
