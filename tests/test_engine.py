"""The training engine on the real layers, shrunk: `synthetic` data, 32 px, a few batches."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from depthbench.cli.main import main
from depthbench.configio import FULL_AUGMENTATION, FULL_EVAL_CROP
from depthbench.data.split import Manifest, train_eval_manifest
from depthbench.engine.checkpoint import load_model_from_checkpoint
from depthbench.engine.config import TrainConfig
from depthbench.engine.devices import resolve_precision
from depthbench.engine.evaluate import evaluate_checkpoint, predict
from depthbench.engine.trainer import TrainingInterrupted, train
from depthbench.errors import CheckpointError, ConfigError, RunFailed
from depthbench.models.complexity import macs_224
from depthbench.runrecord import METRICS_COLUMNS

DATA = "synthetic:n=48,size=32,classes=3,seed=0"  # 16 images per class


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cache"))


def tiny(cache: str, **kw) -> TrainConfig:
    base = dict(model="resnet18", data=DATA, img_size=32, epochs=2, batch_size=12, val=0.25,
                test=0.25, cache_dir=cache, accelerator="cpu", quiet=True)
    return TrainConfig.for_recipe(kw.pop("recipe", "source"), **{**base, **kw})


def read_rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("runs") / "resnet18"
    result = train(tiny(cache), out, progress=False, resume=False)
    return out, result


def test_cnn_run_records_are_consistent(cnn_run):
    out, result = cnn_run
    for name in ("config.yaml", "split.json", "metrics.csv", "best.safetensors", "last.ckpt",
                 "result.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "result.json").read_text()) == json.loads(json.dumps(result))
    assert result["status"] == "finished" and result["failure"] is None
    assert result["epochs_completed"] == 2 and result["family"] == "resnet"
    split = json.loads((out / "split.json").read_text())
    n_split = {s: sum(1 for e in split["entries"] if e["split"] == s) for s in ("train", "val", "test")}
    assert n_split == {"train": 24, "val": 12, "test": 12}  # int(16 * .25) = 4 per class

    rows = read_rows(out)
    assert list(rows[0]) == METRICS_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert int(r["val_total"]) == n_split["val"] and int(r["train_total"]) == n_split["train"]
        assert float(r["val_acc"]) == pytest.approx(int(r["val_correct"]) / n_split["val"])
        assert float(r["train_acc"]) == pytest.approx(int(r["train_correct"]) / n_split["train"])
        assert float(r["lr"]) == pytest.approx(2e-4)

    best_row = rows[result["best_epoch"] - 1]
    assert float(best_row["val_acc"]) == max(float(r["val_acc"]) for r in rows)
    for which, row in (("best", best_row), ("last", rows[-1])):
        rec = result[which]
        assert rec["epoch"] == int(row["epoch"])
        assert rec["train_loss"] == pytest.approx(float(row["train_loss"]))
        # re-evaluating the saved weights reproduces the epoch's validation record exactly
        assert rec["val"]["correct"] == int(row["val_correct"])
        assert rec["val"]["loss"] == pytest.approx(float(row["val_loss"]), rel=1e-5)
        for s, n in (("val", n_split["val"]), ("test", n_split["test"])):
            m = rec[s]
            assert m["total"] == n and len(m["predictions"]) == len(m["targets"]) == n
            assert sum(map(sum, m["confusion"])) == n
            assert sum(m["confusion"][i][i] for i in range(3)) == m["correct"]
            assert sum(c["support"] for c in m["per_class"].values()) == n
            assert sum(p == t for p, t in zip(m["predictions"], m["targets"])) == m["correct"]
        assert rec["test"]["targets"] == [e.label for e in Manifest.load(out / "split.json").entries("test")]
    costs, prov = result["costs"], result["provenance"]
    assert costs["train_images_per_s"] > 0 and costs["infer_images_per_s"] > 0
    assert costs["peak_memory_mb"] > 0 and result["params"] > 0 and result["macs"] > 0
    assert prov["manifest_hash"] == split["hash"] and prov["versions"]["torch"]
    # the resolved precision, recorded twice; MACs at 224 px on one scale for every run
    assert result["config"]["precision"] == prov["precision"] == resolve_precision("auto", "cpu")
    assert "precision: " + prov["precision"] in (out / "config.yaml").read_text()
    assert result["macs_224"] == macs_224("resnet18", 3) > result["macs"]
    # train_eval: the selected and last weights on a fixed subset of the training images
    for which in ("best", "last"):
        te = result[which]["train_eval"]
        assert set(te) == {"accuracy", "correct", "total"} and te["total"] == n_split["test"]
        assert te["accuracy"] == pytest.approx(te["correct"] / te["total"])

    state = torch.load(out / "last.ckpt", weights_only=True)
    assert state["epoch"] == 2 and set(state) >= {"model", "optimizer", "lr_scheduler", "rng",
                                                   "history", "best"}
    with safe_open(str(out / "best.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["classes"]) == result["classes"]
    assert json.loads(meta["mean"]) == [0.5, 0.5, 0.5]  # the source recipe's normalization


def test_rerun_of_a_finished_run_is_a_noop(cnn_run, cache, capsys):
    out, result = cnn_run
    before = (out / "last.ckpt").stat().st_mtime_ns
    again = train(tiny(cache), out, progress=False, resume=False)
    assert again == json.loads(json.dumps(result))
    assert (out / "last.ckpt").stat().st_mtime_ns == before
    assert "already finished" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"epochs=2 \(now 3\) \(pass --resume"):
        train(tiny(cache, epochs=3), out, progress=False, resume=False)  # (--resume extends it)


def test_evaluate_reproduces_recorded_accuracy(cnn_run, cache, capsys):
    out, result = cnn_run
    for split in ("val", "test"):
        r = evaluate_checkpoint(out / "best.safetensors", DATA, split, cache_dir=cache)
        assert (r["correct"], r["total"]) == (result["best"][split]["correct"],
                                              result["best"][split]["total"])
    code = main(["evaluate", str(out / "last.ckpt"), "--data", DATA, "--split", "val", "--json",
                 "--cache-dir", cache])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["accuracy"] == result["last"]["val"]["accuracy"]
    assert doc["correct"] == result["last"]["val"]["correct"] and doc["total"] == 12
    with pytest.raises(CheckpointError, match="classes"):
        evaluate_checkpoint(out / "best.safetensors", "synthetic:n=48,size=32,classes=4,seed=0",
                            cache_dir=cache)


def test_predict_rebuilds_model_from_metadata(cnn_run, cache, capsys):
    from depthbench.data.sources import open_source

    out, result = cnn_run
    model, meta = load_model_from_checkpoint(out / "best.safetensors")
    assert meta["model"] == "resnet18" and meta["classes"] == result["classes"]
    src = open_source(DATA, cache_dir=cache)
    split = json.loads((out / "split.json").read_text())
    paths = [str(src.root / e["path"]) for e in split["entries"] if e["split"] == "test"][:2]
    preds = predict(out / "best.safetensors", paths, top_k=2)
    assert [p["image"] for p in preds] == paths
    for p in preds:
        assert len(p["top"]) == 2 and p["top"][0]["prob"] >= p["top"][1]["prob"]
        assert {t["class"] for t in p["top"]} <= set(result["classes"])
    assert main(["predict", str(out / "best.safetensors"), *paths, "--top-k", "9", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc) == 2 and len(doc[0]["top"]) == 3  # top-k capped at the class count
    assert sum(t["prob"] for t in doc[0]["top"]) == pytest.approx(1, abs=1e-4)


def test_resume_equals_uninterrupted(tmp_path, cache):
    cfg = tiny(cache, recipe="modern", epochs=2, warmup_epochs=1, test=0.0)
    full = tmp_path / "full"
    train(cfg, full, progress=False, resume=False)

    def stop_after_first_epoch(row):
        if row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the real signal path

    part = tmp_path / "part"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(cfg, part, progress=stop_after_first_epoch, resume=False)
    assert [r["epoch"] for r in read_rows(part)] == ["1"]
    assert json.loads((part / "result.json").read_text())["status"] == "interrupted"
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, part, progress=False, resume=False)
    leftover = part / ".last.ckpt.abc123.tmp"  # what kill -9 during a checkpoint write leaves
    leftover.write_bytes(b"half a checkpoint")
    train(cfg, part, progress=False, resume=True)
    assert not leftover.exists()
    a, b = read_rows(full), read_rows(part)
    for r in a + b:
        r.pop("seconds")
    assert a == b
    assert float(a[0]["lr"]) != float(a[1]["lr"])  # the schedule really moved


def test_swin_one_epoch_modern(tmp_path, cache):
    cfg = tiny(cache, model="swin_t", recipe="modern", epochs=1, test=0.0,
               limit_train_batches=2)
    assert cfg.drop_path_rate == 0.2 and cfg.optimizer == "adamw" and cfg.label_smoothing == 0.1
    r = train(cfg, tmp_path / "swin", progress=False, resume=False)
    assert r["status"] == "finished" and r["family"] == "swin"
    assert read_rows(tmp_path / "swin")[0]["train_total"] == "24"  # 2 batches of 12
    assert r["best"]["val"]["total"] == 12 and r["best"]["test"] is None


def test_nan_loss_marks_run_failed(tmp_path, cache, monkeypatch):
    import importlib

    engine_train = importlib.import_module("depthbench.engine.trainer")

    class NanAfterFirstEpoch(torch.nn.CrossEntropyLoss):
        calls = 0

        def forward(self, logits, target):
            NanAfterFirstEpoch.calls += 1
            loss = super().forward(logits, target)
            return loss * float("nan") if NanAfterFirstEpoch.calls > 3 else loss

    monkeypatch.setattr(engine_train.nn, "CrossEntropyLoss", NanAfterFirstEpoch)  # the module
    out = tmp_path / "nan"
    with pytest.raises(RunFailed, match="non-finite") as e:
        train(tiny(cache, epochs=3, test=0.0), out, progress=False, resume=False)  # 3 steps/epoch
    assert e.value.exit_code == 3
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and result["failure"]["epoch"] == 2
    assert torch.load(out / "last.ckpt", weights_only=True)["epoch"] == 1
    assert len(read_rows(out)) == 1


def test_channels_last_default_follows_device_and_size():
    from depthbench.engine.devices import default_channels_last
    from depthbench.models import create_model

    cnn = create_model("resnet18", num_classes=4)
    swin = create_model("swin_t", num_classes=4, img_size=64)
    assert default_channels_last(cnn, "cuda", 32)
    assert default_channels_last(cnn, "cpu", 224) and default_channels_last(cnn, "cpu", 128)
    assert not default_channels_last(cnn, "cpu", 64)
    assert not default_channels_last(swin, "cuda", 64) and not default_channels_last(swin, "cpu", 224)


def test_recipe_drop_path_reaches_the_model():
    # Swin's own default (0.1, as timm's) must not leak into the source recipe's 0.0
    from depthbench.engine.config import TrainConfig
    from depthbench.models import create_model

    def drop_probs(recipe):
        cfg = TrainConfig.for_recipe(recipe, model="swin_t", data="synthetic", img_size=64)
        net = create_model("swin_t", num_classes=4, **cfg.model_kwargs())
        return [getattr(m, "p", 0.0) for n, m in net.named_modules()
                if n.endswith("drop_path1")]

    assert drop_probs("seed") and max(drop_probs("seed")) == 0.0
    assert max(drop_probs("modern")) > 0.0


def test_resume_to_more_epochs(tmp_path, cache, capsys):
    """`train --resume --epochs N` continues a finished constant-lr run exactly as if it had been
    started with N epochs; a run whose lr schedule depends on the total refuses in one line."""
    short, full = tmp_path / "short", tmp_path / "full"
    train(tiny(cache, epochs=1, test=0.0, limit_train_batches=1), short, progress=False, resume=False)
    two = tiny(cache, epochs=2, test=0.0, limit_train_batches=1)
    with pytest.raises(ConfigError, match=r"epochs=1 \(now 2\) \(pass --resume"):
        train(two, short, progress=False, resume=False)
    assert main(["train", "--out", str(short), "--resume", "--epochs", "2", "--quiet"]) == 0
    result = json.loads((short / "result.json").read_text())
    assert result["status"] == "finished" and result["epochs_completed"] == 2
    assert result["config"]["epochs"] == 2
    train(two, full, progress=False, resume=False)
    a, b = read_rows(full), read_rows(short)
    for r in a + b:
        r.pop("seconds")
    assert a == b  # per-epoch seeding: the extension replays what a 2-epoch run trains
    with pytest.raises(ConfigError, match="would shorten it"):
        train(tiny(cache, epochs=1, test=0.0, limit_train_batches=1), short, progress=False, resume=True)

    cosine = tmp_path / "cosine"
    train(tiny(cache, recipe="modern", epochs=1, warmup_epochs=0, test=0.0, limit_train_batches=1), cosine,
          progress=False, resume=False)
    capsys.readouterr()
    assert main(["train", "--out", str(cosine), "--resume", "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cosine lr schedule was laid out over the 1 epochs" in err and "another --out" in err
    assert err.count("\n") == 1
    assert json.loads((cosine / "result.json").read_text())["epochs_completed"] == 1


def test_the_run_trains_and_evaluates_at_its_configured_augmentation_and_view(tmp_path, cache,
                                                                               monkeypatch):
    """The trainer hands the run's crop_scale and trivial_augment to both random stages (the
    batched one and the train split's datasets, their per-image stage where none is batched) and
    its eval_crop to every evaluated split; the checkpoint carries the view, and `evaluate` and
    `predict` look through it."""
    from depthbench.data.sources import open_source
    from depthbench.engine import evaluate, trainer

    seen = []

    def spy(module, name):
        real = getattr(module, name)

        def wrapped(*args, **kwargs):
            crop = args[3] if name == "preprocess_image" else kwargs.get("eval_crop")
            seen.append({**{k: kwargs.get(k) for k in FULL_AUGMENTATION}, "eval_crop": crop})
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapped)

    for module, name in ((trainer, "batch_random_stage"), (trainer, "build_datasets"),
                         (evaluate, "build_datasets"), (evaluate, "preprocess_image")):
        spy(module, name)
    options = {"crop_scale": 0.3, "trivial_augment": False, "eval_crop": 0.6}
    run = tmp_path / "run"
    train(tiny(cache, recipe="modern", epochs=1, warmup_epochs=0, test=0.0, limit_train_batches=1,
               **options), run, progress=False, resume=False)
    # the batched stage; the train, val datasets; the train_eval subset
    assert seen == [{**options, "eval_crop": None}, options,
                    {**dict.fromkeys(FULL_AUGMENTATION), "eval_crop": 0.6}]
    seen.clear()
    evaluate.evaluate_checkpoint(run / "best.safetensors", DATA, "val", cache_dir=cache)
    first = json.loads((run / "split.json").read_text())["entries"][0]["path"]
    evaluate.predict(run / "best.safetensors", [str(open_source(DATA, cache_dir=cache).root / first)])
    assert [s["eval_crop"] for s in seen] == [0.6, 0.6]


def test_a_modern_run_from_before_the_augmentation_options_resumes_as_it_ran(tmp_path, cache):
    """A modern run folder whose config predates `crop_scale`, `trivial_augment` and `eval_crop`
    trained at full strength and evaluated on the published view: `train --resume --epochs N`
    continues it so (not with today's rule for a short run) and does not refuse over the keys it
    lacks."""
    out = tmp_path / "old"
    published = {**FULL_AUGMENTATION, "eval_crop": FULL_EVAL_CROP}
    train(tiny(cache, recipe="modern", epochs=1, scheduler="constant", warmup_epochs=0, test=0.0,
               limit_train_batches=1, **published), out, progress=False, resume=False)
    config = yaml.safe_load((out / "config.yaml").read_text())
    result = json.loads((out / "result.json").read_text())
    for key in published:
        del config[key], result["config"][key]
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    (out / "result.json").write_text(json.dumps(result))
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    resumed = json.loads((out / "result.json").read_text())
    assert resumed["epochs_completed"] == 2
    assert {k: resumed["config"][k] for k in published} == published


def test_train_eval_subset_is_fixed_and_drawn_from_train(cnn_run):
    manifest = Manifest.load(cnn_run[0] / "split.json")
    a, b = train_eval_manifest(manifest), train_eval_manifest(manifest)
    assert a.hash == b.hash  # the same images for every epoch and every run sharing the split
    train = {e.path for e in manifest.entries("train")}
    assert {e.path for e in a.entries("train")} <= train
    assert len(a) == len(manifest.entries("test"))
    labels = lambda entries: sorted(e.label for e in entries)  # noqa: E731
    assert labels(a.entries("train")) == labels(manifest.entries("test"))  # the test's class mix


def test_dihedral_keeps_each_image_up_to_a_symmetry():
    from depthbench.engine.loop import dihedral

    torch.manual_seed(0)
    x = torch.arange(64 * 2 * 3 * 3, dtype=torch.float32).reshape(64, 2, 3, 3)
    y = dihedral(x)
    for i in range(len(x)):
        views = [torch.rot90(v, k, dims=(-2, -1)) for v in (x[i], x[i].flip(-1)) for k in range(4)]
        assert any(torch.equal(y[i], v) for v in views)
    assert not torch.equal(x, y)  # 64 images: some turned or flipped


def test_flips_keep_rows_and_columns():
    from depthbench.engine.loop import flips

    torch.manual_seed(0)
    x = torch.arange(64 * 2 * 3 * 4, dtype=torch.float32).reshape(64, 2, 3, 4)  # not square
    y = flips(x)
    seen = set()
    for i in range(len(x)):
        views = [x[i], x[i].flip(-1), x[i].flip(-2), x[i].flip(-1).flip(-2)]
        matches = [k for k, v in enumerate(views) if torch.equal(y[i], v)]
        assert len(matches) == 1  # one of the four axis-keeping symmetries, never a quarter turn
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}  # 64 images: every symmetry drawn


def test_class_balanced_weights_equalize_classes():
    from types import SimpleNamespace

    from depthbench.engine.trainer import _class_weights

    w = _class_weights(SimpleNamespace(targets=[0, 0, 0, 1]), 2, "cpu")
    assert w.tolist() == pytest.approx([4 / 6, 2.0])  # 3 x 4/6 == 1 x 2


def test_run_without_a_validation_split_keeps_the_last_epoch(tmp_path, cache):
    """--val 0 (a study's `split: {val: 0}` too): no val_* in metrics.csv or the loggers, and
    the last epoch is the one kept."""
    out = tmp_path / "noval"
    result = train(tiny(cache, val=0.0, epochs=2, limit_train_batches=1), out, progress=False,
                   resume=False)
    assert result["status"] == "finished" and result["best_epoch"] == 2
    assert result["best"]["val"] is None and result["best"]["test"]["total"] == 12
    assert {r["val_acc"] for r in read_rows(out)} == {""}
    # and its rerun is a no-op like any finished run's (no val score to format)
    again = train(tiny(cache, val=0.0, epochs=2, limit_train_batches=1), out, progress=False,
                  resume=False)
    assert again["provenance"]["started"] == result["provenance"]["started"]


# --- where batches come from, and checkpoints at a cadence ---------------------------------------

def outcome(run: Path) -> tuple[list[dict], dict]:
    """What must not depend on how a run executed: metrics.csv without times, result.json's
    epochs and evaluations."""
    rows = read_rows(run)
    for r in rows:
        r.pop("seconds")
    result = json.loads((run / "result.json").read_text())
    return rows, {k: result[k] for k in ("status", "epochs_completed", "best_epoch", "best", "last")}


def test_batches_from_device_memory_equal_the_data_loaders(tmp_path, cache):
    """On the CPU the training and evaluation splits feed batches from memory by default;
    `device_memory_mb: 0` takes the DataLoader path (with `workers: 1`, a persistent worker):
    the same run to the bit, random flips included, so a run may resume on either path."""
    kw = dict(test=0.0, flips=True)
    runs = {"device memory": {}, "data loader, 0 workers": {"device_memory_mb": 0},
            "data loader, 1 workers": {"device_memory_mb": 0, "workers": 1}}
    for i, (how, extra) in enumerate(runs.items()):
        result = train(tiny(cache, **kw, **extra), tmp_path / str(i), progress=False, resume=False)
        assert result["provenance"]["batches"] == how
        assert result["provenance"]["tf32"] is False and result["provenance"]["cudnn_benchmark"] is False
    assert outcome(tmp_path / "0") == outcome(tmp_path / "1") == outcome(tmp_path / "2")


HELD = dict(epochs=3, test=0.0, flips=True, checkpoint_every=60.0)  # one flush, after epoch 1


@pytest.fixture(scope="module")
def held_reference(tmp_path_factory, cache) -> Path:
    out = tmp_path_factory.mktemp("held") / "full"
    train(tiny(cache, **HELD), out, progress=False, resume=False)
    return out


def test_a_stop_writes_the_held_epoch_before_a_requeue(tmp_path, cache, held_reference):
    """With a long `checkpoint_every` epoch 2 is held in memory, not written; SIGUSR2 (SLURM's
    warning) during epoch 3 writes it, then hands the signal to the handler it found (inside a
    SLURM job, submitit's requeue), and the resumed run equals the uninterrupted one."""
    part, seen = tmp_path / "part", []

    def requeue(signum, frame):  # stands in for submitit's handler
        seen.append(torch.load(part / "last.ckpt", weights_only=True)["epoch"])

    def on_epoch(row):
        if row["epoch"] == 2:
            assert torch.load(part / "last.ckpt", weights_only=True)["epoch"] == 1  # held
            assert len(read_rows(part)) == 1  # the records say what last.ckpt holds
            os.kill(os.getpid(), signal.SIGUSR2)

    old = signal.signal(signal.SIGUSR2, requeue)
    try:
        with pytest.raises(TrainingInterrupted, match="after epoch 2 of 3"):
            train(tiny(cache, **HELD), part, progress=on_epoch, resume=False)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert seen == [2]  # written before the handler ran
    assert [r["epoch"] for r in read_rows(part)] == ["1", "2"]
    assert json.loads((part / "result.json").read_text())["epochs_completed"] == 2
    train(tiny(cache, **HELD), part, progress=False, resume=True)
    assert outcome(part) == outcome(held_reference)


def test_an_interrupt_inside_the_last_flush_stops_the_run_after_it(
        tmp_path, cache, held_reference, signal_inside_write):
    """Epochs 2 and 3 are held; the flush after the loop writes them, outside the loop's stop
    flag, where a study's worker raises on SIGTERM (its runner died). The signal arrives inside
    last.ckpt: the flush ends first, the run is `interrupted` at epoch 3 (not failed by torch's
    torn zip writer), and resuming it gives the uninterrupted run."""
    part = tmp_path / "part"

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    signal_inside_write("last.ckpt", signal.SIGTERM, nth=2)  # the 1st: epoch 1's flush
    old = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tiny(cache, **HELD), part, progress=False, resume=False)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert torch.load(part / "last.ckpt", weights_only=True)["epoch"] == 3
    assert [r["epoch"] for r in read_rows(part)] == ["1", "2", "3"]
    result = json.loads((part / "result.json").read_text())
    assert (result["status"], result["epochs_completed"]) == ("interrupted", 3)
    assert not list(part.glob(".*.tmp"))
    train(tiny(cache, **HELD), part, progress=False, resume=True)
    assert outcome(part) == outcome(held_reference)


@pytest.mark.slow
def test_kill9_loses_the_held_epochs_and_the_rerun_is_the_same(tmp_path, cache, held_reference):
    """kill -9 after epoch 2 (held in memory, not written): the records on disk all say epoch 1,
    the last flush, and resuming from there gives the uninterrupted run."""
    import subprocess
    import sys

    part = tmp_path / "part"
    cfg = tiny(cache, **HELD)
    args = ["train", "--model", cfg.model, "--data", cfg.data, "--img-size", "32", "--epochs", "3",
            "--batch-size", "12", "--val", "0.25", "--test", "0", "--flips", "--checkpoint-every",
            "60", "--cache-dir", cache, "--accelerator", "cpu", "--quiet", "--out", str(part)]
    proc = subprocess.Popen([sys.executable, "-m", "depthbench", *args], stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    try:
        for line in proc.stderr:
            if line.startswith("epoch 2/3"):
                proc.kill()  # SIGKILL: nothing runs a handler
                break
    finally:
        proc.kill()
        proc.wait()
    assert torch.load(part / "last.ckpt", weights_only=True)["epoch"] == 1
    assert [r["epoch"] for r in read_rows(part)] == ["1"]
    assert json.loads((part / "result.json").read_text())["epochs_completed"] == 1
    assert main(["train", "--out", str(part), "--resume", "--quiet"]) == 0
    assert outcome(part) == outcome(held_reference)
