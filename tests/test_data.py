"""The data layer: sources, the RGB rule, splits and manifests, transforms, the decoded cache."""

from __future__ import annotations

import json
import pickle
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ALL_MODES, FLOWERS_COUNTS, MODE_FORMATS, SYNTHETIC, make_image
from depthbench.data.datasets import build_datasets
from depthbench.data.images import to_rgb
from depthbench.data.sources import open_source
from depthbench.data.split import Manifest, make_split, run_manifest
from depthbench.data.transforms import build_transform, normalization, preprocess_image
from depthbench.errors import ConfigError, DataError

# ------------------------------------------------------------------------------ splits


def test_flowers_layout_gives_the_source_study_split(flowers_dir):
    source = open_source(flowers_dir)
    assert source.classes == sorted(FLOWERS_COUNTS)
    assert len(source.files) == sum(FLOWERS_COUNTS.values()) and not source.problems
    m = make_split(source)  # val=0.1, the source study's int(n * 0.1) per class
    assert m.counts() == {"train": 3306, "val": 364, "test": 0}
    assert {c: v["val"] for c, v in m.class_counts().items()} == {
        c: int(n * 0.1) for c, n in FLOWERS_COUNTS.items()}
    assert make_split(source).hash == m.hash  # deterministic for a seed
    other = make_split(source, seed=1)
    assert other.counts() == m.counts() and other.hash != m.hash
    with_test = make_split(source, val=0.1, test=0.2)
    n_test = sum(int(n * 0.2) for n in FLOWERS_COUNTS.values())  # rounded down per class
    assert with_test.counts() == {"train": 3306 - n_test, "val": 364, "test": n_test}
    # entries(split) is ordered by class then path: the order of per-sample predictions
    val = with_test.entries("val")
    assert val == sorted(val, key=lambda e: (e.label, e.path))
    assert not {e.path for e in val} & {e.path for e in with_test.entries("test")}


@pytest.mark.parametrize("val,test", [(1.0, 0.0), (0.5, 0.5), (-0.1, 0.0)])
def test_bad_fractions_are_refused(synthetic_source, val, test):
    with pytest.raises(ConfigError, match=re.escape(f"val = {val:g}") if val != 0.5 else "sum"):
        make_split(synthetic_source, val=val, test=test)


def test_manifest_round_trip_and_changed_files_refused(image_folder, tmp_path):
    root = image_folder({"a": 12, "b": 15})
    source = open_source(root)
    m = make_split(source, val=0.2, test=0.1)
    m.save(tmp_path / "split.json")
    doc = json.loads((tmp_path / "split.json").read_text())
    assert doc["hash"] == m.hash and len(doc["entries"]) == 27
    assert all(not e["path"].startswith("/") and ".." not in e["path"] for e in doc["entries"])
    loaded = Manifest.load(tmp_path / "split.json")
    assert loaded.hash == m.hash and loaded.entries("val") == m.entries("val")
    loaded.verify(open_source(root))  # unchanged: passes

    victim, gone = m.entries("val")[0].path, m.entries("train")[3].path
    (root / victim).write_bytes((root / m.entries("train")[0].path).read_bytes())
    (root / gone).unlink()
    with pytest.raises(DataError) as e:
        loaded.verify(open_source(root))
    msg = str(e.value)
    assert "1 changed" in msg and victim in msg and "1 missing" in msg and gone in msg
    assert "\n" not in msg


def test_manifest_edited_or_unsafe_is_refused(synthetic_source, tmp_path):
    m = make_split(synthetic_source)
    path = tmp_path / "split.json"
    m.save(path)
    doc = json.loads(path.read_text())
    doc["entries"][0]["split"] = "val" if doc["entries"][0]["split"] == "train" else "train"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="hash does not match"):
        Manifest.load(path)
    for evil in ("../x.png", "/etc/passwd", "a/../../x.png"):
        doc = m.to_dict()
        doc["entries"][0]["path"] = evil
        path.write_text(json.dumps(doc))
        with pytest.raises(DataError, match="leaves the data folder"):
            Manifest.load(path)
        with pytest.raises(DataError):
            synthetic_source.load_rgb(evil)
    path.write_text("{not json")
    with pytest.raises(DataError, match="cannot be read"):
        Manifest.load(path)


