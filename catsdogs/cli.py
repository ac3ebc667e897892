"""What every command shares: one-line errors and exit codes, help that shows each default once,
flags generated from a settings dataclass, the flags that choose a model, and a quiet TensorFlow.

Commands (``catsdogs/train.py``, ``predict.py``, ...) are thin: they parse flags with these helpers,
call the library and map errors to exit codes with ``run_cli``. This module imports no TensorFlow and
nothing of the library above ``config``, so ``data_prep`` can use it too and ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

from catsdogs.config import DEFAULT_SAVED_MODELS_DIR
from catsdogs.errors import (
    EXIT_INTERRUPTED,
    EXIT_NOTHING_DONE,
    EXIT_OK,
    EXIT_OS_ERROR,
    EXIT_USER_ERROR,
    UserError,
    flag_for,
    os_error_message,
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to a flag's help unless the help already names its default.

    A flag whose default is None says in its help what happens without it; generated setting flags
    write their default into the help themselves (their parser default is SUPPRESS, see below).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "(default" in help_text or action.default in (None, argparse.SUPPRESS) or not action.option_strings:
            return help_text
        default = action.default
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            default = "on" if default else "off"
        return f"{help_text} (default: {default})".strip()


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse's default prints the whole usage block first)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")




class ConsoleHandler(logging.Handler):
    """The library's log records as the commands' lines: INFO on stdout (what a run reports), WARNING and above on
    stderr (skipped files, notices), the message alone. The streams are looked up for each record, so output
    captured or redirected after the set-up (pytest, a notebook) still receives it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 (logging's own rule: a broken stream must not stop the program)
            self.handleError(record)


LIBRARY_LOGGERS = ("catsdogs", "data_prep")


def configure_logging(level: int = logging.INFO) -> None:
    """Show the library's log records as the commands' output (``ConsoleHandler``), once however often called.

    The library only logs (``logging.getLogger(__name__)``); a program that imports it chooses what to show, as
    each command does here before its work."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h, ConsoleHandler)] + [ConsoleHandler()]
        logger.setLevel(level)


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
            flags: Mapping[str, str] | None = None) -> NoReturn:
    """Run ``main(argv)`` with the library's logs shown, and turn the exceptions users cause into one line and an
    exit code. The library's errors name parameters; the line names the command's flags: ``flags`` maps the
    parameters whose flag is not ``errors.flag_for``'s (``{"export_format": "--format"}``)."""
    configure_logging()
    names = dict(flags or {})
    try:
        code = main(argv)
    except UserError as exc:
        print(f"error: {exc.worded(lambda name: names.get(name) or flag_for(name))}", file=sys.stderr)
        code = EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except OSError as exc:  # a full disk, a read-only folder, a long name: the user's to fix, so one line
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        code = EXIT_OS_ERROR
    sys.exit(code or EXIT_OK)


def report_failures(failures: Iterable[object], done: int) -> int:
    """One ``skipped <path>: <why>`` line per bad input on stderr, and the exit status to return.

    A bad input among good ones is not a failure of the command: the status is 0 while ``done`` (the
    inputs processed) is positive, and ``EXIT_NOTHING_DONE`` only when no input could be used.
    """
    failures = list(failures)
    for failure in failures:
        print(f"skipped {failure}", file=sys.stderr)
    if failures and done:
        print(f"{len(failures)} input(s) skipped, {done} processed", file=sys.stderr)
    return EXIT_OK if done or not failures else EXIT_NOTHING_DONE


# ------------------------------------------------------------------------------ flags from settings
def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _argument_type(hint: Any) -> Callable[[str], Any]:
    """The argparse ``type`` for a field's annotation (the config validates the value afterwards)."""
    if typing.get_origin(hint) is typing.Annotated:  # a bounded type (pydantic): the type it bounds
        return _argument_type(typing.get_args(hint)[0])
    if typing.get_origin(hint) is tuple:  # a model option's sizes: typed here, since pydantic keeps what it gets
        item = _argument_type(typing.get_args(hint)[0])

        def items(text: str) -> list[Any]:
            return [item(part) for part in _comma_list(text)]

        items.__name__ = f"comma-separated {getattr(item, '__name__', 'list')}"  # argparse's error names it
        return items
    if typing.get_origin(hint) is list:
        return _comma_list
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
    for simple in (int, float, str):  # the simplest type a flag can carry
        if simple in options:
            return simple
    return str


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    if value is None or value == "":
        return "none"
    return str(value)


def add_settings_arguments(parser: argparse.ArgumentParser, settings: type, prefix: str = "",
                           groups: dict[str, Any] | None = None) -> dict[str, Any]:
    """One flag per field of the ``settings`` dataclass (``image_size`` -> ``--image-size``), grouped.

    Help, group, choices and metavar come from the field's metadata (``catsdogs.config.setting``);
    the help ends with the field's default. Parser defaults are SUPPRESS, so the namespace holds only
    the flags given, and ``settings_from_args`` turns those into the top layer of the resolution.
    Nested settings dataclasses (``augment_params``) contribute their own fields' flags. Returns the
    argument groups by name, so a command can add its own flags to them.
    """
    groups = {} if groups is None else groups
    hints = typing.get_type_hints(settings)
    defaults = settings()
    for item in dataclasses.fields(settings):
        hint, meta = hints[item.name], item.metadata
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            add_settings_arguments(parser, hint, f"{prefix}{item.name}.", groups)
            continue
        if typing.get_origin(hint) is dict:  # model_options: its flags come from the models (add_option_arguments)
            continue
        group = groups.get(meta["group"]) or groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        help_text = meta["help"]
        if "(default" not in help_text:  # a help text may say in words what an empty default means
            help_text += f" (default: {_display(getattr(defaults, item.name))})"
        common = {"dest": prefix + item.name, "default": argparse.SUPPRESS, "help": help_text}
        if hint is bool:
            group.add_argument(flag_for(item.name), action=argparse.BooleanOptionalAction, **common)
        else:
            group.add_argument(flag_for(item.name), type=_argument_type(hint), choices=meta.get("choices"),
                               metavar=meta.get("metavar") or (None if meta.get("choices") else item.name.upper()),
                               **common)
    return groups


def add_option_arguments(parser: argparse.ArgumentParser, group: Any, options: Mapping[str, Any],
                         dest: str = "model_options") -> None:
    """A flag per model option (``models.registry.option_fields``: name -> ``OptionField``), into ``dest.<name>``:
    the models declare their options, and the flags follow (``--alpha``, ``--units``, ...)."""
    for name, option in options.items():
        defaults = {str(_display(option.info.default))}
        default = defaults.pop() if len(option.models) == 1 else "each model's own"
        help_text = f"{option.info.description} (default: {default}; models: {', '.join(option.models)})"
        common = {"dest": f"{dest}.{name}", "default": argparse.SUPPRESS, "help": help_text}
        if option.annotation is bool:
            group.add_argument(flag_for(name), action=argparse.BooleanOptionalAction, **common)
        else:
            group.add_argument(flag_for(name), type=_argument_type(option.annotation), metavar=name.upper(), **common)


def settings_from_args(args: argparse.Namespace, settings: type) -> dict[str, Any]:
    """The settings the flags gave, as a (nested) mapping: the top layer of ``TrainConfig.resolve``."""
    names = {item.name for item in dataclasses.fields(settings)}
    given: dict[str, Any] = {}
    for dest, value in vars(args).items():
        head, _, tail = dest.partition(".")
        if head not in names:
            continue
        if tail:
            given.setdefault(head, {})[tail] = value
        else:
            given[head] = value
    return given


# ------------------------------------------------------------------------------------ choosing a model
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--saved-models-dir`` and ``--unsafe``: how every reading command finds its model."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="PATH",
                       help="a .keras file, or an export: .tflite, .onnx or a SavedModel folder (default: the best "
                            "validation accuracy in --saved-models-dir; see python -m catsdogs.saved)")
    group.add_argument("--saved-models-dir", default=DEFAULT_SAVED_MODELS_DIR, metavar="DIR",
                       help="where to look for a model when --model is not given")
    group.add_argument("--unsafe", action="store_true",
                       help="allow models that contain Python code (Lambda layers); only for files you trust")
