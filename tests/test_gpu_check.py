"""The GPU check's bootstrap on this CPU: the wheels that travel with it agree with pyproject.toml,
its generated flowers folder has the layout, and `benchmarks/gpu.sh --dry-run` runs in an
environment that holds only what the GPU machine's image holds (benchmarks/device-image.txt, linked
from this venv) plus those wheels, installed the way gpu.sh installs them there (pip --no-index
--target). No timings are asserted: the dry run's figures mean nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks import device_wheels as dw
from benchmarks import gpu_check
from benchmarks.flowers import make_flowers_folder, scaled_counts
from PIL import Image

from depthbench.report.source import FLOWERS_COUNTS

ROOT = Path(__file__).resolve().parents[1]
# kept between runs: the fetch needs a package registry, the test then none
WHEELS = Path(os.environ.get("DEPTHBENCH_WHEELS") or Path.home() / ".cache" / "depthbench-wheels")
LACKING = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "grad-cam",
           "submitit")
IMAGE_HAS = ("torch", "torchvision", "lightning", "torchmetrics", "safetensors", "timm", "scipy",
             "matplotlib", "rich", "pyyaml", "filelock", "tensorboard", "opencv-python-headless",
             "pytest")


def test_pins_agree_with_pyproject_and_the_image():
    assert dw.check_pins() == []
    pins, image = dw.read_pins(), dw.read_image()
    for name in LACKING:
        assert name in pins and name not in image
    assert "elpv-dataset" not in pins and "elpv-dataset" not in image  # left out on purpose
    assert set(IMAGE_HAS) <= image


def test_check_pins_names_each_mismatch():
    pins = dw.read_pins() | {"pydantic": "1.10.0"}
    del pins["submitit"]
    problems = "\n".join(dw.check_pins(pins=pins))
    assert "pydantic==1.10.0: pyproject.toml admits pydantic" in problems
    assert "submitit: a dependency of depthbench" in problems and "lacks" in problems


def test_flowers_folder_has_the_layout(tmp_path):
    assert scaled_counts(3670) == FLOWERS_COUNTS
    root = make_flowers_folder(tmp_path / "flowers", images=40, size=(40, 30))
    counts = {d.name: len(list(d.glob("*.jpg"))) for d in sorted(root.iterdir()) if d.is_dir()}
    assert counts == scaled_counts(40) and sum(counts.values()) == 40
    assert list(counts) == sorted(FLOWERS_COUNTS)
    with Image.open(next(root.glob("roses/*.jpg"))) as img:
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (40, 30)
    stamp = (root / "flowers.json").stat().st_mtime_ns
    assert make_flowers_folder(root, images=40, size=(40, 30)) == root  # kept, not remade
    assert (root / "flowers.json").stat().st_mtime_ns == stamp


@pytest.fixture(scope="module")
def host_wheels() -> Path:
    """The pinned wheels for this interpreter (the GPU machine's are cp312), fetched once."""
    dest = WHEELS / f"cp{sys.version_info.major}{sys.version_info.minor}"
    try:
        dw.fetch(dest, host=True, log=lambda *_: None)
    except dw.FetchError as e:
        pytest.skip(f"the device wheels cannot be fetched here (no package registry?): {e}")
    return dest


@pytest.mark.slow
def test_gpu_sh_dry_run_with_only_the_image_and_the_wheels(tmp_path, host_wheels):
    python, held = dw.make_image_env(tmp_path / "env")
    assert "torch" in held and not set(LACKING) & held
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHON")}
    for module in ("pydantic", "submitit", "pytorch_grad_cam"):  # lacking until the wheels
        r = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True,
                           env=env, cwd=tmp_path)
        assert r.returncode != 0 and f"No module named '{module}'" in r.stderr
    out = tmp_path / "out"
    r = subprocess.run(["bash", ROOT / "benchmarks" / "gpu.sh", "--dry-run", "--wheels", host_wheels,
                        "--site", tmp_path / "site", "--work", tmp_path / "work", "--out", out,
                        "--phases", "a,c,d", "--time-limit", "400"], capture_output=True, text=True, timeout=480,
                       env={**env, "PYTHON": str(python)}, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert {p.name for p in (tmp_path / "site").iterdir()} >= {"pydantic", "submitit",
                                                                "pytorch_grad_cam"}
    doc = json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))
    assert doc["status"] == "finished" and doc["header"]["dry_run"]
    rows = doc["rows"]
    assert [(r["model"], r["recipe"], r["status"]) for r in rows["a"]] == [
        ("resnet18", "source", "ok"), ("swin_t", "modern", "ok")]
    assert all(r["compute s"] > 0 and r["epoch s"] > 0 for r in rows["a"])
    assert not rows.get("b")  # its study file: test_phase_b_study_is_a_valid_paper_study
    checks = {r["check"] for r in rows["c"]}
    assert {"logits vs timm", "resume equals uninterrupted", "evaluate", "predict",
            "analyze"} <= checks
    assert [r for r in rows["c"] if r["status"] != "ok"] == []
    assert [r["preset"] for r in rows["d"]] == ["paper", "modern"]
    md = (out / "gpu_check.md").read_text(encoding="utf-8")
    assert "## a." in md and "## d." in md and "DRY RUN" in md


