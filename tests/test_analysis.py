"""`depthbench analyze` and the report's "Inside the networks" section: the estimators against
closed forms, the hooks against the real forward pass, Grad-CAM against a known signal region, the
CLI on a trained run, the section in headless Chromium."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from depthbench.analysis.attention import head_statistics, mean_pairwise_distance
from depthbench.analysis.cka import (
    cka_from_grams,
    gram,
    hsic_unbiased,
    linear_cka,
    minibatch_cka,
    redundant_tail,
)
from depthbench.analysis.gradcam import grad_cam, target_block
from depthbench.analysis.probe import Probe, TrainingModeError
from depthbench.analysis.run import _se_record, analyze_path
from depthbench.analysisrecord import read_analysis, summarize, write_analysis
from depthbench.cli.main import main
from depthbench.engine.checkpoint import save_weights
from depthbench.engine.config import TrainConfig
from depthbench.engine.trainer import train
from depthbench.layers import SEModule, shifted_window_mask
from depthbench.models import create_model, family

DATA = "synthetic:n=48,size=32,classes=3,seed=0"


# ------------------------------------------------------------------------------------ CKA

def _features(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 6, generator=g, dtype=torch.float64)
    x = z @ torch.randn(6, 40, generator=g, dtype=torch.float64) \
        + 0.5 * torch.randn(n, 40, generator=g, dtype=torch.float64)
    y = torch.tanh(z[:, :4]) @ torch.randn(4, 30, generator=g, dtype=torch.float64) \
        + 0.8 * torch.randn(n, 30, generator=g, dtype=torch.float64)
    return x, y


def test_cka_of_a_representation_with_itself_is_one():
    x, _ = _features(64)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    grams = [gram(x[i:i + 16])[None] for i in range(0, 64, 16)]
    assert minibatch_cka(grams).item() == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x, y = _features(128)
    q, _ = torch.linalg.qr(torch.randn(40, 40, dtype=torch.float64,
                                       generator=torch.Generator().manual_seed(1)))
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, abs=1e-10)
    grams = lambda a: [gram(a[i:i + 32])[None] for i in range(0, 128, 32)]  # noqa: E731
    mb = minibatch_cka(grams(x), grams(y)).item()
    assert minibatch_cka(grams(2.5 * x @ q), grams(y)).item() == pytest.approx(mb, abs=1e-10)


def test_cka_matches_the_closed_form():
    # one feature each: linear CKA is the squared Pearson correlation
    g = torch.Generator().manual_seed(2)
    a = torch.randn(20, 1, dtype=torch.float64, generator=g)
    b = a + torch.randn(20, 1, dtype=torch.float64, generator=g)
    r = torch.corrcoef(torch.cat([a, b], 1).T)[0, 1].item()
    assert linear_cka(a, b) == pytest.approx(r * r, abs=1e-12)
    # the Gram-matrix form equals the feature form on a small random case
    x = torch.randn(7, 5, dtype=torch.float64, generator=g)
    y = torch.randn(7, 3, dtype=torch.float64, generator=g)
    assert cka_from_grams(gram(x)[None], gram(y)[None]).item() == pytest.approx(linear_cka(x, y),
                                                                                 abs=1e-12)
    # unbiased HSIC: Song et al.'s formula (eq. 5) written with explicit matrix products
    k, m = gram(x), gram(y)
    k.fill_diagonal_(0)
    m.fill_diagonal_(0)
    n = 7
    one = torch.ones(n, dtype=torch.float64)
    ref = ((k * m).sum() + (one @ k @ one) * (one @ m @ one) / ((n - 1) * (n - 2))
           - 2 / (n - 2) * (one @ k @ m @ one)) / (n * (n - 3))
    got = hsic_unbiased(gram(x)[None], gram(y)[None]).item()
    assert got == pytest.approx(ref.item(), rel=1e-10)


def test_minibatch_cka_agrees_with_the_full_estimate():
    x, y = _features(512)
    full = minibatch_cka([gram(x)[None]], [gram(y)[None]]).item()  # one batch of all 512
    mb = minibatch_cka([gram(x[i:i + 128])[None] for i in range(0, 512, 128)],
                       [gram(y[i:i + 128])[None] for i in range(0, 512, 128)]).item()
    assert 0.2 < full < 0.95
    assert abs(mb - full) < 0.02


def test_redundant_tail_counts_late_blocks_near_the_last():
    m = [[1, .2, .1, .1], [.2, 1, .5, .5], [.1, .5, 1, .95], [.1, .5, .95, 1]]
    assert redundant_tail(m) == 1
    m[1][3] = 0.92
    assert redundant_tail(m) == 2
    m[2][3] = 0.5
    assert redundant_tail(m) == 0


# ------------------------------------------------------------------------------ attention

def test_self_only_attention_has_distance_and_entropy_zero():
    ws, heads = 3, 2
    attn = torch.eye(ws * ws).expand(4, heads, ws * ws, ws * ws)
    d, e, q = head_statistics(attn, ws, pitch=8.0)
    assert q == 4 * ws * ws
    zero = torch.zeros(heads, dtype=d.dtype)
    assert torch.allclose(d / q, zero) and torch.allclose(e / q, zero)


def test_uniform_attention_gives_the_windows_mean_pairwise_distance():
    # 2x2 window, pitch 1: 4 self pairs (0), 8 side pairs (1), 4 diagonal pairs (sqrt 2)
    assert mean_pairwise_distance(2) == pytest.approx((8 + 4 * math.sqrt(2)) / 16)
    ws, n = 4, 16
    d, e, q = head_statistics(torch.full((2, 3, n, n), 1 / n), ws, pitch=4.0)
    assert torch.allclose(d / q, torch.full((3,), mean_pairwise_distance(ws, 4.0), dtype=d.dtype))
    assert torch.allclose(e / q, torch.full((3,), math.log(n), dtype=e.dtype))


def test_shifted_windows_do_not_count_masked_pairs():
    H, ws, shift = 4, 2, 1
    mask = shifted_window_mask(H, H, ws, shift)  # 4 windows of 4 tokens
    n = ws * ws
    uniform = torch.full((1, mask.shape[0], 1, n, n), 1 / n)
    d, e, q = head_statistics(uniform, ws, 1.0, mask)
    # by hand: each query spreads uniformly over the keys of its own region
    from depthbench.analysis.attention import window_distances
    dist = window_distances(ws)
    want_d = want_e = 0.0
    for w in range(mask.shape[0]):
        for i in range(n):
            keys = (mask[w, i] == 0).nonzero().flatten()
            want_d += dist[i, keys].mean().item()
            want_e += math.log(len(keys))
    assert d.item() == pytest.approx(want_d, rel=1e-5)
    assert e.item() == pytest.approx(want_e, rel=1e-5)
    unmasked, _, _ = head_statistics(uniform, ws, 1.0, None)
    assert unmasked.item() != pytest.approx(want_d)  # the mask changes the answer here


def test_probe_reads_the_swin_attention_of_the_real_forward_pass():
    torch.manual_seed(0)
    m = create_model("swin_t", num_classes=3, img_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fused = m(x)
    probe = Probe(m, 3)
    seen = []
    handle = m.layers[0].blocks[1].attn.softmax.register_forward_hook(
        lambda mod, i, out: seen.append(out))
    logits = probe.step(x, torch.tensor([0, 1]))
    handle.remove()
    probe.detach()
    assert torch.allclose(logits, fused, atol=1e-4)  # explicit path = fused path
    assert all(a.fused_attn for a in (blk.attn for s in m.layers for blk in s.blocks))
    blk = m.layers[0].blocks[1]
    masked = blk.attn_mask != 0  # nW, N, N
    p = seen[0]  # B, nW, heads, N, N: a shifted block
    assert p.shape == (2, masked.shape[0], 3, *masked.shape[1:])
    assert torch.allclose(p.sum(-1), torch.ones(()))
    assert masked.any() and p.permute(0, 2, 1, 3, 4)[:, :, masked].max() < 1e-30
    st = probe.attn[1]
    res = 32 // 4
    assert st.shifted and st.queries == 2 * res * res and st.dist.shape == (3,)


# -------------------------------------------------------------------------------- SE gates

def test_se_statistics_read_the_gates_of_the_real_forward_pass():
    m = create_model("seresnet18", num_classes=3, img_size=32).eval()
    c = 0.7
    for se in m.modules():
        if isinstance(se, SEModule):
            torch.nn.init.zeros_(se.fc2.weight)
            torch.nn.init.constant_(se.fc2.bias, math.log(c / (1 - c)))  # sigmoid -> c
    probe = Probe(m, 3)
    probe.step(torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2]))
    probe.detach()
    rec = _se_record(probe, ["a", "b", "c"])
    assert len(rec["blocks"]) == 8
    for b in rec["blocks"]:
        assert b["mean_gate"] == pytest.approx(c, abs=1e-4)
        assert b["class_specificity"] == pytest.approx(0.0, abs=1e-6)
        assert b["fraction_saturated"] == 0.0
        assert set(b["per_class_mean"]) == {"a", "b", "c"}


def test_no_statistic_is_computed_in_training_mode():
    m = create_model("seresnet18", num_classes=2, img_size=32)
    probe = Probe(m.train(), 2)
    with pytest.raises(TrainingModeError):
        probe.step(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    m.eval()
    m.layer3[0].se.train()  # one module left in training mode is enough to refuse
    probe._batch_grams = []
    with pytest.raises(TrainingModeError):
        probe.step(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    probe.detach()
    assert all(not h for h in probe._handles)


# -------------------------------------------------------------------------------- Grad-CAM

def _stripe_patch_images(n: int, g: torch.Generator):
    """Noise everywhere; the class (horizontal or vertical stripes) only in the top-left 16x16."""
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.5 * torch.randn(n, 3, 32, 32, generator=g)
    stripes = 2 * torch.sin(torch.arange(16) * math.pi / 2)
    for i in range(n):
        x[i, :, :16, :16] = stripes[:, None] if y[i] == 0 else stripes[None, :]
    return x, y


def test_grad_cam_puts_most_mass_on_the_signal_region():
    # 12 Adam steps of a ResNet-18 at 32 px learn the class: a trained model is what Grad-CAM
    # must be checked on
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = _stripe_patch_images(256, g)
    m = create_model("resnet18", num_classes=2, img_size=32)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    for _ in range(12):
        i = torch.randint(0, 256, (16,), generator=g)
        loss = torch.nn.functional.cross_entropy(m(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    xt, yt = _stripe_patch_images(8, g)
    probe = Probe(m, 2)
    pred = probe.step(xt, yt).argmax(1)
    probe.detach()
    assert (pred == yt).float().mean() >= 0.75
    block = target_block(probe.blocks)
    assert block.name == "layer2.1" and block.grid == (4, 4)  # 32 px: the last 4x4 stage
    cams = grad_cam(m, block, xt, pred.tolist())
    assert cams.shape == (8, 32, 32)
    mass = cams[:, :16, :16].sum((1, 2)) / cams.sum((1, 2))  # the region is a quarter
    assert mass.mean() > 0.5, mass


# ------------------------------------------------------------------------- runs and a study

def _tiny(cache: str, model: str, **kw) -> TrainConfig:
    return TrainConfig.for_recipe("seed", **{
        **dict(model=model, data=DATA, img_size=32, epochs=1, batch_size=8, val=0.25, test=0.25,
               cache_dir=cache, accelerator="cpu", quiet=True, limit_train_batches=1), **kw})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A `depthbench train` output (one batch of training: the analysis is tested, not the
    model)."""
    root = tmp_path_factory.mktemp("analysis-run")
    train(_tiny(str(root / "cache"), "resnet18"), root / "run", progress=False, resume=False)
    return root / "run"


