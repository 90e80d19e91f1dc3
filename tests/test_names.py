"""The one table of model names: aliases, families, display names and order, shared by the model
registry and the report."""

from depthbench import names


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


def test_registry_derives_from_the_table():
    from depthbench.models import ALIASES, FAMILIES, family, list_models, resolve_name

    assert list_models() == list(names.MODELS)
    assert ALIASES == names.ALIASES and FAMILIES == tuple(names.FAMILIES)
    assert all(family(m) == names.family_of(m) for m in list_models())
    assert resolve_name("swin_b") == names.canonical("swin_b")
