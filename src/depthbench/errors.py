"""User-facing errors.

Anything a user can cause (a missing path, an unknown model, a bad value, an unsafe file) raises a
`DepthbenchError`; the command line prints its message as one line on stderr and exits non-zero,
never with a traceback. The message names the culprit (file, key or value) and says what to do.
"""

import difflib
from collections.abc import Iterable


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """` (did you mean <choice>?)` for the valid choice closest to a misspelt `word` (difflib's
    similarity, case and spaces aside), or "" when none is close: the hint of every error that
    names an unknown model, key or option."""
    close = difflib.get_close_matches(str(word).strip().lower(), list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class DepthbenchError(Exception):
    """An error caused by the user's input, reported as one line."""

    exit_code = 2


class ConfigError(DepthbenchError):
    """A bad option, key or value in a config file or on the command line."""


class DataError(DepthbenchError):
    """A missing, empty or unusable dataset, or a manifest that no longer matches the files."""


class CheckpointError(DepthbenchError):
    """A checkpoint that cannot be loaded safely or does not fit the model."""


class RunFailed(DepthbenchError):
    """A training run stopped for a reason recorded in its result.json (NaN loss, ...)."""

    exit_code = 3


class StudyInterrupted(DepthbenchError):
    """Ctrl-C or SIGTERM stopped a study; finished runs are kept, started ones resume."""

    exit_code = 130


class StopSignal(Exception):
    """A stop signal (Ctrl-C, SIGTERM, SIGUSR2) seen by a loop that stops cleanly at its next
    step: an interrupt, not a fault of the run."""


def first_cause(exc: BaseException) -> BaseException:
    """The exception a chain started with: `__cause__` (`raise ... from`), else `__context__`
    (raised while handling), followed to the end (`from None` hides a context from the
    traceback, not from this)."""
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def interrupted(exc: BaseException) -> bool:
    """Whether `exc` is named by an interrupt: its chain starts with `KeyboardInterrupt` (Ctrl-C,
    a stop signal's handler) or a `StopSignal`. Whatever the interrupt set off on its way out (a
    writer that failed because it was cut, a cleanup that raised) is not a fault of the run: the
    run was stopped, and is recorded and reported as interrupted, never as failed."""
    return isinstance(first_cause(exc), KeyboardInterrupt | StopSignal)
