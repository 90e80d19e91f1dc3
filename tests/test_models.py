"""Model zoo: timm/torchvision parity, published costs, forward/backward, every dropout option,
clear errors, and `depthbench models --json`."""

import json

import pytest
import timm
import torch
import torchvision

from depthbench import names
from depthbench.cli.main import main as cli_main
from depthbench.errors import ConfigError
from depthbench.models import create_model, default_window_size, family, list_models, resolve_name
from depthbench.models.complexity import count_macs, count_params
from depthbench.testing.models import randomized

NAMES = list_models()
RESNETS = [n for n in NAMES if "resnet" in n]
SWINS = [n for n in NAMES if n.startswith("swin")]
PUBLISHED = {  # name: (params or None, GMACs) at 224 px and 1000 classes
    "resnet18": (11_689_512, 1.8), "resnet34": (21_797_672, 3.6), "resnet50": (25_557_032, 4.1),
    "swin_tiny_patch4_window7_224": (None, 4.5), "swin_small_patch4_window7_224": (None, 8.7),
    "swin_base_patch4_window7_224": (None, 15.4),
}


def check_parity(name, size, batch=2, num_classes=10, **size_kw):
    ref = timm.create_model(name, pretrained=False, num_classes=num_classes, **size_kw).eval()
    ours = create_model(name, num_classes=num_classes, **size_kw).eval()
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)
    assert {k: v.shape for k, v in our_sd.items()} == {k: v.shape for k, v in ref_sd.items()}
    weights = randomized(ref_sd)
    ref.load_state_dict(weights)
    ours.load_state_dict(weights)  # strict
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.abs().max() > 0.1  # the comparison is not of near-zero outputs
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    if getattr(ours, "channels_last_friendly", False):  # the layout training uses (other kernels)
        with torch.no_grad():
            a = ours.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_parity_with_timm(name):
    check_parity(name, 64)


def test_resnet18_parity_at_224():
    check_parity("resnet18", 224, batch=1)


@pytest.mark.parametrize("img_size,window", [(224, 7), (64, 2), (32, 2), (96, 3)])
def test_swin_tiny_parity_with_timm(img_size, window):
    check_parity("swin_tiny_patch4_window7_224", img_size, img_size=img_size, window_size=window)


@pytest.mark.slow
@pytest.mark.parametrize("name", SWINS[1:])
def test_swin_small_base_parity_with_timm(name):
    check_parity(name, 64, img_size=64, window_size=2)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnet_weights_load(name):
    tv = getattr(torchvision.models, name)(num_classes=7).eval()
    weights = randomized(tv.state_dict())
    tv.load_state_dict(weights)
    ours = create_model(name, num_classes=7).eval()
    ours.load_state_dict(weights)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-4, rtol=1e-4)


def test_recomputable_buffers_not_saved():
    m = create_model("swin_t", img_size=64, window_size=2)
    keys = m.state_dict().keys()
    assert not any("relative_position_index" in k or "attn_mask" in k for k in keys)
    assert any("relative_position_bias_table" in k for k in keys)


@pytest.mark.parametrize("name", NAMES)
def test_published_costs_at_224(name):
    with torch.device("meta"):  # shapes only: fast, and costs depend on shapes alone
        m = create_model(name)
    params, macs = count_params(m), count_macs(m, 224)
    if name in PUBLISHED:
        want_params, gmacs = PUBLISHED[name]
        if want_params:
            assert params == want_params
        assert abs(macs / 1e9 - gmacs) < 0.07, macs  # published figures are rounded/truncated
    if name.startswith("se"):  # SE adds a little: < 10% params, < 0.5% MACs
        with torch.device("meta"):
            base = create_model(name[2:])
        assert 0 < params - count_params(base) < 0.1 * params
        assert 0 < macs - count_macs(base, 224) < 0.005 * macs


def test_seresnet50_is_the_bottleneck_network():
    m = create_model("seresnet50")
    assert hasattr(m.layer1[0], "conv3") and m.layer1[0].se.fc1.in_channels == 256
    assert count_params(m) == 28_088_024  # the SE-ResNet-50 of Hu et al., 28.1M


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_small(name):
    kw = {"img_size": 32} if name.startswith("swin") else {}
    m = create_model(name, num_classes=3, drop_path_rate=0.1, **kw).train()
    x = torch.randn(2, 3, 32, 32)
    out = m(x)
    assert out.shape == (2, 3)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["resnet18", "seresnet50"])