@pytest.mark.parametrize("dry_run", [True, False])
def test_phase_b_study_is_a_valid_paper_study(tmp_path, dry_run):
    """Phase b runs `depthbench run` on a study file derived from the paper preset (the two
    studies take 50 s even at the dry run's size, so the suite checks the file, and `run` itself
    is covered by tests/test_run.py)."""
    from types import SimpleNamespace

    from depthbench.study.spec import load_spec

    sizes = gpu_check.DRY if dry_run else gpu_check.GPU
    ctx = SimpleNamespace(s=sizes, data=tmp_path, work=tmp_path,
                          args=SimpleNamespace(dry_run=dry_run, study_models=None))
    spec = load_spec(gpu_check.write_study(ctx))
    assert spec.seeds == [0] and spec.overrides["epochs"] == sizes.study_epochs
    assert list(spec.models) == list(sizes.study_models) and spec.img_size == sizes.img_size


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is visible")
def test_gpu_sh_fails_loudly_without_gpu():
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "no NVIDIA GPU visible" in r.stderr


def test_epoch_figures_from_metrics_and_the_records_clock():
    s = gpu_check.GPU
    stamps = {0: 2.0, 1: 6.0, 3: 10.5, "final": 12.0}  # provenance.seconds as written
    rows = [{"seconds": v, "train_total": "2942", "val_total": "364"} for v in (3.5, 1.9, 2.1)]
    rates = {"step_s": 0.05, "eval_s": 0.01}
    f = gpu_check.epoch_figures(s, stamps, rows, rates, wall=20.0)
    compute = (2942 * 0.05 + 364 * 0.01) / 128
    assert f["epoch s"] == pytest.approx(2.0) and f["first epoch s"] == 3.5  # after the first
    assert f["compute s"] == pytest.approx(compute)
    assert f["epoch/compute"] == pytest.approx(2.0 / compute)
    assert f["overhead s"] == pytest.approx(2.0 - compute)
    assert f["training s"] == 8.5 and f["writes s"] == pytest.approx(8.5 - 7.5)
    assert f["setup s"] == 2.0 and f["final s"] == 1.5 and f["outside s"] == 8.0
    f = gpu_check.epoch_figures(s, {0: 2.0}, rows, rates, wall=20.0)  # the poll missed the rest
    assert f["epoch s"] == pytest.approx(2.0) and f["writes s"] is None and f["final s"] is None


def test_tables_merge_and_the_order_of_phase_a(tmp_path):
    header = {"device": "test", "torch": "x", "cuda": None, "cpus": 1, "git": "?",
              "started": "now", "command": "c", "dry_run": False}
    first = gpu_check.Tables(tmp_path / "one", header)
    first.add("a", {"model": "resnet18", "recipe": "source", "status": "ok", "epoch s": 1.5})
    first.add("a", {"model": "resnet18", "recipe": "source", "status": "ok", "epoch s": 1.25})
    assert len(first.rows["a"]) == 1  # the same run replaces its row
    second = gpu_check.Tables(tmp_path / "two", header)
    second.merge(tmp_path / "one" / "gpu_check.json")
    second.add("c", {"check": "evaluate", "model": "resnet18", "status": "ok", "value": "10/10"})
    md = (tmp_path / "two" / "gpu_check.md").read_text(encoding="utf-8")
    assert "| resnet18 | source | ok | 1.25 | gpu_check.json |" in md
    assert "| evaluate | resnet18 | ok | 10/10 |" in md
    runs = gpu_check.phase_a_runs(gpu_check.GPU, ("resnet50",))
    assert len(runs) == 19 and runs[0] == ("resnet18", "source") and runs[9][1] == "modern"
    assert runs[8] == ("swin_base_patch4_window7_224", "source")
    assert runs[-1] == ("resnet50", "source+compile")
    assert gpu_check.split_train(0.1, 0.1) == 2942 and gpu_check.split_train(0.1, 0.0) == 3306
