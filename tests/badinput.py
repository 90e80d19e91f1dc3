"""Build the bad-input corpus into a folder at test time (no binary blobs in the repo),
and run the real command line (`python -m depthbench`) from tests.

Every builder writes one file (or folder) and returns its path. Images are a few pixels of seeded
noise, so two files never share content (a duplicate would be a separate `data check` problem).
`build_zoo(root)` lays out the image-level cases as one image folder; the table of expected
outcomes lives next to the tests in `test_bad_input.py`.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import struct
import subprocess
import sys
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import make_image_folder

SIZE = 16  # pixels: every readable image in the corpus is tiny


def _noise(seed: int, mode: str = "RGB", size: int = SIZE) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
    return Image.fromarray(rng.integers(0, 256, (size, size, channels), dtype=np.uint8), mode)


def good_jpeg(path: Path, seed: int, size: int = SIZE) -> Path:
    _noise(seed, size=size).save(path, "JPEG", quality=90)
    return path


def good_png(path: Path, seed: int, size: int = SIZE) -> Path:
    _noise(seed, size=size).save(path, "PNG")
    return path


def truncated_jpeg(path: Path, seed: int = 101) -> Path:
    """A real JPEG cut after 60% of its bytes: `Image.open` succeeds, decoding fails."""
    good_jpeg(path, seed, size=64)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def text_named_jpg(path: Path) -> Path:
    path.write_text("this is a text file, not a JPEG\n", encoding="utf-8")
    return path


def cmyk_jpeg(path: Path, seed: int = 102) -> Path:
    _noise(seed, "CMYK").save(path, "JPEG", quality=90)
    return path


def gray16_png(path: Path, value: int = 40000) -> Path:
    """A 16-bit grayscale PNG of one value (Pillow opens it in mode I;16 / I, range 0..65535).

    A loader that calls `.convert("RGB")` on it clips every pixel to 255 (white), a silent wrong
    result; a correct one scales to 8 bits: `value / 257` (about 156 for 40000).
    """
    _write_png(path, SIZE, SIZE, bit_depth=16, color_type=0,
               rows=[struct.pack(f">{SIZE}H", *([value] * SIZE))] * SIZE)
    return path


def rgb16_png(path: Path, rgb: tuple[int, int, int] = (65535, 32896, 0)) -> Path:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one, so it is built by hand)."""
    _write_png(path, SIZE, SIZE, bit_depth=16, color_type=2,
               rows=[struct.pack(f">{3 * SIZE}H", *(list(rgb) * SIZE))] * SIZE)
    return path


def rgba_png(path: Path, seed: int = 103) -> Path:
    _noise(seed, "RGBA").save(path, "PNG")
    return path


def palette_png(path: Path, seed: int = 104) -> Path:
    """A palette (mode P) PNG with a transparent entry, which Pillow warns about on convert."""
    img = _noise(seed).quantize(colors=16)
    img.info["transparency"] = 0
    img.save(path, "PNG", transparency=0)
    return path


def bomb_png(path: Path, side: int = 30_000) -> Path:
    """A PNG whose header declares side x side pixels (9e8 by default, ten times PIL's limit).

    Only the header and a few bytes of data are written: the file is tiny, the declared image is
    not. Pillow refuses it with DecompressionBombError on open (over twice the limit).
    """
    _write_png(path, side, side, bit_depth=8, color_type=2, rows=[b""], raw=True)
    return path


def one_pixel_png(path: Path) -> Path:
    Image.new("RGB", (1, 1), (200, 30, 30)).save(path, "PNG")
    return path


def symlink_self_loop(path: Path) -> Path:
    """`path -> path`: stat() fails with ELOOP (too many levels of symbolic links)."""
    os.symlink(path.name, path)
    return path


def symlink_dir_loop(path: Path, target: str = "..") -> Path:
    """A directory symlink pointing at an ancestor: a naive recursive walk never ends."""
    os.symlink(target, path, target_is_directory=True)
    return path


