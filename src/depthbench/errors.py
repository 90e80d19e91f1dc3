"""User-facing errors.

Anything a user can cause (a missing path, an unknown model, a bad value, an unsafe file) raises a
`DepthbenchError`; the command line prints its message as one line on stderr and exits non-zero,
never with a traceback. The message names the culprit (file, key or value) and says what to do.
"""


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
