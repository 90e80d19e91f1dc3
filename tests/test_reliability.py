"""Faults: kill a study anywhere and lose nothing; one study per folder; a full disk;
a NaN loss.

The study is the packaged `smoke` preset shrunk to seconds (16 px images, one model, two seeds,
two epochs of one batch, runs one at a time so every run always gets the same CPU threads): the
real runner, worker processes, records and report, only smaller. One run (seed 1) gets a NaN loss
from epoch 2 on, injected by a `sitecustomize.py` on the workers' PYTHONPATH (it multiplies the
training cross-entropy by NaN once metrics.csv shows epoch 1 done), so the reference study also
shows a failed run recorded with its epoch and reason while the study goes on (the hook finds
its run by the worker's process name, or by `--out` for a worker started as a command).

The kill chain stops one study folder at six moments, each placed on purpose, not by timing: the
fork server importing torch (Ctrl-C to the process group), the data cache being built (kill -9 of
runner and workers at once), and four writes, inside which the same `sitecustomize.py` pauses a
chosen process (`DEPTHBENCH_TEST_PAUSE`: the Nth atomic write of a file, named by the end of its
path) until a stop signal is held there: seed 0's last flush, outside the training loop (kill -9
of the runner alone: its worker's watcher stops it), seed 1's first record (SIGTERM to that
worker alone), seed 1's failure record (kill -9 of everything) and the report's results.csv
(SIGTERM to the runner). After each stop every record must parse, no run stopped by a signal may
be recorded as failed, and after the final rerun every run's metrics (all but seconds,
throughput and timestamps) must equal those of an uninterrupted study.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import badinput as B

NAN_RUN = "resnet18__base__s1"

SITECUSTOMIZE = '''
# depthbench tests: NaN training loss for one run from epoch DEPTHBENCH_TEST_NAN_EPOCH on.
# The run is found by its worker's process name (the runner names each worker after its run) or
# by `--out RUN_DIR` on the command line; its folder by the train.log the worker writes to.
import os, sys
if os.environ.get("DEPTHBENCH_TEST_NAN_RUN"):
    from pathlib import Path
    import torch
    _forward = torch.nn.CrossEntropyLoss.forward
    _target = []

    def _run_dir():
        if not _target:
            import multiprocessing
            run = os.environ["DEPTHBENCH_TEST_NAN_RUN"]
            out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv[:-1] else ""
            if multiprocessing.current_process().name == run:
                _target.append(Path(os.readlink("/proc/self/fd/1")).parent)
            elif out.rstrip("/").endswith(run):
                _target.append(Path(out))
            else:
                _target.append(None)
        return _target[0]

    def _epochs_done(d):
        try:
            return max(0, sum(1 for ln in (d / "metrics.csv").read_text().splitlines() if ln.strip()) - 1)
        except OSError:
            return 0

    def forward(self, input, target):
        loss = _forward(self, input, target)
        d = _run_dir() if torch.is_grad_enabled() else None
        if d is not None and _epochs_done(d) + 1 >= int(os.environ.get("DEPTHBENCH_TEST_NAN_EPOCH", "2")):
            loss = loss * float("nan")
        return loss

    torch.nn.CrossEntropyLoss.forward = forward

# depthbench tests: pause inside atomic writes until a stop signal is held there.
# DEPTHBENCH_TEST_PAUSE="<end of a path>#N;...": the Nth write of such a file in a process;
# DEPTHBENCH_TEST_PAUSED: the file that then gets the line "<pid> <path>".
if os.environ.get("DEPTHBENCH_TEST_PAUSE"):
    import contextlib, time
    import depthbench._io as _io
    _rules = [(tail, int(n)) for tail, _, n in
              (r.partition("#") for r in os.environ["DEPTHBENCH_TEST_PAUSE"].split(";"))]
    _writes = {}
    _atomic_open = _io.atomic_open

    @contextlib.contextmanager
    def _pausing_open(path, *args, **kwargs):
        with _atomic_open(path, *args, **kwargs) as f:
            for tail, nth in _rules:
                if str(path).endswith(tail):
                    _writes[tail] = _writes.get(tail, 0) + 1
                    if _writes[tail] == nth:
                        with open(os.environ["DEPTHBENCH_TEST_PAUSED"], "a") as mark:
                            mark.write(f"{os.getpid()} {path}\\n")
                        deadline = time.monotonic() + 60
                        while not _io.held_signals() and time.monotonic() < deadline:
                            time.sleep(0.01)
            yield f

    _io.atomic_open = _pausing_open
'''


def mini_study(path: Path) -> Path:
    """The smoke preset, shrunk (module docstring)."""
    from importlib.resources import files

    spec = yaml.safe_load((files("depthbench") / "configs/presets/smoke.yaml").read_text("utf-8"))
    spec.update(name="mini", data="synthetic:n=24,size=16,classes=2,seed=0", img_size=16,
                models=["resnet18"], variants={}, seeds=2, jobs=1)
    # fp32: two uninterrupted runs under CPU bf16-mixed with 2 threads can differ in the last
    # digits (oneDNN's bf16 weight-gradient reductions); this test is about interruptions
    # checkpoint_every: epoch 1 is written, epoch 2 held and written after the training loop
    spec["overrides"].update(epochs=2, batch_size=8, limit_train_batches=1, precision="32",
                             checkpoint_every=60)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    e = B.cli_env(tmp)
    e["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [e.get("PYTHONPATH")])])
    e["DEPTHBENCH_TEST_NAN_RUN"] = NAN_RUN
    e["COLUMNS"] = "200"  # rich wraps long lines at 80 columns otherwise
    return {"tmp": tmp, "env": e, "study": mini_study(tmp / "mini.yaml")}


def _session_with_sigint() -> None:
    # its own session (a process group to signal as a terminal's Ctrl-C does), with SIGINT's
    # default action even when the suite runs in the background, which starts children with
    # SIGINT ignored
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(env: dict, out: Path, cache: Path, pause: str | None = None) -> subprocess.Popen:
    """`depthbench run` of the mini study into `out`; `pause`: the write to pause in
    (`DEPTHBENCH_TEST_PAUSE`), whose marker is then `proc.paused`."""
    e = dict(env["env"], DEPTHBENCH_CACHE=str(cache))
    paused = out.parent / f"{out.name}.{time.monotonic_ns()}.paused"
    if pause:
        e.update(DEPTHBENCH_TEST_PAUSE=pause, DEPTHBENCH_TEST_PAUSED=str(paused))
    log = out.parent / f"{out.name}.{time.monotonic_ns()}.log"
    f = open(log, "w+", encoding="utf-8")  # noqa: SIM115 - read back by finish()
    proc = subprocess.Popen([sys.executable, "-m", "depthbench", "run", "--config", env["study"],
                             "--out", out], stdout=f, stderr=subprocess.STDOUT, env=e,
                            cwd=env["tmp"], preexec_fn=_session_with_sigint)
    proc.log = f  # type: ignore[attr-defined]
    proc.paused = paused  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill9(proc)
        raise
    proc.log.seek(0)
    text = proc.log.read()
    proc.log.close()
    assert "Error in sitecustomize" not in text, text  # the test's hooks must be in place
    return rc, text


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill9(proc: subprocess.Popen) -> None:
    """A power cut: the runner and its workers die at once, nothing runs a handler."""
    kids = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    for k in kids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(k, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{k}").exists() and _state(k) != "Z" for k in kids):
        assert time.monotonic() < deadline, "workers survived SIGKILL"
        time.sleep(0.05)


def kill9_runner(proc: subprocess.Popen) -> None:
    """kill -9 of the runner alone (`kill -9 PID`): every process it started must end by itself
    (the workers stop as the runner would stop them; the fork server and the resource tracker
    follow) within the grace the runner gives a worker to stop, plus a margin: on a loaded
    machine (the suite's two workers beside other jobs) a process that has torch loaded can wait
    long for the CPU its exit needs; a process left running for good fails all the same."""
    from depthbench.study.worker import STOP_GRACE_S

    kids = descendants(proc.pid)
    assert any(_is_worker(k) for k in kids), "no worker to outlive the runner"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + STOP_GRACE_S + 60
    while alive := [k for k in kids if Path(f"/proc/{k}").exists() and _state(k) != "Z"]:
        assert time.monotonic() < deadline, f"processes outlived the runner: {_named(alive)}"
        time.sleep(0.05)


def _named(pids: list[int]) -> list[str]:
    """`pid state command line` of each process (a failure message says which ones lived on)."""
    def cmdline(pid: int) -> str:
        with contextlib.suppress(OSError):
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        return "?"
    return [f"{pid} {_state(pid)} {cmdline(pid)}" for pid in pids]


def _is_worker(pid: int) -> bool:
    """A training worker: a child of the fork server in a session of its own."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[3]) == pid  # session id: the worker calls setsid()
    return False


def _forkserver_starting(proc: subprocess.Popen, study: Path):
    """The fork server exists and no worker has started yet: it is importing torch."""
    def ready() -> bool:
        logs = "".join(p.read_text() for p in study.glob("*/train.log"))
        return "worker pid" not in logs and any(
            b"forkserver" in Path(f"/proc/{k}/cmdline").read_bytes()
            for k in descendants(proc.pid) if Path(f"/proc/{k}/cmdline").exists())
    return ready


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def wait_for(proc: subprocess.Popen, ready, timeout: float = 180) -> bool:
    """Poll until `ready()`; False if the process ended first. Every 5 ms, or 4x as long as one
    look takes (a scan of /proc takes milliseconds), so the watching uses at most a fifth of a
    core: the study it watches and the reference beside it share the machine's two."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        look = time.monotonic()
        if ready():
            return True
        if proc.poll() is not None:
            return bool(ready())
        time.sleep(max(0.005, 4 * (time.monotonic() - look)))
    raise AssertionError("timed out waiting for the moment to interrupt")


# ------------------------------------------------------------------------------ the records

def check_records(study: Path) -> list[Path]:
    """Every record parses (JSON, YAML, CSV rows of the header's width, safetensors, last.ckpt,
    PNG). Returns leftover temporary files (`.name.*.tmp`), which are not records."""
    from PIL import Image
    from safetensors.torch import load_file

    from depthbench._io import safe_torch_load

    leftovers = []
    for f in sorted(study.rglob("*")):
        if not f.is_file():
            continue
        name = f.name
        try:
            if name.endswith(".tmp"):
                leftovers.append(f)
            elif name.endswith(".json") or name == ".lock.owner":
                json.loads(f.read_text(encoding="utf-8"))
            elif name.endswith(".yaml"):
                assert isinstance(yaml.safe_load(f.read_text(encoding="utf-8")), dict)
            elif name.endswith(".csv"):
                rows = list(csv.reader(io.StringIO(f.read_text(encoding="utf-8"))))
                assert rows and all(len(r) == len(rows[0]) for r in rows), rows
            elif name.endswith(".safetensors"):
                assert load_file(f)
            elif name.endswith(".ckpt"):
                assert isinstance(safe_torch_load(f), dict)
            elif name.endswith(".png"):
                with Image.open(f) as im:
                    im.verify()
            elif name.endswith((".md", ".html")):
                assert f.read_text(encoding="utf-8").strip()
        except Exception as e:
            raise AssertionError(f"corrupt record {f.relative_to(study)}: {e!r}") from e
    return leftovers


VOLATILE = {"seconds", "train_seconds", "train_images_per_s", "infer_images_per_s",
            "peak_memory_mb", "started", "recorded", "out", "cache_dir"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def outcome(study: Path) -> dict:
    """What must not depend on interruptions: every run's result.json and metrics.csv without
    times, and results.csv without its seconds column."""
    out = {}
    for run in sorted(p for p in study.iterdir() if (p / "result.json").is_file()):
        r = json.loads((run / "result.json").read_text(encoding="utf-8"))
        rows = list(csv.DictReader(io.StringIO((run / "metrics.csv").read_text(encoding="utf-8"))))
        out[run.name] = {"result": _strip({k: v for k, v in r.items()
                                           if k not in ("costs", "provenance")}),
                         "metrics": [_strip(row) for row in rows]}
    rows = list(csv.DictReader(io.StringIO((study / "results.csv").read_text(encoding="utf-8"))))
    out["results.csv"] = [_strip(row) for row in rows]
    return out


# ------------------------------------------------------------------------------ reference

@pytest.fixture(scope="module")
def reference_proc(env):
    """The uninterrupted study, started in the background (it runs beside the kill chain)."""
    proc = start_run(env, env["tmp"] / "reference", env["tmp"] / "cache_ref")
    yield proc
    if proc.poll() is None:
        kill9(proc)


@pytest.fixture(scope="module")
def reference(env, reference_proc):
    rc, log = finish(reference_proc)
    assert rc == 3, log  # the NaN run failed: the study says so in its exit status
    return env["tmp"] / "reference", log


# ------------------------------------------------------------------------------ the kill chain

S0, S1 = "resnet18__base__s0", NAN_RUN


def _status(study: Path, run: str) -> tuple[str, int]:
    r = json.loads((study / run / "result.json").read_text(encoding="utf-8"))
    return r["status"], r["epochs_completed"]


def _pauses(proc: subprocess.Popen) -> list[str]:
    """The writes an invocation has paused in so far: `<pid> <path>` each (whole lines only)."""
    return proc.paused.read_text().split("\n")[:-1] if proc.paused.exists() else []


def _stop(proc: subprocess.Popen, how) -> None:
    """kill9 stops the runner and its workers at once, kill9-runner the runner alone (its
    workers must end by themselves), SIGINT-group is a terminal's Ctrl-C (the whole process
    group), SIGTERM-worker goes to the worker paused last, a signal to the runner alone (as
    `kill PID` does)."""
    if how == "kill9":
        kill9(proc)
    elif how == "kill9-runner":
        kill9_runner(proc)
    elif how == "SIGINT-group":
        os.killpg(proc.pid, signal.SIGINT)
    elif how == "SIGTERM-worker":
        os.kill(int(_pauses(proc)[-1].split()[0]), signal.SIGTERM)
    else:
        proc.send_signal(how)


@pytest.mark.slow
def test_kill_anywhere_then_rerun_gives_the_same_study(env, reference_proc, request):
    from depthbench._io import safe_torch_load

    study, cache = env["tmp"] / "chain", env["tmp"] / "cache_chain"
    # one invocation each: its stops in order, each (moment, the write paused in or what to
    # watch, how to stop it)
    invocations = [
        [("the fork server starting", lambda proc: _forkserver_starting(proc, study)(),
          "SIGINT-group")],
        [("data cache build", lambda proc: any((cache / "decoded").rglob("*")), "kill9")],
        [("seed 0's last flush", f"{S0}/last.ckpt#2", "kill9-runner")],
        [("seed 1's first record", f"{S1}/result.json#1", "SIGTERM-worker"),
         ("the report", "results.csv#1", signal.SIGTERM)],
        [("seed 1's failure record", f"{S1}/result.json#3", "kill9")],
    ]
    previous = None
    for stops in invocations:
        pauses = [moment for _, moment, _ in stops if isinstance(moment, str)]
        proc = start_run(env, study, cache, pause=";".join(pauses) or None)
        waited = 0
        for what, moment, how in stops:
            if isinstance(moment, str):
                waited += 1
                ready = functools.partial(lambda p, n: len(_pauses(p)) >= n, proc, waited)
            else:
                ready = functools.partial(moment, proc)
            assert wait_for(proc, ready) and proc.poll() is None, f"the study ended before {what}"
            _stop(proc, how)
        rc, log = finish(proc)
        if how in ("kill9", "kill9-runner"):
            assert rc < 0, f"{how} during {what}: exit {rc}\n{log}"
        else:
            assert "Traceback" not in log, log
            assert rc == 130, f"{how!r} during {what}: exit {rc}\n{log}"
            assert "rerun the same command" in log, f"no resume hint after {how!r}\n{log}"
        if previous in ("kill9", "kill9-runner"):
            assert "took over the lock" in log, f"stale lock not reported\n{log}"
        previous = how
        check_records(study)  # nothing torn, whatever the moment
        if what == "seed 0's last flush":  # its watcher stopped the worker after the write
            assert _status(study, S0) == ("interrupted", 2)
            assert safe_torch_load(study / S0 / "last.ckpt")["epoch"] == 2
        if what == "the report":  # seed 1 was stopped, not failed; the runner said so, went on
            assert _status(study, S1)[0] == "running" and _status(study, S0)[0] == "finished"
            assert f"{S1}: interrupted" in log and "FAILED" not in log, log
    rc, log = finish(start_run(env, study, cache))
    assert rc == 3, f"final rerun: not exit 3 for its failed run\n{log}"
    leftovers = check_records(study)
    reference = request.getfixturevalue("reference")
    assert outcome(study) == outcome(reference[0]), "resumed study differs"
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.mark.slow
def test_nan_loss_fails_that_run_and_the_study_goes_on(reference):
    study, log = reference
    nan = json.loads((study / NAN_RUN / "result.json").read_text(encoding="utf-8"))
    assert nan["status"] == "failed", nan["status"]
    assert nan["failure"]["epoch"] == 2, nan["failure"]
    assert "non-finite" in nan["failure"]["reason"] or "nan" in nan["failure"]["reason"].lower()
    assert nan["epochs_completed"] == 1
    ok = json.loads((study / "resnet18__base__s0" / "result.json").read_text(encoding="utf-8"))
    assert ok["status"] == "finished" and ok["epochs_completed"] == 2
    rows = {r["seed"]: r for r in csv.DictReader(open(study / "results.csv", encoding="utf-8"))}
    assert rows["1"]["status"] == "failed" and rows["1"]["failure_epoch"] == "2", rows
    assert rows["0"]["status"] == "finished", rows
    assert NAN_RUN in log and "FAILED" in log, log
    assert NAN_RUN in (study / "report.md").read_text(encoding="utf-8")
    assert not check_records(study)


# ------------------------------------------------------------------------------ the lock

OWNER = ".lock.owner"

def test_second_run_on_a_locked_folder_is_refused(env):
    from depthbench.study.lock import StudyLock

    out = env["tmp"] / "locked"
    with StudyLock(out):
        p = subprocess.run([sys.executable, "-m", "depthbench", "run", "--config", env["study"],
                            "--out", out], capture_output=True, text=True, env=env["env"],
                           cwd=env["tmp"], timeout=120)
    res = B.Result(["run"], p.returncode, p.stdout, p.stderr)
    B.assert_user_error(res, "in use", str(os.getpid()))
    assert not any(out.glob("resnet18*")), "the refused run touched the study"


def held_elsewhere(lock: str, folder: Path, seconds: float = 60) -> subprocess.Popen:
    """Another process that holds `folder` with `lock` (`depthbench.study.lock.StudyLock`,
    `depthbench.engine.runlock.RunLock`) for `seconds`, once it has taken it."""
    module, name = lock.rsplit(".", 1)
    proc = subprocess.Popen([sys.executable, "-c", (
        f"import time; from {module} import {name}\n"
        f"with {name}({str(folder)!r}):\n    print('held', flush=True); time.sleep({seconds})")],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    from depthbench.study.lock import OWNER_NAME, StudyLock, StudyLocked

    holder = held_elsewhere("depthbench.study.lock.StudyLock", tmp_path)
    try:
        with pytest.raises(StudyLocked, match=str(holder.pid)), StudyLock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / OWNER_NAME).exists()  # left behind by the killed holder
    with StudyLock(tmp_path) as lock:
        assert lock.took_over and lock.took_over["pid"] == holder.pid
        assert json.loads((tmp_path / OWNER_NAME).read_text())["pid"] == os.getpid()


def test_a_start_that_wrote_nothing_leaves_no_lock_behind(tmp_path):
    """A run folder that a failed start created goes with its lock; a folder with records keeps
    its empty `.lock` (a waiter must find the file it opened)."""
    from depthbench.engine.runlock import RunLock

    run = tmp_path / "new"
    with pytest.raises(RuntimeError, match="bad data"), RunLock(run):
        raise RuntimeError("bad data")
    assert not run.exists()
    run.mkdir()
    (run / "split.json").write_text("{}")
    with RunLock(run):
        pass
    assert sorted(p.name for p in run.iterdir()) == [".lock", "split.json"]


def test_a_waiter_whose_folder_went_away_takes_the_new_one(tmp_path):
    """The holder of a folder it wrote nothing into removes folder and lock while it holds it; a
    process already waiting on that lock file then holds a new one, never the removed file."""
    from depthbench.engine.runlock import RunLock
    from depthbench.folderlock import holder as held_by

    run = tmp_path / "new"
    first = held_elsewhere("depthbench.engine.runlock.RunLock", run, seconds=1.5)
    try:
        with RunLock(run, wait=60):  # opens the lock file now, gets it once `first` lets go
            assert first.wait(timeout=30) == 0 and run.is_dir()
            assert json.loads((run / OWNER).read_text())["pid"] == os.getpid()
            probe = subprocess.run([sys.executable, "-c", (
                "from depthbench.folderlock import holder\n"
                f"print(holder({str(run)!r}).get('pid'))")], capture_output=True, text=True)
            assert probe.stdout.strip() == str(os.getpid()), probe  # held: refused to others
    finally:
        first.kill()
        first.wait()
    assert held_by(run) is None and not run.exists()


def test_a_dead_trainers_owner_record_goes_when_the_study_starts(tmp_path):
    from depthbench.study.folder import remove_study_temps

    run = tmp_path / "study" / "resnet18__base__s0"
    holder = held_elsewhere("depthbench.engine.runlock.RunLock", run)
    try:
        (run / "train.log").write_text("worker pid 1\n")
    finally:
        holder.kill()  # kill -9: its owner record stays
        holder.wait()
    assert (run / OWNER).is_file()
    remove_study_temps(run.parent)
    assert sorted(p.name for p in run.iterdir()) == [".lock", "train.log"]


# ------------------------------------------------------------------------------ a full disk

TRAIN_ARGS = ["--model", "resnet18", "--data", "synthetic:n=30,size=16,classes=3,seed=0",
              "--epochs", "2", "--img-size", "16", "--batch-size", "8",
              "--limit-train-batches", "1", "--accelerator", "cpu", "--quiet"]


def _weights_bytes() -> int:
    from depthbench.models import create_model

    net = create_model("resnet18", num_classes=3, img_size=16)
    return sum(t.numel() * t.element_size() for t in net.state_dict().values())


@contextlib.contextmanager
def _tmpfs(path: Path, size: int):
    path.mkdir()
    if os.environ.get("DEPTHBENCH_TEST_NO_TMPFS") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True).returncode != 0:
        yield None  # not root, or no mount permission in this container
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _check_disk_full_outcome(run: Path, stderr: str, rc: int) -> None:
    from depthbench._io import safe_torch_load

    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert rc == 2, stderr
    assert lines and "no space left" in lines[-1].lower() and "last.ckpt" in lines[-1], stderr
    state = safe_torch_load(run / "last.ckpt")  # the previous checkpoint: whole and loadable
    assert state["epoch"] == 1, state["epoch"]
    assert not list(run.glob(".*.tmp")), list(run.glob(".*.tmp"))
    rows = list(csv.DictReader(open(run / "metrics.csv", encoding="utf-8")))
    assert [r["epoch"] for r in rows] == ["1"], rows
    json.loads((run / "result.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_full_disk_stops_clearly_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    """A tmpfs with room for epoch 1's best.safetensors (W) and last.ckpt (about 3W: weights and
    Adam's two moments) and not for a second last.ckpt beside the first (atomic writes need both):
    epoch 2's checkpoint write hits ENOSPC. Without permission to mount, the same failure is
    injected into the write of the second last.ckpt in-process."""
    w = _weights_bytes()
    with _tmpfs(tmp_path / "disk", int(5.5 * w)) as disk:
        if disk is not None:
            run = disk / "run"
            p = subprocess.run([sys.executable, "-m", "depthbench", "train", *TRAIN_ARGS,
                                "--out", run], capture_output=True, text=True,
                               env=B.cli_env(tmp_path), cwd=tmp_path, timeout=300)
            _check_disk_full_outcome(run, p.stderr, p.returncode)
            return
    # fallback: ENOSPC injected into the second write of a last.ckpt temporary file
    import depthbench._io as dio
    from depthbench.cli.main import main

    real_fdopen, opened = os.fdopen, []

    class Full(io.RawIOBase):  # a disk that fills up after the first MiB of this file
        def __init__(self, f):
            self.f, self.room = f, 1 << 20

        def writable(self):
            return True

        def write(self, b):
            if len(b) > self.room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(b)
            return self.f.write(b)

        def fileno(self):
            return self.f.fileno()

        def close(self):
            self.f.close()
            super().close()

    def fdopen(fd, *a, **k):
        f = real_fdopen(fd, *a, **k)
        if ".last.ckpt." in os.readlink(f"/proc/self/fd/{fd}"):
            opened.append(fd)
            if len(opened) == 2:
                return Full(f)
        return f

    monkeypatch.setattr(dio.os, "fdopen", fdopen)
    monkeypatch.setenv("DEPTHBENCH_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    rc = main(["train", *TRAIN_ARGS, "--out", str(run)])
    _check_disk_full_outcome(run, capsys.readouterr().err, rc)


def test_a_failed_write_says_whether_a_previous_version_exists(tmp_path, monkeypatch):
    """A full disk surfaces at the write or at fsync: the message says whether the file being
    replaced is still there and intact, or that there was none (never "intact" for a file that
    never existed)."""
    import depthbench._io as dio
    from depthbench.errors import DepthbenchError

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dio.os, "fsync", full)
    with pytest.raises(DepthbenchError, match="No space left on device; there was no previous "
                                              "version"):
        dio.atomic_write_bytes(tmp_path / "last.ckpt", b"new")
    (tmp_path / "best.safetensors").write_bytes(b"old")
    with pytest.raises(DepthbenchError, match="No space left on device; the previous version is "
                                              "intact"):
        dio.atomic_write_bytes(tmp_path / "best.safetensors", b"new")
    assert (tmp_path / "best.safetensors").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors"]  # no temp left
