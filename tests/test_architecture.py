"""The layer contract (import-linter, `.importlinter`), the `--help` boundary, and facts that have
one home: each test fails when a second, different copy of the fact comes back. Fast, no training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from depthbench import configio, names
from depthbench.cli.main import build_parser
from depthbench.engine.config import RECIPES, TrainConfig, make_config
from depthbench.errors import ConfigError
from depthbench.study import load_spec
from depthbench.study import spec as spec_module
from depthbench.study.schema import SplitSpec

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


def test_modern_drop_path_table_names_every_model():
    rate = RECIPES["modern"]["drop_path_rate"]
    swin = [m for m, (fam, _) in names.MODELS.items() if fam == "swin"]
    rates = [rate({"model": m}) for m in swin]
    assert all(r > 0 for r in rates) and rates == sorted(rates)  # deeper Swin, more drop path
    assert {rate({"model": m}) for m in names.MODELS if m not in swin} == {0.0}
    with pytest.raises(KeyError):  # a Swin the table does not name gets no silent fallback
        rate({"model": "swin_large_patch4_window7_224"})


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
