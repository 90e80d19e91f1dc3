"""A new model variant is one registered function: `tests/toy_model.py` registers a ResNet-10 and
nothing else is written, yet `models` lists it, `train` trains it and a study (its workers are
other processes) trains it and prints its name in the report. Tiny images, one batch."""

from __future__ import annotations

import csv
import importlib
import json
import sys

import pytest
import yaml

from depthbench import names
from depthbench.cli.main import main
from depthbench.models import registry

TINY = {"data": "synthetic:n=24,size=32,classes=3,seed=0", "split": {"val": 0.25, "test": 0.25},
        "img_size": 32, "overrides": {"epochs": 1, "batch_size": 8, "limit_train_batches": 1}}


@pytest.fixture
def toy():
    """ResNet-10 registered by importing its module, for this test only: the tables it joins are
    restored afterwards, so the other tests see depthbench's own models."""
    saved = dict(names.MODELS), dict(names.ALIASES), dict(registry._REGISTRY)
    sys.modules.pop("toy_model", None)
    importlib.import_module("toy_model")
    yield "resnet10"
    for table, old in zip((names.MODELS, names.ALIASES, registry._REGISTRY), saved):
        table.clear()
        table.update(old)
    sys.modules.pop("toy_model", None)


def test_a_registered_function_alone_makes_a_model(toy, tmp_path, capsys):
    assert toy not in names._declared()  # declared in tests/, not in depthbench's model files
    assert names.display_name(toy) == "ResNet-10" and names.family_of(toy) == "resnet"
    assert toy in names.expand_models("resnet") and toy in names.expand_models("all")

    assert main(["models", "--json", "--img-size", "32", "--num-classes", "3"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows[toy]["family"] == "resnet" and rows[toy]["params"] < rows["resnet18"]["params"]

    run = tmp_path / "train"
    assert main(["train", "--model", toy, "--data", TINY["data"], "--img-size", "32",
                 "--epochs", "1", "--batch-size", "8", "--limit-train-batches", "1", "--val",
                 "0.25", "--test", "0.25", "--accelerator", "cpu", "--quiet",
                 "--out", str(run)]) == 0
    result = json.loads((run / "result.json").read_text())
    assert (result["status"], result["model"], result["family"]) == ("finished", toy, "resnet")

    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": "toy", **TINY, "models": [toy]}))
    out = tmp_path / "study"
    assert main(["run", "--config", str(study), "--out", str(out), "--jobs", "1",
                 "--no-analyze"]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["model"], r["status"]) for r in rows] == [(toy, "finished")]
    assert "ResNet-10" in (out / "report.md").read_text()