def test_run_manifest_prefers_the_run_folder_then_the_study_then_a_new_split(
        synthetic_source, tmp_path):
    """The one rule of train, evaluate and analyze: which split a run uses."""
    new = run_manifest(synthetic_source, tmp_path / "fresh", val=0.2, test=0.1, seed=3)
    assert new.hash == make_split(synthetic_source, val=0.2, test=0.1, seed=3).hash
    study = tmp_path / "study-split.json"
    make_split(synthetic_source, val=0.5, seed=1).save(study)
    run = tmp_path / "run"
    assert run_manifest(synthetic_source, run, val=0.2, test=0.1, seed=3,
                        given=study).hash == Manifest.load(study).hash
    run.mkdir()
    make_split(synthetic_source, val=0.3, seed=2).save(run / "split.json")
    own = run_manifest(synthetic_source, run, val=0.2, test=0.1, seed=3, given=study)
    assert own.hash == Manifest.load(run / "split.json").hash


def test_split_keeps_within_class_duplicates_together(image_folder):
    root = image_folder({"a": 30, "b": 30})
    for j in range(10):  # ten copies of one picture in class a
        shutil.copy(root / "a" / "0000.png", root / "a" / f"copy{j}.png")
    m = make_split(open_source(root), val=0.2)
    splits = {e.split for e in m.entries() if e.path.startswith("a/copy") or e.path == "a/0000.png"}
    assert len(splits) == 1 or m.counts()["val"] == 0  # only a group on the boundary straddles


# ------------------------------------------------------------------------------ sources


def test_elpv_loads_2624_images_in_four_classes():
    source = open_source("elpv")
    assert source.classes == ["functional", "possibly_defective", "likely_defective", "defective"]
    assert len(source.files) == 2624 and not source.problems
    counts = np.bincount([f.label for f in source.files])
    assert counts.tolist() == [1508, 295, 106, 715]
    assert {f.meta["cell_type"] for f in source.files} == {"mono", "poly"}
    img = source.load_rgb(source.files[0].path)
    assert img.mode == "RGB" and img.size == (300, 300)


def test_synthetic_is_deterministic_and_configurable(tmp_path):
    a = open_source("synthetic", cache_dir=tmp_path / "c1", n=24, size=10, classes=4, seed=3)
    b = open_source("synthetic:n=24,size=10,classes=4,seed=3", cache_dir=tmp_path / "c2")
    assert a.name == b.name and len(a.classes) == 4 and len(a.files) == 24
    assert [a.sha256(f.path) for f in a.files] == [b.sha256(f.path) for f in b.files]
    assert a.load_rgb(a.files[0].path).size == (10, 10)
    c = open_source("synthetic:n=24,size=10,classes=4,seed=4", cache_dir=tmp_path / "c1")
    assert a.sha256(a.files[0].path) != c.sha256(c.files[0].path)
    with pytest.raises(ConfigError, match="bogus"):
        open_source("synthetic:bogus=1")


