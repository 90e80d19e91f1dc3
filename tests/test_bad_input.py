"""The bad-input corpus, each case with its expected outcome, through the real CLI.

Every case ends in one of two ways, never a traceback and never a silent wrong result:
- ERROR: exit code 2 and exactly one non-empty stderr line that names the culprit;
- SKIP: `depthbench data check --json` lists the file in `problems` (path + reason) and does not
  count it, while every readable file (odd modes included) is counted and converted to RGB.

The corpus is generated at test time by `badinput.py` (tiny images, no blobs in the repo). The
commands of this module start two at a time in the background (`CliPool`) and each test waits for
its own; a tiny resnet18 is trained once for the checkpoint cases.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

import badinput as B
from badinput import CliPool, assert_user_error
from conftest import make_image_folder

# ~20 command-line processes, most of them paying the torch + Lightning import: slow as a whole.
pytestmark = pytest.mark.slow

TRAIN = ["--epochs", "1", "--img-size", "16", "--batch-size", "8", "--accelerator", "cpu"]

# case -> (command, expected outcome). `{x}` are paths filled in by the fixture; `{odd}` expands
# to several image paths.
CASES: dict[str, tuple[str, str]] = {
    # --- data check of one folder holding the image-level cases (badinput.ZOO_CASES)
    "zoo": ("data check {zoo} --json",
            "exit 0; truncated/empty/text/bomb/self-symlink listed in problems, not counted; "
            "CMYK, 16-bit, RGBA, palette, 1x1 and non-ASCII files counted; the directory "
            "symlink loop neither hangs nor counts an image twice"),
    # --- folders
    "one_class": ("train --model resnet18 --data {onecls} --out {tmp}/o1",
                  "ERROR naming the folder: a classifier needs at least two classes"),
    "class_with_one_image": ("data check {solo} --json",
                             "exit 0; counts[solo] == 1; int(1 * 0.1) = 0 to val, so it trains"),
    "empty_class_folder": ("data check {hollow} --json",
                           "ERROR naming 'hollow' (no usable image): never a silent class"),
    "no_val_images": ("train --model resnet18 --data {few} --out {tmp}/o7",
                      "5 images a class: int(5 * 0.1) = 0 to val. Trains (best = last epoch, "
                      "as the engine documents)"),
    # --- options
    "unknown_model": ("train --model resnet19 --data {three} --out {tmp}/o2",
                      "ERROR naming resnet19"),
    "negative_lr": ("train --model resnet18 --data {three} --out {tmp}/o3 --lr -0.001",
                    "ERROR naming lr and -0.001"),
    "non_numeric_lr": ("train --model resnet18 --data {three} --out {tmp}/o4 --lr abc",
                       "ERROR naming --lr and abc (argparse, one line)"),
    "swin_untileable_size": ("train --model swin_t --data {three} --out {tmp}/o5 --img-size 100",
                             "ERROR naming 100: 100/4 = 25 patches, 7x7 windows do not tile "
                             "and 25 cannot be merged 2x2"),
    "unknown_study_key": ("run --config {bad_key_yaml} --out {tmp}/s1",
                          "ERROR naming bogus_key"),
    "non_numeric_lr_yaml": ("run --config {bad_lr_yaml} --out {tmp}/s2",
                            "ERROR naming lr and fast"),
    # --- checkpoints (a tiny resnet18 trained on 3 classes)
    "wrong_class_count": ("evaluate {run}/best.safetensors --data {two}",
                          "ERROR naming the class mismatch (3 in the checkpoint, 2 in the data)"),
    "pickle_code_evaluate": ("evaluate {evil} --data {three}",
                             "ERROR naming evil.ckpt; the marker file is never created"),
    "pickle_code_resume": ("train --model resnet18 --data {three} --out {evilrun} --resume",
                           "ERROR naming last.ckpt; the marker file is never created"),
    "pickle_code_pretrained": ("train --model resnet18 --data {three} --out {tmp}/o6 "
                               "--pretrained {evil_legacy}",
                               "ERROR naming evil_legacy.pt; the marker file is never created"),
    "predict_truncated": ("predict {run}/best.safetensors {zoo}/alpha/truncated.jpg",
                          "ERROR naming truncated.jpg"),
    "predict_bomb": ("predict {run}/best.safetensors {zoo}/alpha/bomb.png",
                     "ERROR naming bomb.png (over PIL's pixel limit)"),
    "predict_odd_images": ("predict {run}/best.safetensors {odd} --json",
                           "exit 0; one result per image with finite probabilities; the 16-bit "
                           "gray PNG scored like its 8-bit twin (scaled, not clipped to white)"),
}
# cases that train: the tiny TRAIN options go first on their command line
TRAINS = {"no_val_images", "one_class", "unknown_model", "negative_lr", "non_numeric_lr",
          "swin_untileable_size", "pickle_code_resume", "pickle_code_pretrained"}
# cases that need the trained run: started once it exists

NEEDS_RUN = {"wrong_class_count", "pickle_code_resume", "predict_truncated", "predict_bomb",
             "predict_odd_images"}
# Where a new user could meet a traceback or a wrong word: one line each, run in this process
# (`badinput.run_main`: they stop before training, so no interpreter start to pay for each).
IN_PROCESS: dict[str, tuple[str, str]] = {
    "analyze_device_renamed": ("analyze {run} --device cuda",
                               "ERROR: --device is now --accelerator, named with the value to use"),
    "analyze_without_gpu": ("analyze {run} --accelerator gpu",
                            "ERROR naming gpu (no CUDA GPU), not a 30-line driver traceback"),
    "resume_nothing": ("train --out {tmp}/nowhere --resume",
                       "ERROR: no run to resume in nowhere (not `model: missing`)"),
    "evaluate_a_study_file": ("evaluate {smoke_yaml} --data {three}",
                              "ERROR: not a checkpoint; names best.safetensors and last.ckpt"),
    "evaluate_a_folder": ("evaluate {run} --data {three}",
                          "ERROR: a folder; names best.safetensors and last.ckpt"),
    "run_data_typo": ("run --config {smoke_yaml} --data {tmp}/cels --out {tmp}/s3",
                      "ERROR naming cels; the study folder is not created"),
    "run_without_gpu": ("run --config {gpu_yaml} --out {tmp}/s4",
                        "ERROR naming accelerator gpu before any run; nothing written"),
    "train_a_busy_folder": ("train --model resnet18 --data {three} --out {busy}",
                            "ERROR naming the pid that holds the run folder"),
    "predict_a_folder": ("predict {run}/best.safetensors {three}/a --json",
                         "exit 0; one prediction per image of the folder, in name order"),
    "predict_some_unreadable": ("predict {run}/best.safetensors {three}/b/0000.jpg "
                                "{zoo}/alpha/truncated.jpg --json",
                                "exit 2; one stderr line naming truncated.jpg; the readable image "
                                "predicted, the other an `error` entry"),
}
NO_GPU_CASES = {"analyze_without_gpu", "run_without_gpu"}  # a GPU machine runs these for real

ODD = ["cmyk_jpeg", "png_16bit_gray", "png_16bit_rgb", "rgba_png", "palette_png", "one_pixel",
       "non_ascii_space_path"]


def _smoke_study_yaml(**changes) -> str:
    """The packaged smoke preset with `changes`: `bogus_key` at the top level, anything else as a
    training option under `overrides` (where a study file sets lr, epochs, ...)."""
    from importlib.resources import files

    import yaml

    spec = yaml.safe_load((files("depthbench") / "configs/presets/smoke.yaml").read_text("utf-8"))
    for k, v in changes.items():
        (spec if k == "bogus_key" else spec.setdefault("overrides", {}))[k] = v
    return yaml.safe_dump(spec, sort_keys=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    p = SimpleNamespace(tmp=tmp)
    p.zoo = B.build_zoo(tmp / "zoo")
    jpegs = [("three", {"a": 10, "b": 10, "c": 10}), ("two", {"a": 10, "b": 10}),
             ("onecls", {"only": 10}), ("solo_data", {"a": 10, "b": 10, "solo": 1}),
             ("hollow_data", {"a": 10, "b": 10}), ("few", {"a": 5, "b": 5})]
    for i, (name, counts) in enumerate(jpegs):  # distinct images in every folder
        setattr(p, name.removesuffix("_data"),
                make_image_folder(tmp / name, counts, start=(i + 1) * 10_000, ext=".jpg"))
    (p.hollow / "hollow").mkdir()
    p.run = tmp / "run"
    p.markers = {c: tmp / f"MARKER_{c}" for c in CASES if c.startswith("pickle_code")}
    p.evil = B.pickle_with_code(tmp / "evil.ckpt", p.markers["pickle_code_evaluate"])
    p.evil_legacy = B.raw_pickle_with_code(tmp / "evil_legacy.pt",
                                           p.markers["pickle_code_pretrained"])
    p.evilrun = tmp / "evilrun"
    p.odd = [str(p.zoo / B.ZOO_CASES[c][0] / B.ZOO_CASES[c][1]) for c in ODD]
    # the 8-bit twin of gray16.png (40000 / 257 = 155.6 -> 156): predict must agree on both
    (tmp / "twin").mkdir()
    Image.new("L", (B.SIZE, B.SIZE), 156).save(tmp / "twin" / "gray8.png")
    p.odd.append(str(tmp / "twin" / "gray8.png"))
    p.bad_key_yaml, p.bad_lr_yaml = tmp / "bad_key.yaml", tmp / "bad_lr.yaml"
    p.bad_key_yaml.write_text(_smoke_study_yaml(bogus_key=1), encoding="utf-8")
    p.bad_lr_yaml.write_text(_smoke_study_yaml(lr="fast"), encoding="utf-8")
    p.smoke_yaml, p.gpu_yaml = tmp / "smoke.yaml", tmp / "gpu.yaml"
    p.smoke_yaml.write_text(_smoke_study_yaml(), encoding="utf-8")
    p.gpu_yaml.write_text(_smoke_study_yaml(accelerator="gpu"), encoding="utf-8")
    p.busy = tmp / "busy"

    pool = CliPool(tmp)
    pool.submit("train", ["train", "--model", "resnet18", "--data", p.three, "--out", p.run, *TRAIN])
    # independent commands first, so no worker sits waiting for the training run
    for case in sorted(CASES, key=lambda c: c in NEEDS_RUN):
        if case == "pickle_code_resume":
            continue  # needs the trained run copied first: submitted by its test
        args = _args(CASES[case][0], p, train=case in TRAINS)
        pool.submit(case, args, after="train" if case in NEEDS_RUN else None)
    p.pool = pool
    yield p
    pool.close()


def _args(cmd: str, p: SimpleNamespace, train: bool = False) -> list[str]:
    """Split the command on spaces first, then fill each token (paths may contain spaces).
    `train`: the tiny training options go first, so the case's own options win."""
    out: list[str] = []
    for tok in cmd.split():
        out += p.odd if tok == "{odd}" else [tok.format(**vars(p))]
    return out[:1] + TRAIN + out[1:] if train else out


