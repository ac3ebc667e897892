"""Every file the app writes: whole or absent, never over an input, never outside the folders the user chose.

- **Atomic writes.** A file is written to a temporary name in its own folder, then renamed over the
  final name with ``os.replace``: a reader, or a ``kill -9``, sees the old file or the new one, never
  half of one. Only final artefacts (saved models, exports) are also fsynced, so that they survive a
  power cut; files rewritten every epoch are not (fsync costs tens of milliseconds each).
- **New names, never replaced ones.** ``publish_versioned`` gives a finished file the first free name
  of ``name``, ``name-2``, ``name-3`` ... with a hard link, which fails when the name exists: two runs
  finishing together each get their own name, and no model silently replaces another.
- **Output folders.** ``claim_output_dir`` accepts a new or empty folder, or one catsdogs wrote before
  (it holds the ``.catsdogs-output`` marker), and refuses any other: results never land among a user's
  files. ``check_output_file`` refuses an output file that is one of the inputs, a folder, or an
  existing file (unless ``force``).

And what native libraries print: ``captured_native_output`` holds the lines C++ code writes straight to
the process's stdout and stderr (TensorFlow's start-up, the TFLite converter, LiteRT's delegate notice),
showing them only if the work fails.

This module imports nothing of catsdogs but the errors, so every layer can write through it.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.errors import UserError, parameter

TEMP_PREFIX = ".tmp-"  # temporary files start with this, so listings skip them and cleanup can find them
OUTPUT_MARKER = ".catsdogs-output"  # in a folder catsdogs writes results to


NAME_MAX = 255  # bytes in one file name on the common file systems (ext4, APFS, NTFS in UTF-16 units)


def temporary_path(path: str | Path) -> Path:
    """A fresh hidden name beside ``path`` ending like it (``.tmp-1a2b-best.weights.h5``): Keras checks suffixes.

    The name never grows past ``NAME_MAX``: the middle of a long name gives way, its ending stays, so a file whose
    own name fits can always be written."""
    path = Path(path)
    prefix = f"{TEMP_PREFIX}{secrets.token_hex(4)}-"
    return path.with_name(prefix + fitted_name(path.name, NAME_MAX - len(prefix)))


def fitted_name(name: str, limit: int = NAME_MAX) -> str:
    """``name`` in at most ``limit`` bytes (UTF-8): unchanged when it fits, else its start, a hash of the whole (so
    two long names stay two) and its last 40 bytes (the suffixes that say what a file is), joined by ``~``."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= limit:
        return name
    tail = encoded[-40:].decode("utf-8", "ignore")
    digest = hashlib.sha256(encoded).hexdigest()[:8]
    room = limit - len(tail.encode()) - len(digest) - 2
    return f"{encoded[:room].decode('utf-8', 'ignore')}~{digest}~{tail}"


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(path: Path) -> None:
    """Make a rename in ``path`` durable: POSIX fsyncs the folder. Windows cannot open a folder as a file (it has
    no ``os.O_DIRECTORY``) and its file systems journal renames themselves, so there it does nothing."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one step, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        yield temporary
        if fsync:
            _fsync(temporary)
        os.replace(temporary, path)
        if fsync:
            _fsync_folder(path.parent)  # the rename itself
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


@contextmanager
def staged_files(folder: str | Path) -> Iterator[Path]:
    """A hidden folder inside ``folder`` to write a set of files in (a report). On success each file moves into
    ``folder``; on any failure the whole set is removed. Either the set is there, complete, or none of it is: a later
    command never reads a report that stopped half-way (a full disk after five of eight files)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))
    try:
        yield stage
        for item in sorted(stage.iterdir()):
            os.replace(item, folder / item.name)  # renames within one folder: they need no new space
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def captured_native_output(descriptors: Sequence[int] = (1, 2)) -> Iterator[None]:
    """Send file descriptors 1 and 2 to a temporary file for the block; replay it on stderr if the block fails.

    Native code writes to the descriptors, not to ``sys.stdout``, so only redirecting them silences it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {descriptor: os.dup(descriptor) for descriptor in descriptors}
    with tempfile.TemporaryFile() as captured:
        for descriptor in descriptors:
            os.dup2(captured.fileno(), descriptor)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for descriptor, original in saved.items():
                os.dup2(original, descriptor)
                os.close(original)
            if failed:
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))


def write_bytes(path: str | Path, data: bytes, fsync: bool = False) -> Path:
    with atomic_path(path, fsync) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, fsync: bool = False) -> Path:
    return write_bytes(path, text.encode(), fsync)


def json_text(value: object, indent: int | None = 2) -> str:
    """``value`` as standard JSON: a NaN or an infinity becomes ``null`` (Python writes a bare ``NaN``, which no
    other JSON reader accepts), NumPy scalars become numbers, anything else unknown its ``str``."""
    return json.dumps(_finite(value), indent=indent, default=str, allow_nan=False)


def _finite(value: object) -> object:
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def write_json(path: str | Path, value: object, fsync: bool = False) -> Path:
    return write_text(path, json_text(value) + "\n", fsync)


def save_array(path: str | Path, array: Any) -> Path:
    """``numpy.save`` through a temporary file."""
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.save(handle, array)
    return Path(path)


def publish_versioned(source: str | Path, directory: str | Path, stem: str, suffix: str) -> Path:
    """Copy ``source`` into ``directory`` under the first free name ``stem``, ``stem-2``, ... (+ ``suffix``).

    The copy is written and fsynced under a temporary name, then linked to its final name; ``os.link``
    fails if the name exists, so the claim is exclusive, and the name appears only once the file is whole.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(directory / f"{stem}{suffix}")
    try:
        shutil.copyfile(source, temporary)
        _fsync(temporary)
        for index in count(1):
            target = directory / (f"{stem}{suffix}" if index == 1 else f"{stem}-{index}{suffix}")
            try:
                os.link(temporary, target)
            except FileExistsError:
                continue
            except OSError:  # a filesystem without hard links: claim the name empty, then fill it in one step
                try:
                    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    continue
                os.replace(temporary, target)
            _fsync_folder(directory)
            return target
    finally:
        temporary.unlink(missing_ok=True)
    raise AssertionError("unreachable")  # count() never ends


