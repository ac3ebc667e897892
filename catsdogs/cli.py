"""What every command-line entry point shares: one-line errors, exit codes, a quiet TensorFlow.

A problem the user can fix (a missing file, a bad flag) is a ``UserError``: the CLI prints one line,
``error: <message>``, and exits with status 2, never a traceback. This module must stay free of
TensorFlow so that ``data_prep`` and ``--help`` start instantly.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import NoReturn

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error caused by the user's input; its message says what is wrong and how to fix it."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse's default prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def quiet_tensorflow() -> None:
    """Import TensorFlow without its C++ start-up chatter (CUDA probing, CPU-feature notices).

    Some of those lines are written before any log level applies, so stderr is captured while
    TensorFlow loads and replayed only if the import fails. ``TF_CPP_MIN_LOG_LEVEL`` set by the
    user wins (0 shows everything).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tensorflow.get_logger().setLevel("ERROR")  # retracing notices and the like are for developers


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``main(argv)`` and turn the exceptions users cause into one line and an exit code."""
    try:
        code = main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code or 0)