# ------------------------------------------------------------------------------ the data check

@pytest.fixture(scope="module")
def zoo_check(corpus):
    res = corpus.pool.get("zoo")
    assert res.rc == 0 and "Traceback" not in res.stderr, res
    return json.loads(res.stdout)


def _problem_for(report: dict, name: str) -> dict | None:
    return next((q for q in report["problems"] if Path(q["path"]).name == name
                 or q["path"].endswith(name)), None)


@pytest.mark.parametrize("case", list(B.ZOO_CASES))
def test_zoo_case(zoo_check, case):
    cls, name, readable = B.ZOO_CASES[case]
    problem = _problem_for(zoo_check, name)
    if readable:
        assert problem is None, f"{name} is a valid image but was reported: {problem}"
    else:
        assert problem is not None, f"{name} is unreadable but not in problems: " \
                                    f"{zoo_check['problems']}"
        assert problem["problem"].strip(), problem


def test_zoo_counts_readable_images_once(zoo_check):
    # readable files counted exactly once per class: the alpha/again -> .. loop adds nothing
    assert zoo_check["classes"] == sorted(B.zoo_expected_counts()), zoo_check["classes"]
    assert zoo_check["counts"] == B.zoo_expected_counts(), zoo_check["counts"]
    assert zoo_check["images"] == sum(B.zoo_expected_counts().values())
    assert sum(zoo_check["split"].values()) == zoo_check["images"], zoo_check["split"]
    assert _problem_for(zoo_check, "again") is not None, "the folder loop is not reported"