def new_folder(parent: str | Path, name: str) -> Path:
    """Create ``parent/name`` exclusively, or ``name-2``, ``name-3`` ... when taken (by a concurrent run, say)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for index in count(1):
        folder = parent / (name if index == 1 else f"{name}-{index}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")


def replace_empty_folder(finished: str | Path, reserved: str | Path) -> None:
    """Move a folder written under a hidden temporary name onto ``reserved``, an empty folder that holds its name
    (``new_folder``), so that a reader finds it whole or not at all. POSIX replaces an empty folder in one rename;
    Windows cannot, so there the empty one goes first."""
    try:
        os.replace(finished, reserved)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EACCES) or any(Path(reserved).iterdir()):
            raise
        os.rmdir(reserved)
        os.replace(finished, reserved)


def _resolved(paths: Iterable[str | Path]) -> set[Path]:
    return {Path(p).resolve() for p in paths}


def check_apart(path: str | Path, inputs: Iterable[str | Path], name: str = "output",
                may_hold_inputs: bool = False) -> None:
    """Refuse an output folder that is one of ``inputs``, lies inside an input folder, or (unless ``may_hold_inputs``:
    outputs that go into new sub-folders of their own) holds an input: results among the images would be read back
    as data (a run folder inside ``train/`` becomes a third class)."""
    resolved = Path(path).resolve()
    for source in sorted(_resolved(inputs)):
        inside = source.is_dir() and source in resolved.parents
        holds = not may_hold_inputs and resolved in source.parents
        if source == resolved or inside or holds:
            raise UserError(f"{parameter(name, path)} overlaps the input {source}; choose a folder apart from the "
                            "inputs")


def claim_output_dir(path: str | Path, inputs: Iterable[str | Path] = (), name: str = "output") -> Path:
    """``path`` as a folder for results: created if new; refused if it is a file or holds files catsdogs did not write.

    ``inputs`` (the files and folders a command reads) must not lie in it, nor it in them: results
    would sit among the inputs, and the next run would read them as inputs. ``name``: the parameter an
    error names.
    """
    path = Path(path)
    given = parameter(name, path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{given} is a file; give a folder (a new one, or one catsdogs wrote before)")
    check_apart(path, inputs, name)
    if path.is_dir() and not (path / OUTPUT_MARKER).exists() and any(path.iterdir()):
        raise UserError(f"{given} holds files catsdogs did not write; choose a new or empty folder")
    path.mkdir(parents=True, exist_ok=True)
    (path / OUTPUT_MARKER).touch()
    return path


def check_output_file(path: str | Path, inputs: Iterable[str | Path] = (), name: str = "output",
                      force: bool = False) -> Path:
    """``path`` as a new output file: refused if it is a folder, one of the ``inputs``, or exists (unless ``force``).
    ``name``: the parameter an error names."""
    path = Path(path)
    given = parameter(name, path)
    if path.is_dir():
        raise UserError(f"{given} is a folder; give a file name, e.g. {path / 'submission.csv'}")
    if path.resolve() in _resolved(inputs):
        raise UserError(f"{given} is one of the inputs; give a new file name")
    if path.exists() and not force:
        raise UserError(f"{given} exists; give a new file name (or pass {parameter('force')} to replace it)")
    return path


TENSORFLOW_FREE = "without it, KERAS_BACKEND=jax trains with --pipeline pydataset, predicts and evaluates"


def quiet_tensorflow(needed_by: str | None = None) -> None:
    """Import TensorFlow without its C++ start-up chatter (CUDA probing, CPU-feature notices).

    Some of those lines are written before any log level applies, so stderr is captured while
    TensorFlow loads and replayed only if the import fails. ``TF_CPP_MIN_LOG_LEVEL`` set by the
    user wins (0 shows everything). Where TensorFlow is not installed (the JAX backend alone), nothing
    is loaded, and ``needed_by`` (a command that cannot run without it) is a one-line UserError.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    if importlib.util.find_spec("tensorflow") is None:
        if needed_by:
            raise UserError(f"{needed_by} needs TensorFlow, which is not installed here; pip install tensorflow "
                            f"({TENSORFLOW_FREE})")
        return
    with captured_native_output((2,)):
        # By name: the import-linter contracts say which modules use TensorFlow; this one only loads it, quietly,
        # for whichever is about to (and works without it, above).
        tensorflow = importlib.import_module("tensorflow")
    tensorflow.get_logger().setLevel("ERROR")  # retracing notices and the like are for developers
