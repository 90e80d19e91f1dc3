"""`depthbench data check`: every kind of bad file reported by name, duplicates, the JSON document."""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest
from PIL import Image

from conftest import make_image
from depthbench.cli.main import main
from depthbench.data.check import check_dataset
from depthbench.data.sources import open_source
from depthbench.data.split import make_split


def _by_path(result: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in result["problems"]:
        out.setdefault(p["path"], []).append(p)
    return out


@pytest.fixture
def messy(image_folder):
    """A folder with one file of every bad kind among 10 good images per class."""
    root = image_folder({"cats": 10, "dogs": 10})
    good = (root / "cats" / "0000.png").read_bytes()
    (root / "cats" / "empty.jpg").write_bytes(b"")
    jpeg = io.BytesIO()
    make_image("RGB", size=(30, 30), seed=5).save(jpeg, "JPEG")
    (root / "cats" / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) * 2 // 3])
    (root / "cats" / "text.png").write_text("hello, I am not a picture\n")
    (root / "dogs" / "really_a_png.jpg").write_bytes(_png(seed=9))
    (root / "dogs" / "big.png").write_bytes(_png(seed=10, size=(40, 40)))  # the 'bomb' (see test)
    os.symlink("nowhere.png", root / "dogs" / "dangling.png")
    os.symlink("self.png", root / "dogs" / "self.png")  # a link loop
    os.symlink("..", root / "dogs" / "up", target_is_directory=True)  # a folder loop
    os.symlink(".", root / "loop")  # a class folder that is the dataset itself
    os.mkfifo(root / "cats" / "pipe.png")  # reading it would block forever
    (root / "dogs" / "notes.txt").write_text("not an image, ignored")
    (root / "dogs" / ".DS_Store").write_bytes(good)
    return root


def _png(seed: int, size=(3, 3)) -> bytes:
    buf = io.BytesIO()
    make_image("RGB", size=size, seed=seed).save(buf, "PNG")
    return buf.getvalue()


def test_every_bad_file_is_reported_by_name_and_left_out(messy, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # big.png (1,600 px) counts as a bomb
    result = check_dataset(str(messy))
    problems = _by_path(result)
    kinds = {path: [p["kind"] for p in ps] for path, ps in problems.items()}
    assert kinds == {
        "cats/empty.jpg": ["empty"],
        "cats/truncated.jpg": ["truncated"],
        "cats/text.png": ["unreadable"],
        "cats/pipe.png": ["not_a_file"],
        "dogs/big.png": ["too_large"],
        "dogs/dangling.png": ["broken_link"],
        "dogs/self.png": ["broken_link"],
        "dogs/really_a_png.jpg": ["extension"],
        "dogs/up": ["folder_link"],
        "loop": ["symlink_loop"],
    }, result["problems"]
    for path in ("cats/empty.jpg", "cats/truncated.jpg", "cats/text.png", "dogs/big.png"):
        assert problems[path][0]["severity"] == "error" and problems[path][0]["problem"]
    assert problems["dogs/really_a_png.jpg"][0]["severity"] == "warning"
    assert result["counts"] == {"cats": 10, "dogs": 11}  # the mislabelled PNG is still used
    assert result["images"] == 21 and result["classes"] == ["cats", "dogs"]
    assert result["split"] == {"train": 19, "val": 2, "test": 0}
    assert result["errors"] == 7
    # left out of every split
    m = make_split(open_source(messy))
    listed = {e.path for e in m.entries()}
    assert not listed & {"cats/empty.jpg", "cats/truncated.jpg", "cats/text.png"}


def test_duplicates_within_across_classes_and_across_splits(image_folder):
    root = image_folder({"a": 20, "b": 20})
    shutil.copy(root / "a" / "0001.png", root / "a" / "again.png")  # within a class
    shutil.copy(root / "a" / "0002.png", root / "b" / "stray.png")  # across classes
    # across splits: copy a validation image of class b into b under a new name (b has 21 now,
    # int(21*0.1) = 2 to val; the copy sorts next to its twin, so pick a twin at the boundary
    # by giving b many copies: the group straddles whatever the order)
    m = make_split(open_source(root))
    val_b = next(e.path for e in m.entries("val") if e.cls == "b")
    for j in range(6):
        shutil.copy(root / val_b, root / "b" / f"twin{j}.png")
    result = check_dataset(str(root))
    kinds = {(p["path"], p["kind"]) for p in result["problems"]}
    assert ("a/again.png", "duplicate_in_class") in kinds or (
        "a/0001.png", "duplicate_in_class") in kinds
    assert ("b/stray.png", "duplicate_across_classes") in kinds
    across = [p for p in result["problems"] if p["kind"] == "duplicate_across_splits"]
    assert across and all(p["severity"] == "warning" for p in across)
    assert any("twin" in p["path"] or p["path"] == val_b or val_b in p["problem"]
               for p in across)


def test_small_and_unbalanced_classes_are_warned(image_folder):
    root = image_folder({"big": 40, "tiny": 3})
    result = check_dataset(str(root), val=0.1, test=0.1)
    kinds = {(p["path"], p["kind"]) for p in result["problems"]}
    assert ("tiny", "class_too_small") in kinds and (".", "unbalanced") in kinds
    assert result["split_counts"]["tiny"] == {"train": 3, "val": 0, "test": 0}


def test_cli_json_is_one_document(image_folder, capsys):
    root = image_folder({"daisy": 63, "dandelion": 89, "roses": 64})  # the flowers at 1/10
    assert main(["data", "check", str(root), "--json", "--test", "0.2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"images", "classes", "counts", "split", "problems"} <= set(doc)
    assert doc["images"] == 216 and doc["classes"] == ["daisy", "dandelion", "roses"]
    assert doc["split"] == {"train": 216 - 20 - 41, "val": 6 + 8 + 6, "test": 12 + 17 + 12}
    assert doc["counts"]["dandelion"] == 89 and doc["problems"] == []


def test_cli_human_table(messy, capsys):
    assert main(["data", "check", str(messy), "--val", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "cats" in out and "total" in out and "cats/truncated.jpg" in out and "error" in out


@pytest.mark.parametrize("args,needle", [
    (["{tmp}/nope"], "not found"),
    (["{tmp}/empty"], "no class sub-folders"),
    (["{tmp}/solo"], "only one class"),
    (["{tmp}/solo", "--val", "1.5"], "--val"),
])
def test_cli_bad_input_is_one_line_without_traceback(tmp_path, capsys, args, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "solo" / "x").mkdir(parents=True)
    make_image().save(tmp_path / "solo" / "x" / "a.png")
    if needle == "--val":
        (tmp_path / "solo" / "y").mkdir()
        make_image(seed=2).save(tmp_path / "solo" / "y" / "b.png")
    code = main(["data", "check", *[a.format(tmp=tmp_path) for a in args], "--json"])
    err = capsys.readouterr()
    assert code == 2 and err.out == ""
    assert needle in err.err and err.err.count("\n") == 1 and "Traceback" not in err.err


def test_the_split_seed_has_one_name(image_folder, capsys):
    """`--split-seed`, as in `train` (where `--seed` seeds the initialisation) and a study's
    `split.seed`; the old `data check --seed` still works, with a notice once the check ran."""
    root = image_folder({"a": 20, "b": 20})
    docs, errs = [], []
    for args in (["--split-seed", "3"], ["--seed", "3"], ["--split-seed", "4"]):
        assert main(["data", "check", str(root), "--json", *args]) == 0
        out = capsys.readouterr()
        docs.append(json.loads(out.out))
        errs.append(out.err)
    assert docs[0] == docs[1] and docs[0]["split_seed"] == 3
    assert docs[2]["manifest_hash"] != docs[0]["manifest_hash"]  # the seed is the split's
    assert errs[0] == errs[2] == "" and "--split-seed" in errs[1] and errs[1].count("\n") == 1
