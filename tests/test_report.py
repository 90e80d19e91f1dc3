"""The study report built from hand-made run folders (a test fixture standing in for the engine's
records, following docs/internals.md), the `depthbench report` command, and the HTML in Chromium."""

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from depthbench.cli.main import main
from depthbench.errors import DepthbenchError
from depthbench.report import build_report, load_study

N_BOOT = 400  # the report's default is 10,000; the statistics are tested in test_stats.py
CLASSES = ["cat", "dog", "fox", "owl"]
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
          "seresnet18": 11_778_592, "seresnet34": 21_958_868, "seresnet50": 28_088_024,
          "swin_tiny_patch4_window7_224": 28_288_354, "swin_small_patch4_window7_224": 49_606_258,
          "swin_base_patch4_window7_224": 87_768_224}
FAMILY = {m: ("seresnet" if m.startswith("se") else "resnet" if m.startswith("res") else "swin")
          for m in PARAMS}


# ------------------------------------------------------------------------------ fixture helpers
def _targets(n, k, seed):
    """A fixed, unbalanced split: class 0 is the majority (like a real per-class split)."""
    rng = np.random.default_rng(1000 + seed)
    weights = np.array([2.0] + [1.0] * (k - 1))
    return rng.choice(k, size=n, p=weights / weights.sum()).tolist()


def _evaluate(targets, acc, k, rng):
    t = np.asarray(targets)
    right = rng.random(t.size) < acc
    pred = np.where(right, t, (t + rng.integers(1, k, t.size)) % k)
    conf = np.zeros((k, k), dtype=int)
    np.add.at(conf, (t, pred), 1)
    correct = int((pred == t).sum())
    return {"accuracy": correct / t.size, "correct": correct, "total": int(t.size),
            "loss": float(-math.log(max(acc, 1e-3))),
            "per_class": {}, "confusion": conf.tolist(),
            "predictions": pred.tolist(), "targets": t.tolist()}


def _config(model, variant, epochs, test):
    cfg = {"model": model, "data": "hand-made", "recipe": "source", "epochs": epochs,
           "img_size": 32, "val": 0.1, "test": 0.25 if test else 0.0, "key_drop": None,
           "key_drop_mode": None, "se_drop": None}
    m = re.fullmatch(r"(keydrop|sedrop)([\d.]+)", variant)
    if m:
        cfg["key_drop" if m[1] == "keydrop" else "se_drop"] = float(m[2])
        if m[1] == "keydrop":
            cfg["key_drop_mode"] = "dropkey"
    return cfg


