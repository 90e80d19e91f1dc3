"""The layer contract (import-linter, `.importlinter`), the `--help` boundary, and facts that have
one home: each test fails when a second, different copy of the fact comes back. Fast, no training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from depthbench import configio, names
from depthbench.cli.main import build_parser
from depthbench.engine.config import RECIPES, TrainConfig, make_config
from depthbench.errors import ConfigError
from depthbench.study import spec as spec_module
from depthbench.study.schema import SplitSpec
from depthbench.study.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def test_layer_contract_holds():
    """No import runs upward, the report stays off engine, models, data, analysis and torch, and
    the modules under every layer stay torch-free (`make lint` runs the same contract). In a
    process of its own: import-linter reconfigures logging, which would silence ours here."""
    run = ("import sys; from importlinter.cli import lint_imports; "
           "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True, no_logo=True))")
    p = subprocess.run([sys.executable, "-c", run], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_help_imports_neither_torch_nor_the_heavy_libraries():
    probe = ("import sys; from depthbench.cli.main import build_parser; build_parser(); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'torch', 'torchvision', 'lightning', 'numpy', 'PIL', 'matplotlib', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("val,test", [(0.0, 0.2), (0.1, 0.0), (0.2, 0.3), (0.5, 0.5),
                                      (1.0, 0.0), (-0.1, 0.0), (0.1, 1.0)])
def test_split_fractions_follow_one_rule_in_train_and_study(val, test):
    ok = configio.fractions_problem(val, test) is None
    try:
        make_config({"model": "resnet18", "data": "x", "val": val, "test": test})
        train_ok = True
    except ConfigError:
        train_ok = False
    try:
        SplitSpec(val=val, test=test)
        study_ok = True
    except ValidationError:
        study_ok = False
    assert train_ok == study_ok == ok
    assert (TrainConfig(model="resnet18", data="x").val, SplitSpec().val) == (
        configio.DEFAULT_VAL, configio.DEFAULT_VAL)


def test_modern_drop_path_comes_from_each_swins_registration(monkeypatch):
    rate = RECIPES["modern"]["drop_path_rate"]
    swin = names.family_models("swin")
    rates = [rate({"model": m}) for m in swin]
    assert rates == [names.MODELS[m].modern_drop_path for m in swin]
    assert all(r > 0 for r in rates) and rates == sorted(rates)  # deeper Swin, more drop path
    assert {rate({"model": m}) for m in names.MODELS if m not in swin} == {0.0}
    # a Swin registered without one gets no silent fallback
    monkeypatch.setitem(names.MODELS, "swin_large", names.ModelInfo("swin", "Swin-L"))
    with pytest.raises(ConfigError, match="swin_large declares no modern_drop_path"):
        rate({"model": "swin_large"})


def test_presets_are_the_preset_files(monkeypatch):
    files = sorted(p.stem for p in (ROOT / "src/depthbench/configs/presets").glob("*.yaml"))
    assert configio.preset_names() == files
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    preset = next(a for a in run._actions if a.dest == "preset")
    assert sorted(preset.choices) == files
    monkeypatch.setattr(spec_module, "check_train_options", lambda *a: None)  # models: not here
    assert load_spec().name == configio.DEFAULT_PRESET
    with pytest.raises(ConfigError, match="unknown preset 'nope'; choose from modern"):
        load_spec(preset="nope")


# A typo in each command, and the one line it must answer with before torch loads.
FAST_ERRORS = {
    "unknown model": (["train", "--model", "resnet19", "--data", "synthetic", "--out", "{tmp}/t1"],
                      "unknown model 'resnet19' (did you mean resnet18?)"),
    "no data folder": (["train", "--model", "resnet18", "--data", "{tmp}/cels", "--out",
                        "{tmp}/t2"], "data folder not found: {tmp}/cels"),
    "data is a file": (["train", "--model", "resnet18", "--data", "{tmp}/study.yaml", "--out",
                        "{tmp}/t3"], "data path {tmp}/study.yaml is a file"),
    "option of another family": (["train", "--model", "resnet18", "--data", "synthetic",
                                  "--key-drop", "0.1", "--out", "{tmp}/t4"],
                                 "option key_drop=0.1 does not apply to resnet18"),
    "pretrained YAML": (["train", "--model", "resnet18", "--data", "synthetic", "--pretrained",
                         "{tmp}/study.yaml", "--out", "{tmp}/t5"],
                        "pretrained weights {tmp}/study.yaml: not a weights file (a text file"),
    "resume nothing": (["train", "--model", "resnet18", "--data", "synthetic", "--out", "{tmp}/t6",
                        "--resume"], "--resume: no run to resume in {tmp}/t6 (no such folder)"),
    "study model": (["run", "--config", "{tmp}/models.yaml", "--out", "{tmp}/s4"],
                    "models.yaml: models[1]: unknown model or family 'swim' (did you mean swin?)"),
    "study key": (["run", "--config", "{tmp}/seed.yaml", "--out", "{tmp}/s1"],
                  "seed.yaml: seed: unknown key (did you mean seeds?)"),
    "override key": (["run", "--config", "{tmp}/batchsize.yaml", "--out", "{tmp}/s2"],
                     "batchsize.yaml: overrides.batchsize: unknown training option (did you mean "
                     "batch_size?)"),
    "study data": (["run", "--config", "{tmp}/study.yaml", "--data", "{tmp}/cels", "--out",
                    "{tmp}/s3"], "data folder not found: {tmp}/cels"),
    "evaluate a YAML": (["evaluate", "{tmp}/study.yaml", "--data", "synthetic"],
                        "{tmp}/study.yaml is not a checkpoint"),
    "evaluate batch": (["evaluate", "{tmp}/w.safetensors", "--data", "synthetic", "--batch-size",
                        "0"], "--batch-size 0: give at least 1"),
    "predict top-k": (["predict", "{tmp}/w.safetensors", "{tmp}/a.png", "--top-k", "0"],
                      "--top-k 0: must be at least 1"),
    "predict nothing": (["predict", "{tmp}/none.safetensors", "{tmp}/a.png"],
                        "checkpoint not found: {tmp}/none.safetensors"),
}

_PROBE = """
import contextlib, io, json, sys
from depthbench.cli.main import main
out = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out[name] = [main(argv), err.getvalue()]
print(json.dumps({"answers": out, "torch": "torch" in sys.modules,
                  "sklearn": "sklearn" in sys.modules or "scipy" in sys.modules}))
