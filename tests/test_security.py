"""Security: no code runs from any file depthbench reads.

- A static scan of `src/` (the syntax tree, not a text grep, so comments and docstrings do not
  count and aliases do): no eval/exec, no pickle/marshal/shelve/dill loads, no unsafe YAML loader,
  `torch.load` only with `weights_only=True` and only in `depthbench/_io.py`, no
  `np.load(allow_pickle=True)`, no shell commands, no Lightning `load_from_checkpoint`.
  The scanner is run on a snippet of every forbidden pattern first, to prove it can fail.
- Manifest paths (`split.json`) that are absolute or contain `..` are refused with a DataError,
  even when the file they point at exists and has the right content hash.
- A pickle carrying code is refused by every loader (see also test_bad_input.py for the CLI).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from conftest import make_image_folder

SRC = Path(__file__).resolve().parents[1] / "src" / "depthbench"

# module -> functions that deserialize arbitrary objects (can run code)
UNSAFE_LOADS = {
    "pickle": {"load", "loads", "Unpickler"},
    "_pickle": {"load", "loads", "Unpickler"},
    "cPickle": {"load", "loads"},
    "dill": {"load", "loads"},
    "cloudpickle": {"load", "loads"},
    "joblib": {"load"},
    "marshal": {"load", "loads"},
    "shelve": {"open"},
    "yaml": {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"},
    "os": {"system", "popen"},
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def scan(source: str, filename: str, torch_load_allowed: bool = False) -> list[str]:
    """Unsafe calls in one module's source, as 'file:line: what' strings."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> module.function it came from
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []

    def bad(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        full = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
        mod, _, fn = full.rpartition(".")
        if full in ("eval", "exec", "builtins.eval", "builtins.exec", "__import__"):
            bad(node, f"{full}() runs text as code")
        elif fn in UNSAFE_LOADS.get(mod, ()):
            bad(node, f"{full}() can run code from the data it reads")
        elif full in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if _dotted(loader).rpartition(".")[2] not in SAFE_YAML_LOADERS:
                bad(node, f"{full}() without a safe Loader (use yaml.safe_load)")
        elif full == "torch.load":
            if not torch_load_allowed:
                bad(node, "torch.load() outside depthbench/_io.py (use _io.safe_torch_load)")
            elif not _is_true(_kw(node, "weights_only")):
                bad(node, "torch.load() without weights_only=True")
        elif fn in ("load", "loads") and mod in ("numpy", "np") and _is_true(_kw(node, "allow_pickle")):
            bad(node, f"{full}(allow_pickle=True)")
        elif fn == "load_from_checkpoint":
            bad(node, "Lightning load_from_checkpoint unpickles hyperparameters")
        elif mod == "subprocess" and _is_true(_kw(node, "shell")):
            bad(node, f"{full}(shell=True)")
    return found


FORBIDDEN_SNIPPET = '''
import pickle, yaml, torch, marshal, os, subprocess
import numpy as np
from pickle import loads as pl
from yaml import full_load
eval("1")
exec("x = 1")
pickle.load(open("f", "rb"))
pl(b"")
marshal.loads(b"")
yaml.load("a: 1")
yaml.load("a: 1", Loader=yaml.Loader)
yaml.unsafe_load("a: 1")
full_load("a: 1")
torch.load("w.pt")
torch.load("w.pt", weights_only=False)
np.load("a.npy", allow_pickle=True)
os.system("true")
subprocess.run("true", shell=True)
Model.load_from_checkpoint("last.ckpt")
'''
SAFE_SNIPPET = '''
import yaml, json, subprocess
# eval( and pickle.load( in a comment are fine
"""torch.load(path) in a docstring is fine too"""
yaml.safe_load("a: 1")
yaml.load("a: 1", Loader=yaml.SafeLoader)
json.loads("{}")
subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True)
model.eval()
'''


def test_scanner_finds_every_forbidden_pattern():
    found = scan(FORBIDDEN_SNIPPET, "snippet.py", torch_load_allowed=True)
    lines = sorted({int(f.split(":")[1]) for f in found})
    expected = [i + 1 for i, ln in enumerate(FORBIDDEN_SNIPPET.splitlines())
                if ln and not ln.startswith(("import", "from"))]
    assert lines == expected, "\n".join(found)
    assert scan("import torch\ntorch.load('w.pt', weights_only=True)\n", "x.py") != []
    assert scan(SAFE_SNIPPET, "safe.py") == []


def test_src_loads_no_code():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10, f"src/depthbench looks empty: {files}"
    found = []
    for f in files:
        rel = f.relative_to(SRC.parent).as_posix()
        found += scan(f.read_text(encoding="utf-8"), rel, torch_load_allowed=rel == "depthbench/_io.py")
    assert not found, "unsafe deserialization or code execution in src/:\n" + "\n".join(found)


# ---------------------------------------------------------------------------- manifest paths

@pytest.fixture
def split_file(tmp_path):
    """A real folder, its saved manifest, and a copy of one image outside the folder (same bytes,
    so a hash check alone would accept it)."""
    from depthbench.data.sources import open_source
    from depthbench.data.split import make_split

    root = make_image_folder(tmp_path / "data", {"a": 10, "b": 10}, ext=".jpg")
    source = open_source(str(root))
    manifest = make_split(source, val=0.1, seed=0)
    path = tmp_path / "split.json"
    manifest.save(path)
    victim = source.files[0].path
    shutil.copy(root / victim, tmp_path / "outside.jpg")
    return source, path, victim


@pytest.mark.parametrize("evil", ["../outside.jpg", "{tmp}/outside.jpg", "a/../../outside.jpg"])
def test_manifest_paths_outside_the_data_root_are_refused(split_file, tmp_path, evil):
    """The tampered manifest is self-consistent (its hash recomputed), so only the path rule can
    refuse it; the file it points at exists with the listed content hash."""
    import dataclasses

    from depthbench.data.split import Manifest
    from depthbench.errors import DataError

    source, path, victim = split_file
    evil = evil.format(tmp=tmp_path)
    m = Manifest.load(path)
    entries = [dataclasses.replace(e, path=evil) if e.path == victim else e
               for e in m.entries("all")]
    assert [e.path for e in entries].count(evil) == 1
    Manifest(m.classes, entries, m.data, m.val, m.test, m.seed).save(path)
    with pytest.raises(DataError, match="outside.jpg"):
        Manifest.load(path).verify(source)
    with pytest.raises(DataError, match="outside.jpg"):
        source.load_rgb(evil)  # the second wall: a source never opens a path outside its root