def make_run(study, model, seed, acc, variant="base", epochs=4, classes=CLASSES, n_val=60,
             n_test=150, status="finished", train_acc=None, failure=None, test=True):
    """Write one run folder (metrics.csv + result.json) whose best-epoch test accuracy is ~`acc`."""
    k = len(classes)
    run = Path(study) / f"{model}__{variant}__s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    # Seeded by (seed, acc), not the model: two models given the same accuracy make the same
    # predictions, so a null comparison is exactly null and the expected words are certain.
    rng = np.random.default_rng(zlib.crc32(f"{seed}/{acc}".encode()))
    done = epochs if status == "finished" else max(1, epochs // 2)
    val_t, test_t = _targets(n_val, k, 0), _targets(n_test, k, 1)
    rows, best = [], None
    for e in range(1, done + 1):
        frac = e / epochs
        ta = train_acc if train_acc is not None else min(1.0, acc + 0.25 * frac)
        val = _evaluate(val_t, acc * (0.6 + 0.4 * frac), k, rng)
        row = {"epoch": e, "train_loss": round(1.5 * (1 - frac) + 0.05, 5), "train_acc": ta * frac
               if train_acc is None else ta, "val_loss": val["loss"], "val_acc": val["accuracy"],
               "val_correct": val["correct"], "val_total": val["total"], "lr": 1e-3,
               "seconds": 2.5}
        rows.append((row, val))
        if best is None or val["accuracy"] > best[0]["val_acc"]:
            best = (row, val)
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0][0]))
        w.writeheader()
        w.writerows(r for r, _ in rows)

    def section(row, val, acc_test):
        return {"epoch": row["epoch"], "train_loss": row["train_loss"],
                "train_acc": row["train_acc"], "val": val,
                "test": _evaluate(test_t, acc_test, k, rng) if test else None}

    result = {
        "status": status, "failure": failure, "model": model, "family": FAMILY[model],
        "variant": variant, "seed": seed, "config": _config(model, variant, epochs, test),
        "classes": classes, "img_size": 32, "params": PARAMS[model],
        "macs": int(PARAMS[model] * 150), "epochs_completed": done,
        "best_epoch": best[0]["epoch"],
        "best": section(*best, acc), "last": section(*rows[-1], acc * 0.97),
        "costs": {"train_seconds": 2.5 * done, "train_images_per_s": 120.0,
                  "infer_images_per_s": 400.0, "peak_memory_mb": 512.0},
        "provenance": {"versions": {}, "git_revision": "abc", "manifest_hash": "h",
                       "device": "cpu", "started": "2026-01-01T00:00:00", "seconds": 2.5 * done},
    }
    if status != "finished":
        result["best"] = result["last"] = None
    (run / "result.json").write_text(json.dumps(result))
    return run


def make_study(root, seeds, models=None, accs=None, **kw):
    models = models or list(PARAMS)
    accs = accs or {}
    for s in seeds:
        for m in models:
            make_run(root, m, s, accs.get(m, 0.7), **kw)
    return Path(root)


def _section(md, title):
    """The text of one `## title` section of report.md."""
    m = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", md, re.S | re.M)
    assert m, f"section {title!r} missing"
    return m.group(1)


# --------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def full_study(tmp_path_factory):
    """Nine models, 3 seeds, a key-dropout variant for each attention family, one failed run."""
    root = tmp_path_factory.mktemp("full")
    accs = {"resnet18": 0.55, "resnet34": 0.56, "resnet50": 0.55, "seresnet18": 0.8,
            "seresnet34": 0.82, "seresnet50": 0.9, "swin_tiny_patch4_window7_224": 0.6,
            "swin_small_patch4_window7_224": 0.6, "swin_base_patch4_window7_224": 0.58}
    make_study(root, [0, 1, 2], accs=accs)
    for s in (0, 1, 2):
        make_run(root, "swin_tiny_patch4_window7_224", s, 0.62, variant="keydrop0.1",
                 train_acc=0.7)
        make_run(root, "seresnet18", s, 0.8, variant="sedrop0.1")
    make_run(root, "swin_small_patch4_window7_224", 3, 0.6, status="failed",
             failure={"epoch": 2, "reason": "loss became NaN at epoch 2 (lr too high?)"})
    (root / "resnet50__base__s3").mkdir()  # a run that never wrote result.json
    md_path = build_report(root, n_boot=N_BOOT)
    return root, md_path.read_text()


