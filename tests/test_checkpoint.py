"""Pretrained weights (timm-saved files), unsafe pickles, and the validated TrainConfig."""

from __future__ import annotations

import os

import pytest
import timm
import torch
from safetensors.torch import save as st_save
from safetensors.torch import save_file

from depthbench._io import weights_format
from depthbench.cli.main import main
from depthbench.engine.checkpoint import load_pretrained
from depthbench.engine.config import TrainConfig, make_config
from depthbench.engine.optim import build_optimizer
from depthbench.errors import CheckpointError, ConfigError
from depthbench.models import create_model


def test_timm_resnet_safetensors_loads_and_head_is_reinitialized(tmp_path):
    src = timm.create_model("resnet18", num_classes=10)
    path = tmp_path / "resnet18.safetensors"
    save_file(src.state_dict(), str(path))
    model = create_model("resnet18", num_classes=3)
    head = model.fc.weight.detach().clone()
    assert sorted(load_pretrained(model, path)) == ["fc.bias", "fc.weight"]
    assert torch.equal(model.conv1.weight, src.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, src.layer4[1].bn2.running_var)
    assert torch.equal(model.fc.weight, head)  # kept its fresh init for 3 classes


def test_timm_swin_torch_file_loads_with_same_class_count(tmp_path):
    src = timm.create_model("swin_tiny_patch4_window7_224", num_classes=3, img_size=64,
                            window_size=2)
    path = tmp_path / "swin.pth"
    torch.save({"state_dict": src.state_dict()}, path)  # a common wrapper, weights only
    model = create_model("swin_t", num_classes=3, img_size=64, window_size=2)
    assert load_pretrained(model, path) == []
    key = "layers.0.blocks.0.attn.relative_position_bias_table"
    assert torch.equal(model.state_dict()[key], src.state_dict()[key])


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_carrying_code_is_refused_in_one_line(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"fc.weight": Payload()}, evil)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_pretrained(create_model("resnet18", num_classes=3), evil)
    for argv in (["evaluate", str(evil), "--data", "synthetic"],
                 ["predict", str(evil), str(evil)],
                 ["train", "--model", "resnet18", "--data", "synthetic:n=12,size=32,classes=3",
                  "--pretrained", str(evil), "--out", str(tmp_path / "run"), "--img-size", "32",
                  "--cache-dir", str(tmp_path / "cache"), "--quiet"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "evil.pt" in err and "Traceback" not in err


def test_wrong_layout_is_a_clear_error(tmp_path):
    path = tmp_path / "r34.safetensors"
    save_file(timm.create_model("resnet34", num_classes=3).state_dict(), str(path))
    with pytest.raises(CheckpointError, match="layout"):
        load_pretrained(create_model("resnet18", num_classes=3), path)


def test_recipes_fill_only_what_is_not_given():
    seed = TrainConfig.for_recipe("source", model="resnet18", data="x")
    assert (seed.optimizer, seed.lr, seed.batch_size, seed.epochs) == ("adam", 2e-4, 128, 100)
    assert (seed.weight_decay, seed.label_smoothing, seed.grad_clip, seed.drop_path_rate,
            seed.warmup_epochs, seed.scheduler) == (0, 0, 0, 0, 0, "constant")
    opt = build_optimizer(create_model("resnet18", num_classes=3), seed)
    assert type(opt) is torch.optim.Adam and opt.defaults["weight_decay"] == 0
    modern = TrainConfig.for_recipe("modern", model="swin_s", data="x", batch_size=256)
    assert modern.model == "swin_small_patch4_window7_224"
    assert modern.lr == pytest.approx(5e-4 * (256 / 128) ** 0.5) and modern.drop_path_rate == 0.3
    assert TrainConfig.for_recipe("modern", model="resnet18", data="x", batch_size=32).lr == \
        pytest.approx(1e-3 * 0.5)
    assert TrainConfig.for_recipe("modern", model="resnet50", data="x", lr=1e-3).lr == 1e-3
    assert TrainConfig.for_recipe("modern", model="resnet50", data="x").drop_path_rate == 0


@pytest.mark.parametrize("values, match", [
    ({"model": "resnet18", "data": "x", "bacth_size": 8},
     r"bacth_size: unknown key \(did you mean batch_size\?\); valid keys here: model, data"),
    ({"model": "resnet18", "data": "x", "lr": -1}, r"config: lr: .*greater than 0 \(got -1\)"),
    ({"model": "resnet18", "data": "x", "recipe": "fancy"},
     r"recipe: .*'source' or 'modern' \(got 'fancy'\)"),
    ({"model": "resnet19", "data": "x"}, "unknown model 'resnet19'"),
    ({"model": "resnet18", "data": "x", "val": 0.6, "test": 0.5},
     r"config: val: val \+ test = 1.1 leaves no training images"),
    ({"data": "x"}, r"model: missing; this key is required \(--model or"),
])
def test_bad_config_names_key_and_value(values, match):
    with pytest.raises(ConfigError, match=match):
        make_config(values)


def test_cli_flags_override_config_file(tmp_path, capsys):
    from depthbench.cli import cmd_train
    from depthbench.cli.main import build_parser

    f = tmp_path / "c.yaml"
    f.write_text("model: resnet18\ndata: synthetic\nbatch_size: 16\nlr: 1e-3\nout: x\n")
    args = build_parser().parse_args(["train", "--config", str(f), "--batch-size", "8"])
    cfg = cmd_train.config_from_args(args)
    assert (cfg.batch_size, cfg.lr, cfg.model) == (8, 1e-3, "resnet18")
    f.write_text("model: resnet18\nwarmup: 3\n")
    assert main(["train", "--config", str(f)]) == 2
    assert "warmup: unknown key" in capsys.readouterr().err


def test_option_table_generates_the_train_flags_and_help(capsys, monkeypatch):
    """Every TrainConfig field is a `train` flag whose help is its description, with the recipe
    defaults read from the recipe table (a change there shows in --help)."""
    from depthbench.engine import config

    monkeypatch.setitem(config.RECIPES, "source", {**config.RECIPES["source"], "epochs": 7})
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, field in TrainConfig.model_fields.items():
        assert field.description and f"--{name.replace('_', '-')} " in text, name
    assert "epochs (source: 7; modern: 100)" in text
    assert ("base learning rate (source: 0.0002; modern: (ResNet 0.001, SE-ResNet 0.001, "
            "Swin 0.0005) * sqrt(batch / 128))") in text
    assert (f"(timm's --scale); modern recipe only (modern: {config.MODERN_SHORT_CROP_SCALE:g} "
            f"below {config.MODERN_FULL_EPOCHS} epochs, else 0.08)") in text
    assert (f"(timm's --aa); modern recipe only (modern: off below {config.MODERN_FULL_EPOCHS} "
            "epochs, else on)") in text
    assert (f"(timm's --crop-pct); modern recipe only (modern: {config.MODERN_SHORT_EVAL_CROP:g} "
            f"below {config.MODERN_FULL_EPOCHS} epochs, else {config.FULL_EVAL_CROP:g})") in text
    assert "--no-trivial-augment" in text
    assert "--recipe {source,modern}" in text and "--no-channels-last" in text


def test_the_old_recipe_name_is_read_with_a_one_line_notice(capsys, monkeypatch):
    from depthbench import configio
    from depthbench.data.transforms import normalization

    monkeypatch.setattr(configio, "_NOTICED", set())
    old = TrainConfig.for_recipe("seed", model="resnet18", data="x")
    assert old == TrainConfig.for_recipe("source", model="resnet18", data="x")
    assert make_config({"model": "resnet18", "data": "x", "recipe": "seed"}).recipe == "source"
    assert normalization("seed") == normalization("source")  # a checkpoint's old meta
    err = capsys.readouterr().err
    assert err == ("depthbench: recipe 'seed' is now called 'source'; the old name still works "
                   "but will be removed\n")  # once per process


def test_weights_are_told_by_their_first_bytes(tmp_path):
    """`_io.weights_format`: safetensors (its header length may begin with 0x80, pickle's first
    opcode), torch.save's zip and its older pickle, and what is no weights file, named."""
    name = "w"
    while (data := st_save({name: torch.zeros(1)}))[0] != 0x80:  # a header of 128 + 256k bytes
        name += "w"
    files = {"st.safetensors": data, "e": b"", "c.yaml": b"model: resnet18\n",
             "p.png": b"\x89PNG\r\n\x1a\n\x00\x00"}
    for file, content in files.items():
        (tmp_path / file).write_bytes(content)
    torch.save({"w": torch.zeros(1)}, tmp_path / "zip.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    kinds = {p.name: weights_format(p) for p in tmp_path.iterdir()}
    assert kinds == {"st.safetensors": "safetensors", "zip.pt": "torch", "old.pt": "torch",
                     "e": "empty", "c.yaml": "text", "p.png": "other"}
