"""The errors a user can cause, and the exit codes every command shares.

A problem the user can fix (a missing file, a bad flag, an odd value in a config file) is a
``UserError`` whose message says what is wrong and how to fix it. The library raises it at any depth;
a command prints it as one line, ``error: <message>``, and exits with ``EXIT_USER_ERROR``, never
with a traceback. This module is the bottom layer: it imports nothing of catsdogs and no TensorFlow.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXIT_OK = 0
# Some inputs were bad and skipped (each named on stderr) while others were processed: that is success.
EXIT_NOTHING_DONE = 1  # every input was bad: no result at all (each input named on stderr)
EXIT_USER_ERROR = 2  # nothing could be started: the one-line message says why
EXIT_CHECK_FAILED = 3  # the work was done but failed its own check (an export whose parity check failed)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class UserError(Exception):
    """An error caused by the user's input; its message says what is wrong and how to fix it."""


def require_optional(module: str, package: str, purpose: str, fix: str) -> ModuleType:
    """An optional dependency, imported when first needed; a one-line UserError naming ``fix`` when absent."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{purpose} needs {package}, which is not installed; {fix}") from None