def test_odd_modes_are_converted_correctly(corpus):
    """16-bit PNGs are scaled to 8 bits, not clipped to white (a silent wrong result)."""
    from depthbench.data.sources import open_source

    src = open_source(str(corpus.zoo))
    gray = src.load_rgb("beta/gray16.png")
    assert gray.mode == "RGB" and gray.size == (B.SIZE, B.SIZE)
    assert all(abs(c - 40000 / 257) <= 2 for c in gray.getpixel((3, 3))), gray.getpixel((3, 3))
    rgb = src.load_rgb("beta/rgb16.png")
    assert all(abs(a - b) <= 1 for a, b in zip(rgb.getpixel((3, 3)), (255, 128, 0)))
    for case in ("cmyk_jpeg", "rgba_png", "palette_png", "one_pixel", "non_ascii_space_path"):
        cls, name, _ = B.ZOO_CASES[case]
        img = src.load_rgb(f"{cls}/{name}")
        assert img.mode == "RGB", (case, img.mode)


def test_class_with_one_image(corpus):
    res = corpus.pool.get("class_with_one_image")
    assert res.rc == 0 and "Traceback" not in res.stderr, res
    report = json.loads(res.stdout)
    assert report["counts"] == {"a": 10, "b": 10, "solo": 1}, report
    assert report["split"]["val"] == 2, report["split"]  # int(10*0.1) + int(10*0.1) + int(1*0.1)
    assert report["split"]["train"] == 19, report["split"]


