"""The errors a user can cause, and the exit codes every command shares.

A problem the user can fix (a missing file, a bad flag, an odd value in a config file) is a
``UserError`` whose message says what is wrong and how to fix it. The library raises it at any depth;
a command prints it as one line, ``error: <message>``, and exits with ``EXIT_USER_ERROR``, never
with a traceback. This module is the bottom layer: it imports nothing of catsdogs and no TensorFlow.

The library speaks to Python callers, the commands to people at a shell: a message names a parameter through
``parameter(name, value)``, which reads ``top_k=5`` in ``str(error)`` and ``--top-k 5`` where a command prints it
(``UserError.worded``, with the command's own flag for each parameter).
"""

from __future__ import annotations

import errno
import importlib
import re
from collections.abc import Callable
from pathlib import PurePath
from types import ModuleType

EXIT_OK = 0
# Some inputs were bad and skipped (each named on stderr) while others were processed: that is success.
EXIT_NOTHING_DONE = 1  # every input was bad: no result at all (each input named on stderr)
EXIT_USER_ERROR = 2  # nothing could be started: the one-line message says why
EXIT_CHECK_FAILED = 3  # the work was done but failed its own check (an export whose parity check failed)
EXIT_OS_ERROR = 4  # the operating system refused a read or write: a full disk, a read-only folder, a long name
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


_MARK, _PART = "\x1f", "\x1e"  # ASCII's unit and record separators: never in a message's own text
_PARAMETER = re.compile(f"{_MARK}([^{_MARK}{_PART}]+)(?:{_PART}([^{_PART}]*){_PART}([^{_MARK}]*))?{_MARK}")
_NO_VALUE = object()


def parameter(name: str, value: object = _NO_VALUE) -> str:
    """A parameter (and the value given to it) inside a ``UserError``'s message: ``top_k`` or ``top_k=0`` to a
    Python caller, ``--top-k`` or ``--top-k 0`` on a command line (``UserError.worded``)."""
    if value is _NO_VALUE:
        return f"{_MARK}{name}{_MARK}"
    python = repr(str(value)) if isinstance(value, PurePath) else repr(value)
    return f"{_MARK}{name}{_PART}{value}{_PART}{python}{_MARK}"


def flag_for(name: str) -> str:
    """A parameter's flag by the commands' rule: ``top_k`` -> ``--top-k`` (a nested setting by its own name)."""
    return "--" + name.rpartition(".")[2].replace("_", "-")


class UserError(Exception):
    """An error caused by the user's input; its message says what is wrong and how to fix it.

    ``str(error)`` names parameters as Python does; ``worded(flag_of)`` as a command's flags."""

    def __str__(self) -> str:
        return _PARAMETER.sub(lambda m: m[1] if m[2] is None else f"{m[1]}={m[3]}", super().__str__())

    def worded(self, flag_of: Callable[[str], str] = flag_for) -> str:
        """The message with each parameter as ``flag_of(name)`` (and its value after a space)."""
        return _PARAMETER.sub(lambda m: flag_of(m[1]) if m[2] is None else f"{flag_of(m[1])} {m[2]}",
                              super().__str__())


def require_optional(module: str, package: str, purpose: str, fix: str) -> ModuleType:
    """An optional dependency, imported when first needed; a one-line UserError naming ``fix`` when absent."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{purpose} needs {package}, which is not installed; {fix}") from None


def os_error_message(error: OSError) -> str:
    """An operating-system error as one line naming the path and what to do.

    Commands print it instead of a traceback (``cli.run_cli``, exit ``EXIT_OS_ERROR``): the disk is full, a folder is
    read-only, a name is too long or a path vanished are the user's to fix, not bugs. The path is the one the
    failing call named (``error.filename``), which is the most a program can say about where the problem is."""
    path = error.filename
    if isinstance(path, bytes):
        path = path.decode(errors="backslashreplace")
    if path is None:  # a write deep inside a library (Keras's zip, h5py) that did not say which file
        if error.errno == errno.ENOSPC or error.errno == getattr(errno, "EDQUOT", None):
            return "a disk is full (writing a file); free some space or write the outputs to another disk"
        return f"the system refused: {error.strerror or error}; check the paths given and try again"
    where = repr(str(path))
    if error.errno == errno.ENOSPC or error.errno == getattr(errno, "EDQUOT", None):
        return f"the disk holding {where} is full; free some space or write to another disk"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{where} is read-only (or not yours to change); choose a folder you can write to"
    if error.errno == errno.ENAMETOOLONG:
        return f"{where}: the name is too long for its file system; shorten the file or folder name"
    if error.errno == errno.ENOENT:
        return f"{where} does not exist and cannot be made there; check the path (and that no folder was removed)"
    return f"{where}: {error.strerror or error}; check the path and try again"
