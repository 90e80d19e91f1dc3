"""Atomic file writes and safe loading, used by every layer that writes records.

A write goes to a temporary file in the same folder, is flushed and fsynced, then renamed over the
target: a crash at any moment leaves either the old file or the new one, never a torn one.

A write is also never cut by an interrupt (`held_interrupts`): SIGINT, SIGTERM and SIGUSR2 (the
stop signals of a run, a study's worker and a SLURM job) that arrive while a file is written are
held until the write has ended (renamed, or failed and removed), then handed to the handlers they
would have reached. So a stopped run's checkpoint is whole, and its record says `interrupted`:
an interrupt raised inside torch's zip writer makes it fail with an error of its own, which would
hide the interrupt and record the run as failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from depthbench.errors import CheckpointError, DepthbenchError

# The signals that stop a run: Ctrl-C, SIGTERM (a study's runner stopping its workers, and the
# worker's own watcher when the runner died) and SIGUSR2 (SLURM's warning before a time limit).
HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR2")
                     if hasattr(signal, name))

_held: list[int] | None = None  # the signals held so far, while the main thread holds them


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold HELD_SIGNALS while the block runs; when it ends (however it ends), deliver each one
    that arrived, once, in order of arrival, to the handler it would have reached then
    (`signal.raise_signal`: a handler that raises, raises there, and the delivery ends with it;
    the default action acts there).

    Only the outermost block holds: a flush of several files holds once around all of them, so
    they all say the same epoch. Python runs signal handlers in the main thread only, so that is
    the one thread a write can be interrupted in; elsewhere (and for a signal whose handler was
    installed outside Python) there is nothing to hold.
    """
    global _held
    if _held is not None or threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    found = {}
    try:
        for s in HELD_SIGNALS:
            if signal.getsignal(s) is not None:
                found[s] = signal.signal(s, lambda signum, frame: arrived.append(signum))
        _held = arrived
        yield
    finally:
        _held = None
        for s, handler in found.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(arrived):
            signal.raise_signal(s)


def held_signals() -> tuple[int, ...]:
    """The signals the current `held_interrupts` block holds so far (none outside one)."""
    return tuple(_held or ())


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; rename it over `path` on success. Stop
    signals wait until the file is renamed or removed (`held_interrupts`)."""
    with held_interrupts(), _atomic_open(path, mode, **kwargs) as f:
        yield f


@contextlib.contextmanager
def _atomic_open(path: str | os.PathLike, mode: str, **kwargs: Any) -> Iterator[IO]:
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


# What a file that is not weights looks like, by `weights_format`.
NOT_WEIGHTS = {"empty": "an empty file", "text": "a text file: a YAML, JSON or other config?",
               "other": "neither safetensors nor a torch.save file"}


def weights_format(path: str | os.PathLike) -> str:
    """What a weights file holds, by its first bytes: `safetensors` (an 8-byte header length,
    then the JSON header), `torch` (torch.save's zip archive, or the pickle of an older
    torch.save), else `empty`, `text` or `other` (`NOT_WEIGHTS`). No torch: the command line
    checks a file with it before torch loads."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    # safetensors first: its header length may begin with any byte, the pickle opcode too
    if head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05":
        return "torch"
    return "empty" if not head else "other" if b"\0" in head else "text"


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """`torch.load(weights_only=True)`: tensors and plain containers only, never code."""
    import torch  # imported on use: this module is torch-free (the report imports it)

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    kind = weights_format(path)
    if kind != "torch":  # torch.load's own message would blame unpickling, truncated
        raise CheckpointError(f"cannot read {path}: not a PyTorch (torch.save) file; it is "
                              f"{NOT_WEIGHTS.get(kind, 'a safetensors file')}")
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
