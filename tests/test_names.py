"""The one table of model names: read from the registered functions' declarations, shared by the
model registry, the option tables and the report."""

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
    assert list(names.FAMILIES) == ["resnet", "seresnet", "swin"]
    # the canonical order: the families' order, each family by depth (its file's order)
    assert list(names.MODELS) == [m for f in names.FAMILIES for m in names.family_models(f)]
    assert names.family_models("resnet") == ["resnet18", "resnet34", "resnet50"]
    assert names.se_pairs()["seresnet50"] == "resnet50"
    assert names.se_pairs() == {m: m.removeprefix("se") for m in names.family_models("seresnet")}


def test_registry_registers_every_model_of_the_table_under_its_family():
    from depthbench.models import create_model, family, list_models, resolve_name

    assert list_models() == list(names.MODELS)
    # what each @register_model declares, read from the source and given to the decorator alike
    assert dict(names._declared()) == names.MODELS
    assert {m: family(m) for m in list_models()} == {m: i.family for m, i in names.MODELS.items()}
    for alias, name in names.ALIASES.items():  # aliases and their spellings reach the same model
        assert resolve_name(alias) == resolve_name(f" {alias.upper()} ") == name
    with pytest.raises(ConfigError, match=r"did you mean swin_t\?"):
        create_model("swin_tt")


def test_a_declaration_must_be_literal_and_a_name_taken_once(tmp_path, monkeypatch):
    (tmp_path / "zoo.py").write_text(
        'DISPLAY = "ResNet-10"\n\n\n@register_model("resnet", DISPLAY)\ndef resnet10(**kw):\n'
        '    pass\n')
    with pytest.raises(ValueError, match="zoo.py: @register_model of resnet10: give literal"):
        names._declared(tmp_path)
    (tmp_path / "zoo.py").write_text(
        '@register_model(\n    "resnet", "ResNet-10",\n    aliases=("r10",))\ndef resnet10(**kw):\n'
        '    pass\n')
    assert names._declared(tmp_path) == [("resnet10", names.ModelInfo("resnet", "ResNet-10",
                                                                        ("r10",)))]
    monkeypatch.setattr(names, "MODELS", dict(names.MODELS))
    monkeypatch.setattr(names, "ALIASES", dict(names.ALIASES))
    with pytest.raises(ValueError, match="declared twice"):
        names.add_model("resnet18", names.ModelInfo("resnet", "ResNet 18"))
    with pytest.raises(ValueError, match="'swin_t' belongs to another model"):
        names.add_model("swin_tiny2", names.ModelInfo("swin", "Swin-T2", ("swin_t",)))
    with pytest.raises(ValueError, match="unknown family 'vit'"):
        names.add_model("vit_s", names.ModelInfo("vit", "ViT-S"))
    names.add_model("resnet10", names.ModelInfo("resnet", "ResNet-10", ("r10",)))
    assert list(names.MODELS).index("resnet10") < list(names.MODELS).index("seresnet18")
    assert names.canonical("R10") == "resnet10" and names.display_name("r10") == "ResNet-10"


def test_a_study_names_all_models_or_families():
    assert names.expand_models("all") == list(names.MODELS)
    assert names.expand_models(["swin", "resnet18"]) == names.family_models("swin") + ["resnet18"]
    assert names.expand_models([" SERESNET ", "swin_t"]) == (
        names.family_models("seresnet") + ["swin_tiny_patch4_window7_224"])
    with pytest.raises(ConfigError, match=r"unknown model or family 'resnt' \(did you mean "
                                          r"resnet\?\); give all, a family \(resnet, seresnet"):
        names.expand_models(["resnt"])


def test_model_options_are_refused_by_the_families_the_table_leaves_out():
    from depthbench.models.complexity import meta_model

    first = {f: names.family_models(f)[0] for f in names.FAMILIES}
    for option, (families, off) in names.MODEL_OPTIONS.items():
        for fam in set(names.FAMILIES) - set(families):  # e.g. key_drop on a ResNet
            with pytest.raises(ConfigError, match=f"{option}=.* does not apply"):
                meta_model(first[fam], **{option: "element" if off == "dropkey" else 0.1})
            meta_model(first[fam], **{option: off})  # its "off" value passes anywhere


def test_one_key_dropout_default_for_train_and_study():
    """`train --key-drop 0.1` and a study's key_drop variant drop keys the same way, and record
    the same mode and schedule."""
    from depthbench.engine.config import TrainConfig
    from depthbench.layers import KeyDrop
    from depthbench.models.complexity import meta_model
    from depthbench.study.grid import plan_runs
    from depthbench.study.spec import validate_spec

    cfg = TrainConfig.for_recipe("source", model="swin_t", data="x", key_drop=0.1)
    spec = validate_spec({"name": "t", "data": "x", "models": ["swin_t"],
                          "variants": {"key_drop": [0.1]}})
    study = next(p for p in plan_runs(spec) if p.variant != "base").train_config()
    assert (cfg.key_drop_mode, cfg.key_drop_schedule) == (
        study.key_drop_mode, study.key_drop_schedule) == (
        names.DEFAULT_KEY_DROP_MODE, names.DEFAULT_KEY_DROP_SCHEDULE)
    model = meta_model("swin_t", key_drop=0.1)  # the model's own default is the same
    modes = {m.mode for m in model.modules() if isinstance(m, KeyDrop)}
    assert modes == {names.DEFAULT_KEY_DROP_MODE}
    # without key dropout nothing is filled in (a ResNet has no key_drop_mode)
    resnet = TrainConfig.for_recipe("source", model="resnet18", data="x")
    assert resnet.key_drop_mode is None and resnet.key_drop_schedule is None