def test_channels_last(name):
    m = create_model(name, num_classes=4).eval()
    assert m.channels_last_friendly
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        m = m.to(memory_format=torch.channels_last)
        out = m(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_model_fused_equals_explicit_with_key_drop():
    for mode in ("element", "dropkey"):
        m = create_model("swin_t", num_classes=3, img_size=64, window_size=2, key_drop=0.2,
                         key_drop_mode=mode, key_drop_schedule="linear").train()
        x = torch.randn(2, 3, 64, 64)
        outs = []
        for fused in (True, False):
            m.set_fused_attn(fused)
            torch.manual_seed(5)
            outs.append(m(x))
        torch.testing.assert_close(outs[0], outs[1], atol=1e-4, rtol=1e-4)


def _pair(name, seed=0, **opts):
    torch.manual_seed(seed)
    plain = create_model(name, num_classes=3, img_size=32, drop_path_rate=0.0)
    other = create_model(name, num_classes=3, img_size=32, drop_path_rate=0.0, **opts)
    plain.load_state_dict(randomized(plain.state_dict()))  # no zero-initialised branches
    other.load_state_dict(plain.state_dict())
    return plain, other


def _out(m, x, train, seed=7):
    m.train(train)
    torch.manual_seed(seed)
    with torch.no_grad():
        return m(x)


DROP_OPTIONS = [
    ("swin_t", "key_drop", {"key_drop_mode": "element"}),
    ("swin_t", "key_drop", {"key_drop_mode": "dropkey"}),
    ("swin_t", "key_drop", {"key_drop_mode": "dropkey", "key_drop_schedule": "linear"}),
    ("seresnet18", "se_drop", {}),
]


@pytest.mark.parametrize("name,opt,extra", DROP_OPTIONS)
def test_dropout_options(name, opt, extra):
    x = torch.randn(4, 3, 32, 32)
    plain, dropped = _pair(name, **{opt: 0.3}, **extra)
    _, zero = _pair(name, **{opt: 0.0}, **extra)
    zero.load_state_dict(plain.state_dict())
    # off by default
    rates = [getattr(m, "p", getattr(m, "gate_drop", None)) for m in plain.modules()
             if type(m).__name__ in ("KeyDrop", "SEModule")]
    assert rates and all(r == 0 for r in rates)
    # exact in eval (first: a training pass updates BN statistics), active in training,
    # rate 0 identical to off
    assert torch.equal(_out(plain, x, False), _out(dropped, x, False))
    assert not torch.allclose(_out(plain, x, True), _out(dropped, x, True))
    assert torch.equal(_out(plain, x, True), _out(zero, x, True))


def test_key_drop_schedule_linear_falls_over_blocks():
    m = create_model("swin_t", img_size=32, key_drop=0.4, key_drop_schedule="linear")
    rates = [mod.p for mod in m.modules() if type(mod).__name__ == "KeyDrop"]
    assert len(rates) == 12 and rates[0] == pytest.approx(0.4) and rates[-1] == 0.0
    assert all(a > b for a, b in zip(rates, rates[1:]))
    const = create_model("swin_t", img_size=32, key_drop=0.4)
    assert {mod.p for mod in const.modules() if type(mod).__name__ == "KeyDrop"} == {0.4}


def test_drop_path_linear_like_timm():
    m = create_model("resnet18", drop_path_rate=0.3)
    rates = [b.drop_path.p if b.drop_path is not None else 0.0
             for s in (m.layer1, m.layer2, m.layer3, m.layer4) for b in s]
    assert rates == pytest.approx([0.3 * i / 7 for i in range(8)])


def test_names_aliases_families():
    assert NAMES == list(names.MODELS)  # every declared model is registered, in the table's order
    assert resolve_name("swin_b") == "swin_base_patch4_window7_224"
    assert [family(n) for n in ("resnet50", "seresnet34", "swin_s")] == ["resnet", "seresnet", "swin"]
    assert create_model("swin_t", img_size=32).model_name == "swin_tiny_patch4_window7_224"


@pytest.mark.parametrize("call,pattern", [
    (lambda: create_model("resnet19"), r"unknown model 'resnet19' \(did you mean resnet18\?\)"),
    (lambda: create_model("resnet18", key_drop=0.1), r"key_drop=0.1 does not apply to resnet18"),
    (lambda: create_model("resnet18", se_drop=0.1), r"se_drop=0.1 does not apply to resnet18"),
    (lambda: create_model("swin_t", se_drop=0.1), r"se_drop=0.1 does not apply"),
    (lambda: create_model("swin_t", dropout=0.1), r"unknown model option 'dropout'"),
    (lambda: create_model("swin_t", key_drop=1.0), r"key_drop .* \[0, 1\)"),
    (lambda: create_model("swin_t", key_drop=0.1, key_drop_mode="rows"), r"key_drop_mode .* 'rows'"),
    (lambda: create_model("swin_t", img_size=64, window_size=7),
     r"window_size 7 does not tile stage 1's 16x16 .* img_size 64.*224.*window_size 2"),
    (lambda: create_model("swin_t", img_size=100), r"img_size 100.*96, 128"),
    (lambda: create_model("swin_t", img_size=352), r"img_size 352.*320, 384"),
])
def test_clear_errors(call, pattern):
    with pytest.raises(ConfigError, match=pattern):
        call()


def test_swin_rejects_other_input_sizes():
    m = create_model("swin_t", img_size=32)
    with pytest.raises(ValueError, match="built for 32x32 inputs, got \\(64, 64\\)"):
        m(torch.randn(1, 3, 64, 64))


def test_off_values_of_other_families_are_accepted():
    m = create_model("resnet18", key_drop=0.0, se_drop=0.0, fused_attn=True, img_size=64)
    assert m.img_size == 64


def test_default_window_size():
    got = {s: default_window_size(s) for s in (32, 64, 96, 128, 192, 224, 256, 448)}
    assert got == {32: 2, 64: 2, 96: 3, 128: 4, 192: 6, 224: 7, 256: 4, 448: 7}


def test_cli_models_json(capsys):
    assert cli_main(["models", "--json", "--img-size", "64", "--num-classes", "5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in doc["models"]}
    assert list(rows) == NAMES
    for r in rows.values():
        assert {"name", "family", "params", "macs", "img_size"} <= set(r) and r["img_size"] == 64
    assert rows["swin_tiny_patch4_window7_224"]["window_size"] == 2
    assert rows["resnet18"]["params"] == 11_689_512 - 995 * 513  # 5-class head
    assert rows["resnet50"]["macs"] < rows["seresnet50"]["macs"] < rows["swin_base_patch4_window7_224"]["macs"]


def test_cli_models_table_and_error(capsys):
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "11,689,512" in out and "15.43" in out
    assert cli_main(["models", "--img-size", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "img_size 100" in err and "96, 128" in err