def test_empty_class_folder(corpus):
    """A class folder without images is an error naming it (a class the model could never
    predict would be silent otherwise)."""
    assert_user_error(corpus.pool.get("empty_class_folder"), "hollow", "no usable image")


def test_no_validation_images(corpus):
    """5 images a class: int(5 * 0.1) = 0 to val. The run trains without validation and its best
    checkpoint is the last epoch (as the engine documents)."""
    res = corpus.pool.get("no_val_images")
    assert res.rc == 0 and "Traceback" not in res.stderr, res
    assert "no validation split" in res.stdout, res
    result = json.loads((corpus.tmp / "o7" / "result.json").read_text(encoding="utf-8"))
    assert result["status"] == "finished" and result["best_epoch"] == 1, result
    assert result["best"]["val"] is None and result["best"]["epoch"] == 1, result["best"]


def test_one_class_folder(corpus):
    assert_user_error(corpus.pool.get("one_class"), "onecls", "class")
    assert not (corpus.tmp / "o1" / "best.safetensors").exists()


# ------------------------------------------------------------------------------ options

@pytest.mark.parametrize("case,needles", [
    ("unknown_model", ["resnet19"]),
    ("negative_lr", ["lr", "-0.001"]),
    ("non_numeric_lr", ["--lr", "abc"]),
    ("swin_untileable_size", ["100"]),
])
def test_bad_option(corpus, case, needles):
    assert_user_error(corpus.pool.get(case), *needles)


@pytest.mark.parametrize("case,needles", [
    ("unknown_study_key", ["bogus_key"]),
    ("non_numeric_lr_yaml", ["lr", "fast"]),
])
def test_bad_study_file(corpus, case, needles):
    assert_user_error(corpus.pool.get(case), *needles)
    out = corpus.tmp / ("s1" if case == "unknown_study_key" else "s2")
    assert not list(out.rglob("*.safetensors")), "a run started despite the bad study file"


# ------------------------------------------------------------------------------ checkpoints

@pytest.fixture(scope="module")
def trained(corpus):
    res = corpus.pool.get("train")
    assert res.rc == 0, res
    assert (corpus.run / "best.safetensors").is_file() and (corpus.run / "last.ckpt").is_file()
    return corpus.run


def test_checkpoint_for_another_class_count(corpus, trained):
    assert_user_error(corpus.pool.get("wrong_class_count"), "class")


@pytest.mark.parametrize("case,needle", [
    ("pickle_code_evaluate", "evil.ckpt"),
    ("pickle_code_pretrained", "evil_legacy.pt"),
    ("pickle_code_resume", "last.ckpt"),
])
def test_pickle_carrying_code_is_refused(corpus, trained, case, needle):
    if case == "pickle_code_resume":
        # a real, unfinished run folder whose last.ckpt was swapped for a malicious one
        shutil.copytree(trained, corpus.evilrun)
        result = json.loads((corpus.evilrun / "result.json").read_text(encoding="utf-8"))
        (corpus.evilrun / "result.json").write_text(json.dumps(result | {"status": "running"}))
        B.pickle_with_code(corpus.evilrun / "last.ckpt", corpus.markers[case])
        corpus.pool.submit(case, _args(CASES[case][0], corpus, train=True))
    res = corpus.pool.get(case)
    assert not corpus.markers[case].exists(), "the pickle's code RAN"
    assert_user_error(res, needle)


def test_pickle_marker_payload_really_runs_code(tmp_path):
    """Proves the corpus file is dangerous: an unsafe load does create the marker."""
    import torch

    marker = tmp_path / "MARKER"
    B.pickle_with_code(tmp_path / "evil.ckpt", marker)
    torch.load(tmp_path / "evil.ckpt", weights_only=False)  # the unsafe call depthbench never makes
    assert marker.exists()


