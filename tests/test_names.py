"""The one table of model names: aliases, families, display names and order, shared by the model
registry and the report."""

import pytest

from depthbench import names
from depthbench.errors import ConfigError


def test_aliases_families_display_and_order():
    assert names.canonical("swin_t") == "swin_tiny_patch4_window7_224"
    assert names.canonical(" Swin_S ") == "swin_small_patch4_window7_224"
    assert names.canonical("resnet18") == "resnet18" and names.canonical("mystery") == "mystery"
    assert [names.family_of(m) for m in ("resnet50", "seresnet18", "swin_b")] == [
        "resnet", "seresnet", "swin"]
    assert names.family_of("seresnet101") == "seresnet"  # unknown depth: by prefix
    assert names.display_name("seresnet18") == "SE-ResNet-18"
    assert names.display_name("swin_t") == "Swin-T" and names.display_name("x") == "x"
    assert sorted(["swin_b", "seresnet18", "resnet50", "zzz"], key=names.model_order) == [
        "resnet50", "seresnet18", "swin_b", "zzz"]
    assert len(names.MODELS) == 9 and list(names.FAMILIES) == ["resnet", "seresnet", "swin"]
    assert names.SE_PAIRS == {"seresnet18": "resnet18", "seresnet34": "resnet34",
                              "seresnet50": "resnet50"}
    assert all(names.family_of(r) == "resnet" for r in names.SE_PAIRS.values())


def test_registry_registers_every_model_of_the_table_under_its_family():
    from depthbench.models import create_model, family, list_models, resolve_name

    assert list_models() == list(names.MODELS)
    # `family` is what each model's @register_model said, checked against the table
    assert {m: family(m) for m in list_models()} == {m: f for m, (f, _) in names.MODELS.items()}
    for alias, name in names.ALIASES.items():  # aliases and their spellings reach the same model
        assert resolve_name(alias) == resolve_name(f" {alias.upper()} ") == name
    with pytest.raises(ConfigError, match=r"did you mean swin_t\?"):
        create_model("swin_tt")


def test_model_options_are_refused_by_the_families_the_table_leaves_out():
    from depthbench.models.complexity import meta_model

    first = {f: next(m for m, (fam, _) in names.MODELS.items() if fam == f) for f in names.FAMILIES}
    for option, (families, off) in names.MODEL_OPTIONS.items():
        for fam in set(names.FAMILIES) - set(families):  # e.g. key_drop on a ResNet
            with pytest.raises(ConfigError, match=f"{option}=.* does not apply"):
                meta_model(first[fam], **{option: "element" if off == "dropkey" else 0.1})
            meta_model(first[fam], **{option: off})  # its "off" value passes anywhere


def test_one_key_dropout_default_for_train_and_study():
    """`train --key-drop 0.1` and a study's key_drop variant drop keys the same way."""
    from depthbench.engine.config import TrainConfig
    from depthbench.layers import KeyDrop
    from depthbench.models.complexity import meta_model
    from depthbench.study.schema import VariantSpec

    cfg = TrainConfig.for_recipe("source", model="swin_t", data="x", key_drop=0.1)
    assert cfg.key_drop_mode == VariantSpec().key_drop_mode == names.DEFAULT_KEY_DROP_MODE
    model = meta_model("swin_t", key_drop=0.1)  # the model's own default is the same
    modes = {m.mode for m in model.modules() if isinstance(m, KeyDrop)}
    assert modes == {names.DEFAULT_KEY_DROP_MODE}
    # without key dropout nothing is filled in (a ResNet has no key_drop_mode)
    assert TrainConfig.for_recipe("source", model="resnet18", data="x").key_drop_mode is None
