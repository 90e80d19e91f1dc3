"""The recipe's optimizer and learning-rate schedule (engine.optim)."""

from __future__ import annotations

import pytest
import torch

from depthbench.configio import FULL_AUGMENTATION, FULL_EVAL_CROP
from depthbench.engine.config import (
    MODERN_FULL_EPOCHS,
    MODERN_SHORT_CROP_SCALE,
    MODERN_SHORT_EVAL_CROP,
    TrainConfig,
    augmentation,
    make_config,
    saved_config,
    undertrain_warning,
)
from depthbench.engine.optim import build_optimizer, lr_factor, make_optimizer, use_fused
from depthbench.errors import ConfigError
from depthbench.models import create_model


def test_modern_weight_decay_skips_norms_biases_and_position_tables():
    cfg = TrainConfig.for_recipe("modern", model="swin_t", data="x", img_size=64)
    model = create_model("swin_t", num_classes=3, img_size=64)
    opt = build_optimizer(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    assert "layers.0.blocks.0.attn.relative_position_bias_table" in no_decay
    assert "layers.0.blocks.0.norm1.weight" in no_decay and "head.fc.bias" in no_decay
    assert "layers.0.blocks.0.attn.qkv.weight" in decay and len(decay) + len(no_decay) == len(names)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_optimizer_runs_fused_and_matches_the_default_update(optimizer):
    """The engine builds PyTorch's fused optimizer on the CPU (`use_fused`); its update is the one
    the unfused multi-tensor (foreach) path makes, to float rounding."""
    cfg = TrainConfig.for_recipe("modern", model="resnet18", data="x", optimizer=optimizer, lr=0.05)
    torch.manual_seed(0)
    a = create_model("resnet18", num_classes=3)
    b = create_model("resnet18", num_classes=3)
    b.load_state_dict(a.state_dict())
    fused = build_optimizer(a, cfg)
    assert fused.defaults["fused"] is True
    plain = build_optimizer(b, cfg)
    for group in plain.param_groups:
        group["fused"], group["foreach"] = False, True
    plain.defaults["fused"] = False
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    for _ in range(3):  # both take the same gradients (from `a`): the updates alone are compared
        fused.zero_grad()
        torch.nn.functional.cross_entropy(a(x), y).backward()
        for pa, pb in zip(a.parameters(), b.parameters()):
            pb.grad = pa.grad.clone()
        fused.step()
        plain.step()
    moved = (a.fc.weight - create_model("resnet18", num_classes=3).fc.weight).abs().max()
    assert moved > 0  # the models did train
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5, msg=name)


def test_make_optimizer_takes_a_fused_override_and_keeps_the_no_decay_group():
    # the benchmarks time fused=False against the engine's default through this builder
    model = create_model("resnet18", num_classes=3)
    assert make_optimizer(model, "adam", 1e-3, fused=False).defaults["fused"] is False
    opt = make_optimizer(model, "adamw", 1e-3, weight_decay=0.05)
    assert opt.defaults["fused"] is True
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]


def test_use_fused_needs_float_parameters_on_a_fused_device():
    assert use_fused([torch.zeros(2)])
    assert not use_fused([torch.zeros(2, device="meta")])
    assert not use_fused([torch.zeros(2, dtype=torch.int64)])
    assert not use_fused([])


def test_warmup_then_cosine():
    cfg = TrainConfig.for_recipe("modern", model="resnet18", data="x", epochs=10, warmup_epochs=2,
                                 lr=1e-3, min_lr=0)
    f = [lr_factor(s, 5, cfg) for s in range(50)]
    assert f[0] < f[5] < f[9] <= 1 and f[10] == pytest.approx(1)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.01


@pytest.mark.parametrize("batch, lr", [(32, 5e-4), (64, 1e-3 / 2**0.5), (128, 1e-3),
                                       (256, 1e-3 * 2**0.5)])
def test_modern_lr_grows_with_the_square_root_of_the_batch(batch, lr):
    cfg = TrainConfig.for_recipe("modern", model="resnet18", data="x", batch_size=batch)
    assert cfg.lr == pytest.approx(lr)


