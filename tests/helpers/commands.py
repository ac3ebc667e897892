"""Running a command's ``main`` as a user does: its exit status, stdout and stderr, and what a one-line error is."""

from __future__ import annotations

import sys

import pytest

from catsdogs.cli import run_cli
from data_prep.cli import main as data_prep_main


def run_command(command_main, argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """A CLI's ``main`` as a user runs it (one-line errors, naming the command's flags): exit status, stdout, stderr."""
    flags = getattr(sys.modules[command_main.__module__], "FLAGS", None)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(command_main, [str(arg) for arg in argv], flags)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def run_data_prep(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        data_prep_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def assert_one_line_error(code, err, *words):
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "error:" in err
    for word in words:
        assert word in err, err