def test_report_writes_every_file(full_study):
    root, _ = full_study
    for name in ("results.csv", "report.md", "report.html"):
        assert (root / name).is_file()
    pngs = sorted(p.name for p in (root / "figures").glob("*.png"))
    assert pngs == ["accuracy_vs_gmacs.png", "confusion_resnet.png", "confusion_seresnet.png",
                    "confusion_swin.png", "curves_resnet.png", "curves_seresnet.png",
                    "curves_swin.png"]
    for p in (root / "figures").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_csv_one_row_per_run_with_counts_and_failures(full_study):
    root, _ = full_study
    rows = list(csv.DictReader(open(root / "results.csv")))
    assert len(rows) == 9 * 3 + 2 * 3 + 2
    r = next(r for r in rows if r["run_dir"] == "resnet18__base__s0")
    assert r["status"] == "finished" and int(r["params"]) == PARAMS["resnet18"]
    result = json.loads((root / "resnet18__base__s0" / "result.json").read_text())
    assert int(r["best_test_correct"]) == result["best"]["test"]["correct"]
    assert int(r["best_test_total"]) == 150
    assert float(r["best_test_acc"]) == pytest.approx(result["best"]["test"]["correct"] / 150)
    assert int(r["last_epoch"]) == 4 and int(r["best_epoch"]) == result["best_epoch"]
    failed = next(r for r in rows if r["run_dir"] == "swin_small_patch4_window7_224__base__s3")
    assert failed["status"] == "failed" and "NaN" in failed["failure_reason"]
    assert failed["failure_epoch"] == "2"
    incomplete = next(r for r in rows if r["run_dir"] == "resnet50__base__s3")
    assert incomplete["status"] == "incomplete"


def test_report_has_every_section(full_study):
    _, md = full_study
    for title in ("Summary", "Depth comparison per family",
                  "SE ablation (SE-ResNet vs ResNet at the same depth)",
                  "Key-dropout ablation (variant vs base of the same model)", "Learning curves",
                  "Confusion matrices (best model per family)", "Cost",
                  "What holds of the source study's claims", "Failed and unfinished runs",
                  "All runs", "Methods"):
        _section(md, title)
    assert "Beside the source study" not in md  # not the flowers layout
    html = (full_study[0] / "report.html").read_text()
    for heading in re.findall(r"^#{2,3} (.+)$", md, re.M):
        assert f">{heading.replace(chr(39), '&#x27;')}</h" in html, heading


def test_depth_tables_label_best_and_last_with_mean_sd(full_study):
    _, md = full_study
    depth = _section(md, "Depth comparison per family")
    for fam in ("ResNet", "SE-ResNet", "Swin"):
        assert f"*{fam}: selected checkpoint (best validation epoch)*" in depth
        assert f"*{fam}: last epoch*" in depth
    row = next(line for line in depth.splitlines() if line.startswith("| SE-ResNet-50 |"))
    assert "28.09 M" in row and " ± " in row and "| 3 |" in row
    # a failed seed is counted, not dropped
    assert any(line.startswith("| Swin-S |") and "3 of 4 (1 not finished)" in line
               for line in depth.splitlines())
    assert "seed variance is not estimated" not in md


def test_se_ablation_words_follow_the_ci(full_study):
    _, md = full_study
    se = _section(md, "SE ablation (SE-ResNet vs ResNet at the same depth)")
    # 0.9 vs 0.55 on 150 images x 3 seeds: far outside noise
    assert "SE-ResNet-50 beats ResNet-50 (Δ = +" in se
    for line in md.splitlines():
        m = re.search(r"95% CI \[([-+]\d+\.\d), ([-+]\d+\.\d)\]", line)
        if m and "no significant difference" in line and "beats" not in line:
            low, high = float(m.group(1)), float(m.group(2))
            assert low <= 0 <= high, line


def test_key_dropout_table_shows_overfitting_and_accuracy(full_study):
    _, md = full_study
    kd = _section(md, "Key-dropout ablation (variant vs base of the same model)")
    assert "overfit base (points)" in kd and "Δ overfit (points)" in kd
    assert "| Swin-T | keydrop0.1 (key_drop=0.1, key_drop_mode=dropkey) | 3 |" in kd
    assert "| SE-ResNet-18 | sedrop0.1 (se_drop=0.1) | 3 |" in kd


def test_claims_each_get_a_sentence(full_study):
    _, md = full_study
    claims = _section(md, "What holds of the source study's claims")
    assert "'SE helps at every depth': supported" in claims
    assert "'Deeper plain ResNet does not help': supported" in claims
    assert "'Swin does not converge'" in claims and "last-epoch train accuracy of at least" in claims
    assert "'SE-ResNet-50 is best': supported" in claims