def test_modern_lr_base_is_the_model_s_or_its_family_s():
    from depthbench.engine.config import MODERN_LR

    for model, family in (("seresnet18", "seresnet"), ("swin_t", "swin")):
        cfg = TrainConfig.for_recipe("modern", model=model, data="x", batch_size=128)
        assert cfg.lr == MODERN_LR[family]


@pytest.mark.parametrize("epochs, warmup", [(8, 0.8), (100, 5.0)])
def test_modern_warmup_is_a_share_of_the_run(epochs, warmup):
    cfg = TrainConfig.for_recipe("modern", model="resnet18", data="x", epochs=epochs)
    assert cfg.warmup_epochs == pytest.approx(warmup)


def test_explicit_lr_and_warmup_win_over_the_rules():
    cfg = TrainConfig.for_recipe("modern", model="resnet18", data="x", lr=0.01, warmup_epochs=0)
    assert (cfg.lr, cfg.warmup_epochs) == (0.01, 0)


@pytest.mark.parametrize("epochs", [1, 5, MODERN_FULL_EPOCHS - 1, MODERN_FULL_EPOCHS, 100])
def test_modern_augmentation_grows_with_the_run(epochs):
    cfg = TrainConfig.for_recipe("modern", model="resnet18", data="x", epochs=epochs)
    full = epochs >= MODERN_FULL_EPOCHS  # the presets' 100 epochs keep the published strength
    assert augmentation(cfg) == (FULL_AUGMENTATION if full else
                                 {"crop_scale": MODERN_SHORT_CROP_SCALE, "trivial_augment": False})
    assert cfg.eval_crop == (FULL_EVAL_CROP if full else MODERN_SHORT_EVAL_CROP)


def test_explicit_augmentation_wins_and_source_refuses_it_by_name():
    cfg = TrainConfig.for_recipe("modern", model="resnet18", data="x", epochs=5, crop_scale=0.08,
                                 trivial_augment=True)
    assert augmentation(cfg) == FULL_AUGMENTATION
    assert augmentation(TrainConfig.for_recipe("source", model="resnet18", data="x")) == {}
    for key, value in (("crop_scale", 0.5), ("trivial_augment", False), ("eval_crop", 1.0)):
        with pytest.raises(ConfigError, match=f"{key}: {key} applies to the modern recipe only: "
                                              "the source recipe has no augmentation"):
            make_config({"model": "resnet18", "data": "x", key: value})


def test_a_saved_modern_config_without_the_augmentation_keys_ran_at_full_strength():
    old = {"model": "resnet18", "data": "x", "recipe": "modern", "epochs": 5}
    ran = TrainConfig(**saved_config(old)).resolved()
    assert (augmentation(ran), ran.eval_crop) == (FULL_AUGMENTATION, FULL_EVAL_CROP)
    mild = {**old, "crop_scale": 0.5, "trivial_augment": False}
    assert saved_config(mild) == {**mild, "eval_crop": FULL_EVAL_CROP}  # before eval_crop existed
    assert saved_config({**mild, "eval_crop": 1.0}) == {**mild, "eval_crop": 1.0}
    assert saved_config({**old, "recipe": "source"}) == {**old, "recipe": "source"}


def test_undertrain_warning_names_a_long_warmup_and_a_tiny_lr():
    modern = {"model": "resnet18", "data": "x", "epochs": 8, "batch_size": 64}
    warmup = undertrain_warning(TrainConfig.for_recipe("modern", **modern, warmup_epochs=5))
    assert "warmup_epochs 5 of 8 epochs" in warmup and "lr " not in warmup
    tiny = undertrain_warning(TrainConfig.for_recipe("modern", **modern, lr=1e-6))
    assert tiny.startswith("lr 1e-06 is far below the modern recipe's 0.00071 at batch 64")
    assert undertrain_warning(TrainConfig.for_recipe("source", **modern, lr=1e-6))


@pytest.mark.parametrize("recipe", ["modern", "source"])
@pytest.mark.parametrize("batch", [1, 8, 32, 64, 128, 256, 1024])
@pytest.mark.parametrize("epochs", [1, 3, 8, 100])
def test_no_undertrain_warning_for_a_recipe_s_defaults(recipe, batch, epochs):
    cfg = TrainConfig.for_recipe(recipe, model="resnet18", data="x", batch_size=batch,
                                 epochs=epochs)
    assert undertrain_warning(cfg) is None