def test_synthetic_classes_are_learnable_by_a_small_cnn():
    """A two-layer CNN reaches well above chance (0.25) on held-out images after one epoch at
    32 px (the brief: learnable within 1-3 epochs; measured 1.0 after epoch 1 with seed 0)."""
    source = open_source("synthetic:n=300,size=32,classes=4,seed=0")
    m = make_split(source, val=0.2)
    ds = build_datasets(source, m, "seed", 32, cache_dir=False)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, 4))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(ds["train"], batch_size=16, shuffle=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only add contention on a busy machine
    try:
        for x, y in loader:  # one epoch
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        x, y = next(iter(torch.utils.data.DataLoader(ds["val"], batch_size=len(ds["val"]))))
        acc = (net(x).argmax(1) == y).float().mean().item()
    finally:
        torch.set_num_threads(threads)
    assert acc >= 0.8, acc


def test_hidden_and_non_image_files_are_ignored(image_folder):
    root = image_folder({"a": 3, "b": 3})
    (root / "a" / ".hidden.png").write_bytes((root / "a" / "0000.png").read_bytes())
    (root / "a" / "notes.txt").write_text("x")
    (root / ".git").mkdir()
    (root / "README.md").write_text("x")
    png = bytearray((root / "a" / "0001.png").read_bytes())
    png[len(png) // 2] ^= 0xFF  # a flipped byte inside the data: the chunk's CRC fails
    (root / "b" / "UPPER.PNG").write_bytes(bytes(png))
    (root / "b" / "sub").mkdir()
    shutil.copy(root / "a" / "0002.png", root / "b" / "sub" / "nested.Png")
    source = open_source(root)
    assert source.classes == ["a", "b"]
    assert sorted(f.path for f in source.files if f.label == 1) == [
        "b/0000.png", "b/0001.png", "b/0002.png", "b/sub/nested.Png"]  # nested, any case
    assert [p["path"] for p in source.problems] == ["b/UPPER.PNG"]  # matched, found damaged
    assert set(source.ignored) == {"README.md", "a/notes.txt"}


@pytest.mark.parametrize("layout,needle", [
    (None, "not found"),
    ({}, "no class sub-folders"),
    ({"only": 3}, "only one class"),
    ({"a": 3, "empty": 0}, "empty"),
])
def test_bad_input_is_one_data_error_naming_the_folder(tmp_path, layout, needle):
    root = tmp_path / "mydata"
    if layout is not None:
        root.mkdir()
        for cls, n in layout.items():
            (root / cls).mkdir()
            for j in range(n):
                make_image("RGB", seed=j).save(root / cls / f"{j}.png")
    with pytest.raises(DataError) as e:
        open_source(root).scan()
    msg = str(e.value)
    assert needle in msg and "mydata" in msg and "\n" not in msg


def test_class_with_only_unreadable_files_is_an_error(image_folder):
    root = image_folder({"a": 3})
    (root / "broken").mkdir()
    (root / "broken" / "x.jpg").write_text("not an image")
    with pytest.raises(DataError, match="broken has no usable image"):
        open_source(root).scan()


# ------------------------------------------------------------------------------ the RGB rule


@pytest.mark.parametrize("mode", ALL_MODES)
def test_every_mode_becomes_the_same_rgb_shape(mode, tmp_path):
    img = make_image(mode, size=(7, 5), seed=1)
    assert img.mode == mode
    rgb = to_rgb(img)
    assert rgb.mode == "RGB" and rgb.size == (7, 5)
    x = preprocess_image(img, "seed", 8)
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and torch.isfinite(x).all()
    fmt = MODE_FORMATS[mode]
    if fmt:  # through a file, the way a dataset reads it
        path = tmp_path / f"img.{fmt.lower()}"
        img.save(path, fmt)
        folder = tmp_path / "data"
        for cls in ("a", "b"):
            (folder / cls).mkdir(parents=True)
            shutil.copy(path, folder / cls / path.name)
        source = open_source(folder)
        assert len(source.files) == 2, source.problems
        assert source.load_rgb(source.files[0].path).size == (7, 5)


def test_rgb_rule_values():
    # 16-bit is scaled, not clipped to white
    g16 = Image.frombytes("I;16", (2, 2), np.full(4, 40000, "<u2").tobytes())
    assert to_rgb(g16).getpixel((0, 0)) == (156, 156, 156)
    # transparent pixels are composited on white; opaque ones keep their colour
    rgba = Image.new("RGBA", (2, 1), (10, 20, 30, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    assert [to_rgb(rgba).getpixel((i, 0)) for i in range(2)] == [(255, 255, 255), (10, 20, 30)]
    la = Image.new("LA", (1, 1), (0, 128))
    assert to_rgb(la).getpixel((0, 0)) == (127, 127, 127)
    # EXIF orientation 6 (rotate 90 clockwise): a 4x2 landscape file is a 2x4 portrait picture
    img = Image.new("RGB", (4, 2))
    exif = img.getexif()
    exif[0x0112] = 6
    img.info["exif"] = exif.tobytes()
    rotated = to_rgb(Image.open(_saved_jpeg(img, exif)))
    assert rotated.size == (2, 4)


def _saved_jpeg(img, exif):
    import io

    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    buf.seek(0)
    return buf


def test_one_pixel_image_goes_through_every_stage(image_folder, tmp_path):
    root = image_folder({"a": 2, "b": 2})
    Image.new("RGB", (1, 1), (200, 30, 30)).save(root / "a" / "dot.png")
    source = open_source(root)
    m = make_split(source)
    for recipe in ("source", "modern"):
        ds = build_datasets(source, m, recipe, 8, cache_dir=tmp_path / "cache")
        for i in range(len(ds["train"])):
            x, _ = ds["train"][i]
            assert x.shape == (3, 8, 8)


# ------------------------------------------------------------------------------ transforms


def test_recipes():
    wide = Image.fromarray(np.arange(16 * 8 * 3, dtype=np.uint8).reshape(8, 16, 3))
    seed_train = build_transform("seed", 8, train=True)(wide)
    seed_eval = build_transform("seed", 8, train=False)(wide)
    assert seed_train.shape == seed_eval.shape == (3, 8, 8)
    mean, std = normalization("seed")
    assert mean == std == (0.5, 0.5, 0.5)
    # seed train = Resize(8) + CenterCrop(8): the middle 8x8 of the 16x8 picture, unscaled
    middle = torch.from_numpy(np.array(wide)[:, 4:12]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(seed_train, (middle - 0.5) / 0.5)
    assert not torch.equal(seed_train, seed_eval)  # eval squashes the whole picture
    assert normalization("modern")[0] == (0.485, 0.456, 0.406)
    torch.manual_seed(0)
    modern = build_transform("modern", 8, train=True)
    outs = [modern(wide) for _ in range(4)]
    assert all(o.shape == (3, 8, 8) for o in outs) and not torch.equal(outs[0], outs[1])
    with pytest.raises(ConfigError, match="fancy"):
        build_transform("fancy", 8, train=True)


def test_the_modern_eval_view_keeps_eval_crop_of_the_training_square():
    """eval_crop 1.0 is the training square (the picture resized to s / 0.875) resized to s, what
    a training crop of the whole area shows; the published 0.875, the default, is its central
    s x s; each view caches under its own name."""
    from depthbench.configio import IMG_SIZE_RANGE
    from depthbench.data.transforms import eval_crop_side, pre_transform, resize_size, stage_key

    square = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8))
    training_square = square.resize((9, 9), Image.BILINEAR)
    assert resize_size(8) == 9
    assert np.array_equal(np.array(pre_transform("modern", 8, train=True)(square)),
                          np.array(training_square))
    whole = pre_transform("modern", 8, train=False, eval_crop=1.0)(square)
    assert np.array_equal(np.array(whole), np.array(training_square.resize((8, 8), Image.BILINEAR)))
    published = pre_transform("modern", 8, train=False)(square)
    assert np.array_equal(np.array(published), np.array(training_square)[:8, :8])
    assert stage_key("modern", 224, False) == "resize256-crop224"  # caches made before eval_crop
    # the published crop is img_size at every size, so that view needs no second resize
    assert all(eval_crop_side(s) == s for s in range(IMG_SIZE_RANGE[0], IMG_SIZE_RANGE[1] + 1))
    assert stage_key("modern", 8, False) == stage_key("modern", 8, False, 0.875)
    assert stage_key("modern", 8, False, 1.0) != stage_key("modern", 8, False)
    # the training square does not depend on the eval view
    assert stage_key("modern", 8, True, 1.0) == stage_key("modern", 8, True)


# ------------------------------------------------------------------------------ the cache


@pytest.mark.parametrize("recipe, eval_crop", [("source", None), ("modern", None),
                                               ("modern", 1.0)])
def test_cache_returns_exactly_what_decoding_returns(synthetic_source, tmp_path, recipe, eval_crop,
                                                     monkeypatch):
    import depthbench.data.datasets as D
    from depthbench.data.transforms import pil_to_uint8, pre_transform

    m = make_split(synthetic_source, val=0.2, test=0.1)
    cached = build_datasets(synthetic_source, m, recipe, 12, cache_dir=tmp_path,
                            eval_crop=eval_crop)
    streamed = build_datasets(synthetic_source, m, recipe, 12, memory_budget_mb=0,
                              eval_crop=eval_crop)
    assert set(cached) == {"train", "train_eval", "val", "test"}
    assert all(d.cached for d in cached.values()) and not any(d.cached for d in streamed.values())
    for name in ("train_eval", "val", "test"):  # deterministic: whole items equal
        entries = m.entries("test" if name == "test" else "val" if name == "val" else "train")
        assert len(cached[name]) == len(entries) == len(streamed[name])
        for i, e in enumerate(entries):
            ref = build_transform(recipe, 12, False, eval_crop)(synthetic_source.load_rgb(e.path))
            x, y = cached[name][i]
            assert y == e.label and torch.equal(x, ref) and torch.equal(streamed[name][i][0], ref)
    pre = pre_transform(recipe, 12, train=True)
    for i, e in enumerate(m.entries("train")):  # the train stage before augmentation
        ref = pil_to_uint8(pre(synthetic_source.load_rgb(e.path)))
        assert torch.equal(cached["train"].uint8(i), ref)
    # a second build is warm: nothing is decoded again
    monkeypatch.setattr(D, "decode", lambda *a: pytest.fail("decoded a warm cache"))
    again = build_datasets(synthetic_source, m, recipe, 12, cache_dir=tmp_path,
                           eval_crop=eval_crop)
    assert torch.equal(again["val"][0][0], cached["val"][0][0])


def test_batched_fetch_equals_item_by_item(synthetic_source, tmp_path):
    m = make_split(synthetic_source)
    ds = build_datasets(synthetic_source, m, "seed", 12, cache_dir=tmp_path)
    for name in ("train", "val"):
        idx = [5, 0, 3, 3, 1]
        batch = ds[name].__getitems__(idx)
        for i, (x, y) in zip(idx, batch):
            ref, ref_y = ds[name][i]
            assert torch.equal(x, ref) and y == ref_y
    modern = build_datasets(synthetic_source, m, "modern", 12, cache_dir=tmp_path)["train"]
    torch.manual_seed(0)
    a = modern.__getitems__([0, 1, 2])
    torch.manual_seed(0)
    b = [modern[i] for i in (0, 1, 2)]
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b))  # same random draws, same order


@pytest.mark.parametrize("budget", [None, 0])
def test_uint8_items_normalized_by_the_caller_equal_float_items(synthetic_source, tmp_path, budget):
    m = make_split(synthetic_source)
    f = build_datasets(synthetic_source, m, "seed", 12, cache_dir=tmp_path, memory_budget_mb=budget)
    u = build_datasets(synthetic_source, m, "seed", 12, cache_dir=tmp_path, memory_budget_mb=budget,
                       uint8=True)
    xb, yb = torch.utils.data.default_collate(u["val"].__getitems__([0, 1, 2])
                                              if u["val"].cached else [u["val"][i] for i in range(3)])
    assert xb.dtype == torch.uint8
    ref = torch.stack([f["val"][i][0] for i in range(3)])
    assert torch.equal(u["val"].normalize(xb), ref) and yb.tolist() == f["val"].targets[:3]


def test_cached_dataset_pickles_as_a_path_and_works_with_workers(synthetic_source, tmp_path):
    m = make_split(synthetic_source)
    ds = build_datasets(synthetic_source, m, "modern", 16, cache_dir=tmp_path)["train"]
    assert len(pickle.dumps(ds)) < 20_000  # the images stay in the memory-mapped file
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=True)
    n = 0
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 16, 16) and y.dtype == torch.int64
        n += len(y)
    assert n == len(ds) == m.counts()["train"]