def test_safe_loaders_refuse_code_in_process(tmp_path):
    from depthbench._io import safe_torch_load
    from depthbench.errors import CheckpointError

    for make in (B.pickle_with_code, B.raw_pickle_with_code):
        marker = tmp_path / f"MARKER_{make.__name__}"
        path = make(tmp_path / f"{make.__name__}.ckpt", marker)
        with pytest.raises(CheckpointError, match=path.name):
            safe_torch_load(path)
        try:
            from depthbench.engine.checkpoint import load_model_from_checkpoint
        except ImportError:
            pass
        else:
            with pytest.raises(CheckpointError):
                load_model_from_checkpoint(path)
        assert not marker.exists()


def test_predict_unreadable_images(corpus, trained):
    assert_user_error(corpus.pool.get("predict_truncated"), "truncated.jpg")
    assert_user_error(corpus.pool.get("predict_bomb"), "bomb.png")


def test_predict_odd_images(corpus, trained):
    import math

    res = corpus.pool.get("predict_odd_images")
    assert res.rc == 0 and "Traceback" not in res.stderr, res
    out = json.loads(res.stdout)
    assert len(out) == len(corpus.odd), out
    for item, path in zip(out, corpus.odd):
        assert Path(item["image"]).name == Path(path).name, (item["image"], path)
        probs = [t["prob"] for t in item["top"]]
        assert probs and all(math.isfinite(q) and 0 <= q <= 1 for q in probs), item
        assert {t["class"] for t in item["top"]} <= {"a", "b", "c"}, item
    by_name = {Path(item["image"]).name: item["top"] for item in out}
    g16 = {t["class"]: t["prob"] for t in by_name["gray16.png"]}
    g8 = {t["class"]: t["prob"] for t in by_name["gray8.png"]}
    assert g16.keys() == g8.keys() and all(abs(g16[c] - g8[c]) < 1e-5 for c in g8), \
        f"a 16-bit PNG is not read like its 8-bit twin: {g16} vs {g8}"


# ------------------------------------------------------------------- the in-process cases

def _in_process(corpus, case: str) -> B.Result:
    if case in NO_GPU_CASES:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA GPU is visible: the command would run")
    return B.run_main(_args(IN_PROCESS[case][0], corpus), corpus.tmp)


@pytest.mark.parametrize("case,needles", [
    ("analyze_device_renamed", ["--device cuda", "--accelerator gpu"]),
    ("analyze_without_gpu", ["gpu", "no CUDA GPU"]),
    ("resume_nothing", ["no run to resume", "nowhere"]),
    ("evaluate_a_study_file", ["smoke.yaml", "not a checkpoint", "best.safetensors", "last.ckpt"]),
    ("evaluate_a_folder", ["is a folder", "best.safetensors", "last.ckpt"]),
])
def test_one_line_errors(corpus, trained, case, needles):
    assert_user_error(_in_process(corpus, case), *needles)


@pytest.mark.parametrize("case,needles,folder", [
    ("run_data_typo", ["cels", "not found"], "s3"),
    ("run_without_gpu", ["accelerator", "gpu"], "s4"),
])
def test_a_failed_start_writes_nothing(corpus, case, needles, folder):
    """Checked before anything is written: the corrected command finds no study to differ from."""
    assert_user_error(_in_process(corpus, case), *needles)
    assert not (corpus.tmp / folder).exists()


def test_a_folder_another_trainer_holds_is_refused(corpus):
    from depthbench.engine.runlock import RunLock

    with RunLock(corpus.busy):
        res = _in_process(corpus, "train_a_busy_folder")
    assert_user_error(res, "being trained", f"pid {os.getpid()}")
    assert not corpus.busy.exists()  # nothing trained; the lock, that held nothing, went with it


def test_predict_a_folder(corpus, trained):
    res = _in_process(corpus, "predict_a_folder")
    assert res.rc == 0 and not res.stderr.strip(), res
    out = json.loads(res.stdout)
    assert [Path(o["image"]).name for o in out] == sorted(p.name for p in (corpus.three / "a")
                                                          .iterdir())
    assert all(o["top"] and "error" not in o for o in out), out


def test_predict_reads_what_it_can(corpus, trained):
    res = _in_process(corpus, "predict_some_unreadable")
    assert "Traceback" not in res.stderr and res.rc == 2, res
    assert len(res.lines()) == 1 and "truncated.jpg" in res.lines()[0], res
    good, bad = json.loads(res.stdout)
    assert Path(good["image"]).name == "0000.jpg" and good["top"], good
    assert Path(bad["image"]).name == "truncated.jpg" and "truncated.jpg" in bad["error"], bad
    assert "top" not in bad