"""


def test_a_typo_answers_in_one_line_before_torch_loads(tmp_path):
    """`train`, `run`, `evaluate` and `predict` check names, keys, values and paths before they
    load torch (the time each takes: benchmarks/bench_cli_errors.py). One process for all."""
    import yaml

    smoke = yaml.safe_load((ROOT / "src/depthbench/configs/presets/smoke.yaml").read_text())
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(smoke))
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(smoke | {"seed": 1}))
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(smoke | {"models": ["resnet", "swim"]}))
    bad = smoke | {"overrides": {**smoke.get("overrides", {}), "batchsize": 8}}
    (tmp_path / "batchsize.yaml").write_text(yaml.safe_dump(bad))
    (tmp_path / "w.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b" " * 14)
    argvs = {k: [a.format(tmp=tmp_path) for a in argv] for k, (argv, _) in FAST_ERRORS.items()}
    p = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argvs)], capture_output=True,
                       text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    for name, (_, line) in FAST_ERRORS.items():
        rc, err = doc["answers"][name]
        assert rc == 2 and err.count("\n") == 1, (name, rc, err)
        assert line.format(tmp=tmp_path) in err, (name, err)
    assert not doc["torch"], "a typo waited for torch"
    assert not doc["sklearn"], "a typo waited for scikit-learn or scipy"
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # no run or study folder made
        "batchsize.yaml", "models.yaml", "seed.yaml", "study.yaml", "w.safetensors"]
