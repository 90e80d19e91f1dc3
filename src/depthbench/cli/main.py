"""The `depthbench` command line: one sub-command per module in this package.

Each `cmd_*.py` module defines `add_arguments(parser)` and `run(args) -> int` and imports its heavy
dependencies inside `run`, so `depthbench --help` stays fast. User errors (`DepthbenchError`) print
one line on stderr and exit non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from depthbench import __version__
from depthbench.errors import DepthbenchError, interrupted

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("depthbench.cli.cmd_models", "list the models with parameters and MACs"),
    "data": ("depthbench.cli.cmd_data", "inspect a dataset (data check DATA)"),
    "train": ("depthbench.cli.cmd_train", "train one model on one dataset"),
    "evaluate": ("depthbench.cli.cmd_evaluate", "evaluate a checkpoint on a split"),
    "predict": ("depthbench.cli.cmd_predict", "classify images with a checkpoint"),
    "plan": ("depthbench.cli.cmd_plan", "a study's design, costs and alternatives, before training"),
    "run": ("depthbench.cli.cmd_run", "run a whole study (the main job)"),
    "analyze": ("depthbench.cli.cmd_analyze", "look inside trained models"),
    "report": ("depthbench.cli.cmd_report", "rebuild a study's report from its records"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (no usage dump) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="depthbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"depthbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip())
        mod.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except DepthbenchError as e:
        print(f"depthbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 0
    except BaseException as e:
        if not interrupted(e):  # a bug: its traceback
            raise
        # Ctrl-C, or what it set off on its way out: named by its first cause
        print("depthbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