def test_failed_and_incomplete_runs_are_shown(full_study):
    _, md = full_study
    bad = _section(md, "Failed and unfinished runs")
    assert "swin_small_patch4_window7_224__base__s3" in bad and "loss became NaN" in bad
    assert "resnet50__base__s3" in bad and "incomplete" in bad


def test_holm_count_and_method_named(full_study):
    _, md = full_study
    # depth: 3 pairs x 3 families, SE: 3, variants: 2, best: 1
    assert "Paired comparisons made: 15" in md
    assert "15 paired comparisons in this report" in md
    assert "hierarchical bootstrap" in md and "Fisher" in md


def test_one_seed_uses_paired_bootstrap_and_wilson(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet18"],
               accs={"resnet18": 0.6, "seresnet18": 0.62})
    md = build_report(tmp_path, n_boot=N_BOOT).read_text()
    assert "With 1 seed(s) per model, seed variance is not estimated" in md
    se = _section(md, "SE ablation (SE-ResNet vs ResNet at the same depth)")
    row = next(line for line in se.splitlines() if line.startswith("| 18 |"))
    assert "| 1 |" in row
    assert "paired bootstrap over images with one seed" in md
    # one seed: the depth table's CI is the Wilson interval of that run's counts
    result = json.loads((tmp_path / "resnet18__base__s0" / "result.json").read_text())
    k, n = result["best"]["test"]["correct"], result["best"]["test"]["total"]
    from depthbench.report.stats import wilson_ci
    lo, hi = wilson_ci(k, n)
    depth = _section(md, "Depth comparison per family")
    assert f"[{100 * lo:.1f}, {100 * hi:.1f}]" in depth
    assert "'SE-ResNet-50 is best': not testable here (SE-ResNet-50 was not run)" in md


def test_two_seeds_say_variance_not_estimated(tmp_path):
    make_study(tmp_path, [0, 1], models=["resnet18", "resnet34"])
    md = build_report(tmp_path, n_boot=N_BOOT).read_text()
    assert "With 2 seed(s) per model, seed variance is not estimated" in md
    depth = _section(md, "Depth comparison per family")
    assert "ResNet-34 vs ResNet-18 | 2 |" in depth
    assert "SE ablation" in md and "Not run in this study" in _section(
        md, "SE ablation (SE-ResNet vs ResNet at the same depth)")


def test_majority_baseline_warning(tmp_path):
    # at chance (25% on 4 classes, majority class 40%): the report must say so plainly
    make_study(tmp_path, [0], models=["resnet18", "resnet34"], accs={"resnet18": 0.25,
                                                                     "resnet34": 0.25})
    md = build_report(tmp_path, n_boot=N_BOOT).read_text()
    assert "does NOT clearly beat the majority-class baseline" in md
    assert "(always 'cat')" in md


def test_majority_baseline_beaten(tmp_path):
    make_study(tmp_path, [0], models=["resnet18"], accs={"resnet18": 0.95})
    md = build_report(tmp_path, n_boot=N_BOOT).read_text()
    assert "clearly beats the baseline" in md and "NOT" not in md