def _copy_run(src: Path, dst: Path, model: str, variant: str = "base", **model_kwargs) -> None:
    """A study's run folder for another model: the trained run's records and split with freshly
    initialised weights of `model` saved the engine's way (analysis does not need trained
    weights, and training four more models would cost the suite a minute)."""
    from depthbench.engine.checkpoint import read_meta

    dst.mkdir(parents=True)
    for name in ("split.json", "config.yaml", "metrics.csv"):
        (dst / name).write_bytes((src / name).read_bytes())
    meta = read_meta(src / "best.safetensors")
    torch.manual_seed(len(model) + len(variant))
    kwargs = {**meta["model_kwargs"], **model_kwargs}
    if family(model) == "resnet":
        kwargs.pop("se_drop", None)
    net = create_model(model, num_classes=len(meta["classes"]), **kwargs)
    save_weights(dst / "best.safetensors", net, {**meta, "model": model, "family": family(model),
                                                 "model_kwargs": kwargs, "variant": variant})
    result = json.loads((src / "result.json").read_text())
    result.update(model=model, family=family(model), variant=variant)
    (dst / "result.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def study(trained_run, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("analysis-study")
    swin, keydrop = "swin_tiny_patch4_window7_224", {"key_drop": 0.1, "key_drop_mode": "dropkey"}
    for model, variant, kw in (("seresnet18", "base", {}), ("seresnet34", "base", {}),
                               (swin, "base", {}), (swin, "keydrop0.1", keydrop)):
        _copy_run(trained_run, root / f"{model}__{variant}__s0", model, variant, **kw)
    failed = root / "resnet50__base__s0"
    failed.mkdir()
    (failed / "result.json").write_text(json.dumps({"status": "failed", "model": "resnet50"}))
    out = analyze_path(root, images=16, batch_size=8)
    assert isinstance(out["resnet50__base__s0"], str) and "not finished" in out[
        "resnet50__base__s0"]
    return root


def test_analyze_cli_on_a_run_folder(trained_run, capsys):
    assert main(["analyze", str(trained_run), "--images", "12", "--batch-size", "6",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    s = doc["run"]
    assert s["status"] == "analyzed" and s["split"] == "test" and s["images"] == 12
    rec = json.loads((trained_run / "analysis.json").read_text())
    assert read_analysis(trained_run) == rec  # what the report reads: the file, validated
    assert summarize(rec) == {k: v for k, v in s.items() if k != "status"}
    assert rec["se"] is None and rec["attention"] is None
    assert len(rec["cka"]["blocks"]) == 8 and len(rec["cka"]["matrix"]) == 8
    assert rec["cka"]["batches"] == 2
    assert all(rec["cka"]["matrix"][i][i] == pytest.approx(1.0, abs=1e-3) for i in range(8))
    cams = rec["gradcam"]["images"]
    assert len(cams) == 8 and len({c["path"] for c in cams}) == 8
    assert (trained_run / "analysis_cka.png").stat().st_size > 0
    assert (trained_run / "analysis_gradcam.png").stat().st_size > 0


def test_analyze_cli_bad_input_is_one_line(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a run folder" in err
    run = tmp_path / "r"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"status": "failed"}))
    assert main(["analyze", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'failed'" in err
    (run / "result.json").write_text(json.dumps({"status": "finished"}))
    assert main(["analyze", str(run)]) == 2
    assert "no best.safetensors" in capsys.readouterr().err


def test_study_analysis_has_every_measurement_and_cross_model_cka(study):
    recs = {p.parent.name: json.loads(p.read_text()) for p in study.glob("*/analysis.json")}
    assert len(recs) == 4
    se18, se34 = recs["seresnet18__base__s0"], recs["seresnet34__base__s0"]
    assert len(se18["se"]["blocks"]) == 8 and len(se34["se"]["blocks"]) == 16
    cross = se18["cross_cka"]["seresnet34__base__s0"]
    assert len(cross["matrix"]) == 8 and len(cross["matrix"][0]) == 16
    assert set(cross["stage_output"]) == {"1", "2", "3", "4"}
    assert se34["cross_cka"]["seresnet18__base__s0"]["matrix"][15][7] == cross["matrix"][7][15]
    swin = recs["swin_tiny_patch4_window7_224__base__s0"]
    assert len(swin["attention"]["blocks"]) == 12
    assert not swin["cross_cka"]  # the key-drop variant is another variant, not another depth
    idx = [[c["index"] for c in r["gradcam"]["images"]] for r in recs.values()]
    assert all(i == idx[0] for i in idx)  # the same images for every model


@pytest.mark.browser
def test_inside_section_renders_in_headless_chromium(study, tmp_path):
    from depthbench.report.document import Document, Figure, to_html
    from depthbench.report.inside import inside_section
    from test_report import CHROMIUM_FLAGS, PROBE, _chromium

    written: set = set()
    runs = sorted(p for p in study.iterdir() if p.is_dir())
    blocks = inside_section(runs, tmp_path / "figures", written)
    figs = [b for b in blocks if isinstance(b, Figure)]
    assert written == {"inside_se.png", "inside_attention.png", "inside_cka.png",
                       "inside_gradcam.png"} == {Path(f.path).name for f in figs}
    html = to_html(Document("inside", blocks))
    for heading in ("Inside the networks", "SE excitation by depth", "Swin attention by depth",
                    "Representation similarity across depth", "Where the models look"):
        assert heading in html
    page = tmp_path / "inside.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    proc = subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p'}",
                           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'data-probe-done="yes"' in dom
    n = int(re.search(r'data-probe-images="(\d+)"', dom).group(1))
    assert n == 4 and dom.count('data-probe="ok"') == 4 and 'data-probe="broken"' not in dom


def test_inside_section_without_analyses_says_how_to_get_them(tmp_path):
    from depthbench.report.inside import inside_section

    blocks = inside_section([tmp_path], tmp_path / "figures")
    assert "depthbench analyze" in blocks[-1].text


def test_analysis_record_schema_refuses_what_it_cannot_read(trained_run, tmp_path):
    rec = read_analysis(trained_run)
    with pytest.raises(ValidationError):  # the writer refuses a record without its CKA
        write_analysis(tmp_path, {k: v for k, v in rec.items() if k != "cka"})
    (tmp_path / "analysis.json").write_text(json.dumps({**rec, "format": "depthbench-analysis/0"}))
    assert read_analysis(tmp_path) is None  # another format: not read
    (tmp_path / "analysis.json").write_text(json.dumps({**rec, "subset": {"images": "many"}}))
    assert read_analysis(tmp_path) is None  # malformed: not read
    assert write_analysis(tmp_path, rec) == rec and read_analysis(tmp_path) == rec


def test_a_run_analysed_on_other_images_is_named_not_compared(study, tmp_path):
    """`depthbench analyze RUN --images 8` after the study's analysis on 16: that run's subset
    differs (another seeded draw), so the section shows the runs analysed alike and names it."""
    from depthbench.analysis.run import analyze_run
    from depthbench.report.document import Para, Table
    from depthbench.report.inside import inside_section

    runs = sorted(p for p in study.iterdir() if p.is_dir())
    odd = tmp_path / "seresnet18__base__s0"  # a copy: the study fixture stays as it is
    odd.mkdir()
    for f in (study / odd.name).iterdir():
        (odd / f.name).write_bytes(f.read_bytes())
    analyze_run(odd, images=8, batch_size=8)
    blocks = inside_section([odd if r.name == odd.name else r for r in runs],
                            tmp_path / "figures")
    notes = [b.text for b in blocks if isinstance(b, Para) and odd.name in b.text]
    assert len(notes) == 1 and "8 test images" in notes[0]
    cka = next(b for b in blocks if isinstance(b, Table) and b.header[:2] == ["run", "blocks"]
               and len(b.header) == 3)
    assert len(cka.rows) == 3 and not any(r[0] == "SE-ResNet-18" for r in cka.rows)
    first = blocks[1].text
    assert "3 runs" in first and "12 test images" in first  # the study analysed all 12
