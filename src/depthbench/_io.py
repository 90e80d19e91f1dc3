"""Atomic file writes and safe loading, used by every layer that writes records.

A write goes to a temporary file in the same folder, is flushed and fsynced, then renamed over the
target: a crash at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from depthbench.errors import CheckpointError, DepthbenchError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        kept = ("the previous version is intact" if path.is_file()  # never opened for writing
                else "there was no previous version")
        raise DepthbenchError(f"could not write {path}: {e.strerror or e}; {kept}") from e
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch  # imported on use: this module is torch-free (the report imports it)

    with atomic_open(path, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as e:  # torch's zip writer hides a failed write (a full disk) behind
            if isinstance(e.__context__, OSError):  # a RuntimeError: report the OSError itself
                raise e.__context__ from None
            raise


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (`.name.*.tmp`) that a killed `atomic_open` left under `folder`.
    Call it only while holding the folder (e.g. a study's lock): a live writer's file would go."""
    removed = []
    for p in Path(folder).rglob(".*.tmp"):
        if p.is_file():
            _remove_quietly(str(p))
            removed.append(p)
    return removed


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """`torch.load(weights_only=True)`: tensors and plain containers only, never code."""
    import torch  # imported on use: this module is torch-free (the report imports it)

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported content"
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain weights file "
            f"(it would run code when unpickled: {first[:160]})"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: not a PyTorch checkpoint or it is damaged "
                              f"({type(e).__name__})") from e


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _remove_quietly(p: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(p)


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