def test_no_test_split_evaluates_on_validation_and_warns(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet18"], test=False)
    md = build_report(tmp_path, n_boot=N_BOOT).read_text()
    assert "This study has no test split" in md
    assert "test acc" not in _section(md, "Depth comparison per family")


def test_flowers_layout_puts_the_source_table_beside_ours(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet50"], classes=FLOWERS)
    md = build_report(tmp_path, n_boot=N_BOOT).read_text()
    src = _section(md, "Beside the source study (flowers)")
    assert "| SE-ResNet-50 | 6e-06 | 100.00% | 80.13% |" in src
    assert "| Swin-B |" in src and "not run" in src
    assert "98 of 100 per-epoch validation accuracies are not a whole number" in src
    assert "last mini-batch" in src and "Per-column best" in src
    assert "ResNet-50 (published 71.98%, records' best 72.53% at epoch 97)" in src


def test_all_failed_study_still_reports(tmp_path):
    make_run(tmp_path, "resnet18", 0, 0.5, status="failed",
             failure={"epoch": 1, "reason": "data: 3 unreadable images"})
    md = build_report(tmp_path, n_boot=N_BOOT).read_text()
    assert "unreadable images" in md and "No run finished" in md
    assert "no finished run: data: 3 unreadable images" in md


def test_unreadable_result_is_reported_not_dropped(tmp_path):
    make_study(tmp_path, [0], models=["resnet18"])
    bad = tmp_path / "resnet34__base__s0"
    bad.mkdir()
    (bad / "result.json").write_text('{"status": "finished", ')  # torn by a crash
    md = build_report(tmp_path, n_boot=N_BOOT).read_text()
    row = next(line for line in _section(md, "Failed and unfinished runs").splitlines()
               if line.startswith("| resnet34__base__s0 |"))
    assert "unreadable" in row and "result.json unreadable" in row


def test_rebuild_removes_stale_figures(tmp_path):
    make_study(tmp_path, [0], models=["resnet18"])
    build_report(tmp_path, n_boot=N_BOOT)
    (tmp_path / "figures" / "curves_swin.png").write_bytes(b"old")
    build_report(tmp_path, n_boot=N_BOOT)
    assert not (tmp_path / "figures" / "curves_swin.png").exists()


def test_no_run_records_is_a_clear_error(tmp_path):
    (tmp_path / "figures").mkdir()
    with pytest.raises(DepthbenchError, match="no run records in"):
        build_report(tmp_path)
    with pytest.raises(DepthbenchError, match="study folder not found"):
        load_study(tmp_path / "missing")


def test_cli_report_rebuilds_from_records(tmp_path, capsys):
    make_study(tmp_path, [0, 1], models=["resnet18", "seresnet18"])
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "report.html") in out
    assert (tmp_path / "report.md").is_file() and (tmp_path / "results.csv").is_file()


def test_cli_report_error_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "depthbench", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("depthbench: error: no run records in")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------ browser
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]

# Appended to a copy of the page: after load, mark each image as loaded (naturalWidth > 0) or
# broken, and list every resource the page fetched.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  imgs.forEach(function (im) {
    im.setAttribute('data-probe', im.complete && im.naturalWidth > 0 ? 'ok' : 'broken');
  });
  var res = performance.getEntriesByType('resource').map(function (r) { return r.name; });
  document.body.setAttribute('data-probe-images', String(imgs.length));
  document.body.setAttribute('data-probe-resources', res.join(' '));
  document.body.setAttribute('data-probe-done', 'yes');
});
</script>"""


def _chromium():
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium")
                                       else None)
    if exe is None:
        pytest.fail("chromium is not installed: `make test` installs it (Debian package "
                    "`chromium`), or run `apt-get install -y chromium`")
    return exe


@pytest.mark.browser
def test_html_renders_in_headless_chromium(full_study, tmp_path):
    exe = _chromium()
    root, _ = full_study
    html = (root / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "external resource"
    probe = root / "_probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    try:
        proc = subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'data-probe-done="yes"' in dom, "the page did not finish loading: " + proc.stderr[-500:]
    n_imgs = int(re.search(r'data-probe-images="(\d+)"', dom).group(1))
    assert n_imgs == 7
    assert dom.count('data-probe="ok"') == n_imgs, "an image failed to load"
    assert 'data-probe="broken"' not in dom
    resources = re.search(r'data-probe-resources="([^"]*)"', dom).group(1).split()
    # Chromium does not list file:// fetches in resource timing; anything listed came from
    # elsewhere and would be an external resource.
    assert resources == [], resources
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == n_imgs and all(s.startswith("figures/") for s in srcs)
    for heading in ("Depth comparison per family", "What holds of the source study"):
        assert heading in dom
