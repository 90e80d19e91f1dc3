"""Layers: window attention (fused == explicit, with bias, shift mask and key dropout), key
dropout, SE gate dropout, drop path, the 1x1 convolution as a matrix product."""

import pytest
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import get_relative_position_index
from torch.profiler import profile

from depthbench.layers import (
    DropPath,
    KeyDrop,
    PointwiseConv2d,
    SEModule,
    WindowAttention,
    key_drop_rates,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


def test_window_partition_roundtrip():
    x = torch.randn(2, 8, 8, 5)
    w = window_partition(x, 4)
    assert w.shape == (2 * 4, 16, 5)
    assert torch.equal(w[1].view(4, 4, 5), x[0, :4, 4:8])  # second window: top right
    assert torch.equal(window_reverse(w, 4, 8, 8), x)


@pytest.mark.parametrize("ws", [1, 2, 7])
def test_relative_position_index_matches_timm(ws):
    assert torch.equal(relative_position_index(ws), get_relative_position_index(ws, ws))


def test_shift_mask_blocks_only_non_neighbours():
    m = shifted_window_mask(8, 8, 4, 2)  # nW, N, N
    assert m.shape == (4, 16, 16)
    assert (m[0] == 0).all()  # the top-left window holds one region only
    assert (m[-1] != 0).any() and set(m.unique().tolist()) == {0.0, -100.0}
    assert torch.equal(m, m.transpose(1, 2))


def _attn_pair(p=0.0, mode="element", ws=4, dim=16, heads=2):
    torch.manual_seed(0)
    fused = WindowAttention(dim, heads, ws, key_drop=p, key_drop_mode=mode, fused_attn=True)
    with torch.no_grad():
        fused.relative_position_bias_table.normal_(0, 1.0)  # a bias that matters
    explicit = WindowAttention(dim, heads, ws, key_drop=p, key_drop_mode=mode, fused_attn=False)
    explicit.load_state_dict(fused.state_dict())
    return fused, explicit


def _run(attn, x, mask, seed, train):
    attn.train(train)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    y = attn(x, mask)
    y.square().sum().backward()
    return y.detach(), x.grad, attn.relative_position_bias_table.grad.clone()


@pytest.mark.parametrize("p,mode,train", [(0.0, "element", False), (0.3, "element", True),
                                          (0.3, "dropkey", True), (0.3, "dropkey", False)])
@pytest.mark.parametrize("shifted", [False, True])
def test_fused_equals_explicit(p, mode, train, shifted):
    fused, explicit = _attn_pair(p, mode)
    mask = shifted_window_mask(8, 8, 4, 2) if shifted else None
    x = torch.randn(2 * 4, 16, 16)  # B*nW, N, C with B=2, nW=4
    a, b = _run(fused, x, mask, 1, train), _run(explicit, x, mask, 1, train)
    for ta, tb in zip(a, b):
        torch.testing.assert_close(ta, tb, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["element", "dropkey"])
def test_fused_equals_explicit_without_grad(mode):
    """Without autograd the fused path takes SDPA's 4-D layout (the bias copied per image)."""
    fused, explicit = _attn_pair(0.3, mode)
    mask = shifted_window_mask(8, 8, 4, 2)
    x = torch.randn(2 * 4, 16, 16)
    outs = []
    for attn, train in ((fused, False), (explicit, False), (fused, True), (explicit, True)):
        attn.train(train)
        torch.manual_seed(2)
        with torch.no_grad():
            outs.append(attn(x, mask))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(outs[2], outs[3], atol=1e-5, rtol=1e-4)


def test_fused_path_calls_sdpa_with_dropkey(monkeypatch):
    """DropKey on the fused path goes through SDPA with a float mask: no silent fallback."""
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        calls.append(attn_mask)
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    fused, _ = _attn_pair(0.5, "dropkey")
    fused.train()
    fused(torch.randn(4, 16, 16), shifted_window_mask(8, 8, 4, 2))
    assert len(calls) == 1
    m = calls[0]
    assert m.shape == (1, 4, 2, 16, 16) and m.dtype == torch.float32  # B, nW, heads, N, N
    frac = (m < -1e30).float().mean().item()  # dropped logits carry the large negative
    assert 0.35 < frac < 0.65


def test_key_drop_off_in_eval_and_at_rate_zero():
    x = torch.randn(4, 16, 16)
    plain, _ = _attn_pair(0.0)
    for mode in ("element", "dropkey"):
        dropped, _ = _attn_pair(0.4, mode)
        dropped.load_state_dict(plain.state_dict())
        plain.eval(), dropped.eval()
        assert torch.equal(plain(x), dropped(x))  # eval: exactly the plain attention
        plain.train(), dropped.train()
        torch.manual_seed(3)
        a = plain(x)
        torch.manual_seed(3)
        b = dropped(x)
        assert not torch.allclose(a, b)  # training: active
    zero, _ = _attn_pair(0.0, "dropkey")
    zero.load_state_dict(plain.state_dict())
    zero.train()
    assert torch.equal(plain(x), zero(x))


def test_key_drop_element_scales_survivors():
    kd = KeyDrop(0.25, "element").train()
    k = torch.ones(64, 4, 49, 32)
    out = kd.drop_keys(k)
    assert out.unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert abs((out == 0).float().mean().item() - 0.25) < 0.01
    assert kd.logit_mask((2, 2), torch.float32, k.device) is None  # element mode has no logit mask


def test_dropkey_never_nan_even_when_a_row_is_fully_dropped():
    attn, _ = _attn_pair(0.99, "dropkey")
    attn.train()
    for fused in (True, False):
        attn.fused_attn = fused
        y = attn(torch.randn(4, 16, 16), shifted_window_mask(8, 8, 4, 2))
        assert torch.isfinite(y).all()


def test_dropkey_bfloat16_autocast_finite():
    attn, _ = _attn_pair(0.5, "dropkey")
    attn.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attn(torch.randn(4, 16, 16), shifted_window_mask(8, 8, 4, 2))
    assert torch.isfinite(y.float()).all()


def test_key_drop_rates():
    assert key_drop_rates(0.2, 3, "constant") == [0.2, 0.2, 0.2]
    assert key_drop_rates(0.2, 5, "linear") == pytest.approx([0.2, 0.15, 0.1, 0.05, 0.0])
    with pytest.raises(ValueError, match="key_drop_schedule"):
        key_drop_rates(0.2, 3, "cosine")
    with pytest.raises(ValueError, match="key_drop_mode"):
        KeyDrop(0.1, "row")


def test_se_gate_drop():
    torch.manual_seed(0)
    plain = SEModule(64)
    assert plain.fc1.out_channels == 8  # 64/16 rounded up to timm's minimum of 8
    dropped = SEModule(64, gate_drop=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(16, 64, 3, 3)
    plain.eval(), dropped.eval()
    assert torch.equal(plain(x), dropped(x))
    plain.train(), dropped.train()
    a, b = plain(x), dropped(x)
    ratio = b / a  # per sample and channel: 0 (dropped) or 1/(1-p) = 2 (kept)
    per_channel = ratio[:, :, 0, 0]
    assert torch.allclose(ratio, per_channel[:, :, None, None].expand_as(ratio), atol=1e-5)
    zeros = (per_channel.abs() < 1e-6).float().mean().item()
    assert 0.4 < zeros < 0.6
    kept = per_channel[per_channel.abs() > 1e-6]
    torch.testing.assert_close(kept, torch.full_like(kept, 2.0))
    zero = SEModule(64, gate_drop=0.0)
    zero.load_state_dict(plain.state_dict())
    zero.train()
    assert torch.equal(plain(x), zero(x))


def test_drop_path():
    dp = DropPath(0.5)
    x = torch.ones(200, 3, 2, 2)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 2).all(1)).all()
    assert 0.3 < (per_sample[:, 0] == 0).float().mean().item() < 0.7


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_conv_equals_conv2d(channels_last, bias):
    """Same outputs and gradients as nn.Conv2d(k=1) with the same weights, in both layouts."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(24, 40, 1, bias=bias)
    pw = PointwiseConv2d(24, 40, bias=bias)
    assert list(pw.state_dict()) == list(conv.state_dict())
    pw.load_state_dict(conv.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 24, 7, 5).to(memory_format=fmt)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = conv(xa), pw(xb)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert b.is_contiguous(memory_format=fmt)  # the next layer sees the layout it was given
    g = torch.randn_like(a)
    a.backward(g)
    b.backward(g)
    torch.testing.assert_close(xb.grad, xa.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pw.weight.grad, conv.weight.grad, atol=1e-4, rtol=1e-5)
    assert pw.weight.grad.shape == (40, 24, 1, 1)
    if bias:
        torch.testing.assert_close(pw.bias.grad, conv.bias.grad, atol=1e-4, rtol=1e-5)


def test_pointwise_conv_takes_the_matrix_product_only_on_channels_last():
    pw = PointwiseConv2d(8, 4)
    x = torch.randn(2, 8, 6, 6)
    for fmt, want_conv in ((torch.contiguous_format, True), (torch.channels_last, False)):
        with profile() as prof:
            pw(x.to(memory_format=fmt))
        ops = {e.key for e in prof.key_averages()}
        assert ("aten::convolution" in ops) == want_conv, (fmt, sorted(ops))