class _RunsCode:
    """Unpickling this calls os.system(cmd): the classic malicious checkpoint."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def pickle_with_code(path: Path, marker: Path) -> Path:
    """A torch file (torch.save's zip format) whose unpickling would `touch marker`.

    The payload sits inside an ordinary-looking checkpoint dict, next to a real tensor.
    """
    import torch

    obj = {"state_dict": {"fc.weight": torch.zeros(2, 2)}, "epoch": 1,
           "payload": _RunsCode(f"touch '{marker}'")}
    torch.save(obj, path)
    return path


def raw_pickle_with_code(path: Path, marker: Path) -> Path:
    """The same payload as a bare pickle (the pre-zip torch format)."""
    with open(path, "wb") as f:
        pickle.dump({"payload": _RunsCode(f"touch '{marker}'")}, f, protocol=2)
    return path


def _write_png(path: Path, width: int, height: int, *, bit_depth: int, color_type: int,
               rows: list[bytes], raw: bool = False) -> None:
    """A minimal PNG writer (signature, IHDR, IDAT, IEND); `raw` writes rows' bytes as given."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = zlib.compress(b"".join(rows) if raw else b"".join(b"\x00" + r for r in rows))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- image folders

# The zoo: one image folder with every image-level case. (class, file) -> (builder, readable).
# `readable` is the expected outcome: True = counted as an image (converted to RGB like any other),
# False = listed in `data check`'s problems with its path, never counted, never a crash.
ZOO_CASES: dict[str, tuple[str, str, bool]] = {
    # case id:         (class folder, file name, readable)
    "truncated_jpeg": ("alpha", "truncated.jpg", False),
    "empty_file": ("alpha", "empty.jpg", False),
    "text_as_jpg": ("alpha", "text.jpg", False),
    "decompression_bomb": ("alpha", "bomb.png", False),
    "symlink_self_loop": ("alpha", "loop.jpg", False),
    "cmyk_jpeg": ("beta", "cmyk.jpg", True),
    "png_16bit_gray": ("beta", "gray16.png", True),
    "png_16bit_rgb": ("beta", "rgb16.png", True),
    "rgba_png": ("beta", "rgba.png", True),
    "palette_png": ("beta", "palette.png", True),
    "one_pixel": ("beta", "tiny.png", True),
    "non_ascii_space_path": ("gämma ünïcode", "ímage 1 ñ.jpg", True),
}
ZOO_GOOD_PER_CLASS = 4  # plain readable images in every class, besides the cases


def build_zoo(root: Path) -> Path:
    """Lay out ZOO_CASES as one image folder under `root` (three classes, plus a directory
    symlink loop inside `alpha`)."""
    root.mkdir(parents=True, exist_ok=True)
    for i, cls in enumerate(sorted({c for c, _, _ in ZOO_CASES.values()})):
        make_image_folder(root, {cls: ZOO_GOOD_PER_CLASS}, start=(i + 1) * 10_000, ext=".jpg")
    builders = {
        "truncated_jpeg": truncated_jpeg, "empty_file": empty_file, "text_as_jpg": text_named_jpg,
        "decompression_bomb": bomb_png, "symlink_self_loop": symlink_self_loop,
        "cmyk_jpeg": cmyk_jpeg, "png_16bit_gray": gray16_png, "png_16bit_rgb": rgb16_png,
        "rgba_png": rgba_png, "palette_png": palette_png, "one_pixel": one_pixel_png,
        "non_ascii_space_path": lambda p: good_jpeg(p, 999),
    }
    for case, (cls, name, _) in ZOO_CASES.items():
        builders[case](root / cls / name)
    symlink_dir_loop(root / "alpha" / "again")  # alpha/again -> .. (the zoo itself)
    return root


def zoo_expected_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for cls, _, readable in ZOO_CASES.values():
        counts.setdefault(cls, ZOO_GOOD_PER_CLASS)
        counts[cls] += int(readable)
    return counts


# --------------------------------------------------------------------------- the command line
# One process per command, as a user runs it. Commands of a module can be started together
# (`CliPool`): each pays the import of torch, so two at a time halve the wall time on 2 cores.


@dataclass(repr=False)
class Result:
    args: list[str]
    rc: int
    stdout: str
    stderr: str

    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return (f"$ depthbench {' '.join(self.args)}\nexit {self.rc}\n--- stdout\n"
                f"{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}")


def cli_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["DEPTHBENCH_CACHE"] = str(tmp / "cache")
    env["PYTHONIOENCODING"] = "utf-8"
    env.pop("PYTHONWARNINGS", None)
    return env


def run_cli(args: list[str], tmp: Path, timeout: float = 180, cwd: Path | None = None) -> Result:
    p = subprocess.run([sys.executable, "-m", "depthbench", *map(str, args)], capture_output=True,
                       text=True, encoding="utf-8", errors="replace", timeout=timeout,
                       env=cli_env(tmp), cwd=cwd or tmp)
    return Result([str(a) for a in args], p.returncode, p.stdout, p.stderr)


def run_main(args: list, tmp: Path) -> Result:
    """The same command in this process (`depthbench.cli.main.main`, stdout and stderr captured),
    for cases that stop before training: no interpreter and no torch import to pay for each."""
    from depthbench.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(tmp):
        rc = main([str(a) for a in args])
    return Result([str(a) for a in args], rc, out.getvalue(), err.getvalue())


class CliPool:
    """Start commands in the background (two at a time); `.get(key)` waits for one."""

    def __init__(self, tmp: Path, workers: int = 2):
        self.tmp = tmp
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.futures: dict[str, Future] = {}

    def submit(self, key: str, args: list, timeout: float = 180, after: str | None = None) -> None:
        dep = self.futures.get(after) if after else None

        def job() -> Result:
            if dep is not None:
                dep.result()
            return run_cli(args, self.tmp, timeout=timeout)

        self.futures[key] = self.pool.submit(job)

    def get(self, key: str) -> Result:
        return self.futures[key].result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def assert_user_error(res: Result, *needles: str, rc: int = 2) -> str:
    """A user error: exit code `rc`, exactly one non-empty stderr line, no traceback, naming
    every needle (case-insensitive). Returns the line."""
    assert "Traceback" not in res.stderr, res
    lines = res.lines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}\n{res}"
    assert res.rc == rc, res
    for n in needles:
        assert n.lower() in lines[0].lower(), f"{n!r} not named in the error\n{res}"
    return lines[0]
