"""Reading one image file: which files are images, how any image becomes RGB, what is wrong with it.

The RGB rule (one rule for every source, the cache and `predict`):
1. EXIF orientation is applied first (`ImageOps.exif_transpose`), so a phone picture stands up.
2. High bit depth grayscale (`I;16*`, `I`) is scaled from the 16-bit range to 8 bits
   (`round(v / 257)`, clipped), not clipped at 255 as `convert("RGB")` would do (a 16-bit PNG would
   come out white). `F` (float) keeps Pillow's convention: values are 0..255, clipped.
3. Anything with transparency (RGBA, LA, La, PA, RGBa, P or L with a transparent colour) is
   composited onto **white**, the background every image viewer shows: the model sees what a person
   sees, and fully transparent pixels do not become an arbitrary colour.
4. Everything else (1, L, P, CMYK, YCbCr, LAB, HSV, RGB) goes through Pillow's `convert("RGB")`.
   Embedded ICC profiles are not applied.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from depthbench.errors import DataError

# Extension (lower case) -> the Pillow formats whose content is right for it. MPO is how Pillow
# names the multi-picture JPEGs many cameras write.
FORMATS_BY_EXT: dict[str, tuple[str, ...]] = {
    ".jpg": ("JPEG", "MPO"),
    ".jpeg": ("JPEG", "MPO"),
    ".jpe": ("JPEG", "MPO"),
    ".png": ("PNG",),
    ".bmp": ("BMP", "DIB"),
    ".gif": ("GIF",),
    ".webp": ("WEBP",),
    ".tif": ("TIFF",),
    ".tiff": ("TIFF",),
    ".ppm": ("PPM",),
    ".pgm": ("PPM",),
}
IMAGE_EXTENSIONS = frozenset(FORMATS_BY_EXT)

_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "La", "PA", "RGBa")


def is_image_name(name: str) -> bool:
    """True for a visible file whose extension (any case) is an image extension."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def to_rgb(img: Image.Image) -> Image.Image:
    """The one RGB rule (module docstring): EXIF orientation, 16-bit scaling, alpha on white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in _HIGH_BIT_MODES:
        a = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8), "L")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        with warnings.catch_warnings():  # "palette images with transparency ..." is this case
            warnings.simplefilter("ignore", UserWarning)
            # La (premultiplied) converts only to LA in Pillow
            rgba = (img.convert("LA") if img.mode == "La" else img).convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode == "RGB":
        return img
    return img.convert("RGB")


def open_rgb(path: str | Path) -> Image.Image:
    """Decode `path` into an RGB image by the module's rule (raises on a bad file)."""
    with Image.open(path) as img:
        img.load()
        return to_rgb(img)


def read_image(path: str | Path) -> Image.Image:
    """`open_rgb` for a user's file: DataError naming the file when it is missing, not an image,
    damaged, or over Pillow's `MAX_IMAGE_PIXELS` (a possible decompression bomb)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image not found: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return open_rgb(p)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{p} has too many pixels (over Pillow's limit of "
                        f"{Image.MAX_IMAGE_PIXELS}): refusing a possible decompression bomb; "
                        "resize it first") from None
    except UnidentifiedImageError:
        raise DataError(f"{p} is not an image Pillow can identify") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError) as e:
        raise DataError(f"cannot decode image {p} ({str(e)[:120] or type(e).__name__}); "
                        "it is damaged or truncated") from None


def image_files(paths: list[str | Path]) -> list[Path]:
    """The files `predict` reads: each file as given, each folder as the image files in it and its
    sub-folders (sorted; hidden files and folders, other extensions and links to folders left
    out, as in a class folder). A folder without one image file is a DataError."""
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            out.append(path)  # a missing or unreadable file is `read_image`'s to name
            continue
        found = []
        for folder, dirs, files in os.walk(path):  # does not follow links to folders
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [Path(folder) / f for f in files if is_image_name(f)]
        if not found:
            raise DataError(f"{path} is a folder without image files "
                            f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        out += sorted(found)
    return out


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Probe:
    """What reading one file found: its content hash, and either its format and size or a problem.

    `kind` is one of: `empty`, `unreadable`, `truncated`, `too_large` (over Pillow's
    `MAX_IMAGE_PIXELS`, a possible decompression bomb), or None for a usable image. `mismatch` names
    the real format when it differs from what the extension says (the image is still usable).
    """

    sha256: str
    kind: str | None = None
    detail: str = ""
    format: str | None = None
    size: tuple[int, int] | None = None
    mode: str | None = None
    mismatch: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is None


def probe(path: str | Path) -> Probe:
    """Read `path` once: hash it and check that it decodes: PNGs by the CRC of every chunk up to
    the end marker (`verify`: no decompression), JPEGs decoded at 1/8 scale (which still reads every
    byte, so a truncated file is found), other formats decoded and converted to RGB.
    Never raises on bad content."""
    path = Path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return Probe(digest, "empty", "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        fmt, size, mode = img.format, img.size, img.mode
        if size[0] * size[1] > (Image.MAX_IMAGE_PIXELS or float("inf")):
            raise Image.DecompressionBombError("too many pixels")
        if fmt == "PNG":
            img.verify()  # every chunk's CRC up to IEND, without decompressing the pixels
        else:
            if fmt in ("JPEG", "MPO"):  # decode at 1/8 scale: still reads every scan
                img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            img.load()
            to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Probe(digest, "too_large", f"too many pixels (over Pillow's limit of "
                                          f"{Image.MAX_IMAGE_PIXELS}): possible decompression bomb")
    except UnidentifiedImageError:
        return Probe(digest, "unreadable", "not an image (Pillow cannot identify its content)")
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
            ZeroDivisionError, MemoryError) as e:
        msg = str(e) or type(e).__name__
        kind = "truncated" if ("truncat" in msg.lower() or isinstance(e, EOFError)) else "unreadable"
        what = "the file ends early" if kind == "truncated" else "cannot be decoded"
        return Probe(digest, kind, f"{what} ({msg[:120]})")
    expected = FORMATS_BY_EXT.get(path.suffix.lower(), ())
    mismatch = fmt if expected and fmt not in expected else None
    return Probe(digest, None, "", fmt, size, mode, mismatch)