def test_memory_budget_falls_back_to_streaming_with_a_message(synthetic_source, tmp_path, caplog):
    m = make_split(synthetic_source)
    ds = build_datasets(synthetic_source, m, "seed", 16, cache_dir=tmp_path, memory_budget_mb=0.01)
    assert not ds["train"].cached and "streaming instead" in caplog.text
    assert not list(tmp_path.rglob("*.npy"))
    ok = build_datasets(synthetic_source, m, "seed", 16, cache_dir=tmp_path, memory_budget_mb=10)
    assert ok["train"].cached
    only = build_datasets(synthetic_source, m, "seed", 8, cache_dir=tmp_path, splits=("val",))
    assert list(only) == ["val"] and len(list(tmp_path.rglob("*8/*.npy"))) == 1


def test_unwritable_cache_dir_keeps_the_cache_in_memory(synthetic_source, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    m = make_split(synthetic_source)
    ds = build_datasets(synthetic_source, m, "seed", 8, cache_dir=blocker)
    assert ds["val"].cached and ds["val"].path is None and "in memory only" in caplog.text
    assert ds["val"][0][0].shape == (3, 8, 8)


def test_streaming_survives_a_file_broken_mid_training(image_folder, caplog):
    root = image_folder({"a": 5, "b": 5})
    source = open_source(root)
    m = make_split(source, val=0.0)
    ds = build_datasets(source, m, "seed", 4, memory_budget_mb=0)["train"]
    (root / ds.paths[0]).write_bytes(b"gone bad")
    x, y = ds[0]
    assert x.shape == (3, 4, 4) and y == ds.targets[0] and "next image of its class" in caplog.text
    assert ds.paths[0] in caplog.text


def test_read_image_errors_name_the_file(tmp_path, monkeypatch):
    from depthbench.data.images import read_image

    (tmp_path / "t.jpg").write_text("text")
    make_image("RGB", size=(40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for name, needle in (("t.jpg", "not an image"), ("big.png", "too many pixels"),
                         ("nope.png", "not found")):
        with pytest.raises(DataError, match=needle) as e:
            read_image(tmp_path / name)
        assert name in str(e.value)


def test_synthetic_default_name_round_trips(synthetic_source):
    assert open_source(synthetic_source.name).root == synthetic_source.root
    assert synthetic_source.name == SYNTHETIC
