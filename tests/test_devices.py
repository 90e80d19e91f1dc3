"""The one device/precision factory (`engine.devices`): refusal, `auto` resolution, and what
bf16-mixed keeps in fp32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from depthbench.cli.main import main
from depthbench.engine import devices
from depthbench.errors import ConfigError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_gpu_refused_when_none_is_visible(no_gpu):
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        devices.make_fabric("gpu")
    assert devices.device_type("auto") == devices.device_type("cpu") == "cpu"


@pytest.mark.parametrize("argv", [
    ["evaluate", "{w}", "--data", "synthetic", "--accelerator", "gpu"],
    ["predict", "{w}", "missing.png", "--accelerator", "gpu"],
    ["train", "--model", "resnet18", "--data", "synthetic", "--out", "unused",
     "--accelerator", "gpu"],
])
def test_every_command_refuses_gpu_with_the_same_line(no_gpu, argv, capsys, tmp_path):
    weights = tmp_path / "w.safetensors"  # a checkpoint by its first bytes: the torch-free checks
    weights.write_bytes(b"\x10" + b"\x00" * 7 + b"{}" + b" " * 14)  # pass, the device is next
    assert main([a.format(w=weights) for a in argv]) == 2
    assert capsys.readouterr().err == f"depthbench: error: {devices.NO_GPU}\n"


@pytest.mark.parametrize("support, expected", [("amx", "bf16-mixed"),
                                               ("avx512_bf16", "bf16-mixed"),
                                               (None, "32-true")])
def test_auto_precision_follows_native_cpu_bf16(monkeypatch, support, expected):
    monkeypatch.setattr(devices, "cpu_bf16_support", lambda: support)
    assert devices.resolve_precision("auto", "cpu") == expected
    assert devices.resolve_precision("32", "cpu") == "32-true"
    assert devices.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


def test_bf16_mixed_keeps_batchnorm_loss_and_optimizer_in_fp32(no_gpu):
    fabric = devices.make_fabric("cpu", "bf16-mixed")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 3))
    model, opt = fabric.setup(net, torch.optim.Adam(net.parameters(), lr=1e-3))
    x, y = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    logits = model(x)
    loss = nn.CrossEntropyLoss()(logits, y)
    fabric.backward(loss)
    opt.step()
    assert logits.dtype == torch.float32  # Fabric casts the module's output back
    assert loss.dtype == torch.float32
    bn = net[1]
    assert bn.running_mean.dtype == bn.running_var.dtype == torch.float32
    assert bn.num_batches_tracked.item() == 1
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert all(p.grad.dtype == torch.float32 for p in net.parameters())
    state = [v for s in opt.optimizer.state.values() for v in s.values() if v.dim()]
    assert state and all(v.dtype == torch.float32 for v in state)
    with fabric.autocast():  # inside, the convolution itself runs in bf16
        assert net[0](x).dtype == torch.bfloat16
