"""Which files are images to use: split folders, command-line inputs, and the data's fingerprint.

A split folder holds one sub-folder per class (``train/cats``, ``train/dogs``); labels are the
sorted sub-folder names, as in ``image_dataset_from_directory``. Command-line inputs are files,
folders (searched recursively) or glob patterns; each problem with one (missing, no images, a
pattern that matches nothing) becomes a ``Failure`` that the command names, while the others go on.
This module imports no TensorFlow.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catsdogs.config import DECODABLE_EXTENSIONS, SPLITS
from catsdogs.errors import UserError, parameter

_GLOB_CHARACTERS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class ImageFolder:
    """The images of one split: file paths and integer labels indexing ``class_names``."""

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    orientations: tuple[int, ...] = ()  # EXIF orientation per path, once checked (``catsdogs.data.images``)
    scales: tuple[int, ...] = ()  # and the libjpeg scale each JPEG decodes at for the checked size (0: not a JPEG)
    pixels: tuple[int, ...] = ()  # and how many pixels each decodes to there

    def __len__(self) -> int:
        return len(self.paths)

    def digest(self) -> str:
        """Identifies the file list and labels (with each file's size and time): what a cache is keyed by."""
        hasher = hashlib.sha256()
        for path, label in zip(self.paths, self.labels):
            try:
                stat = os.stat(path)
                stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            hasher.update(f"{path}\t{label}\t{stamp}\n".encode("utf-8", "surrogateescape"))
        return hasher.hexdigest()[:20]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def printable(path: str | Path) -> str:
    """A path as text that can be printed and written: bytes that are not UTF-8 (which Python keeps as surrogates)
    shown as ``\\xff`` escapes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_text_name(path: str | Path) -> bool:
    """Whether a path is valid UTF-8: TensorFlow, JSON and CSV need text, so a file named otherwise is skipped."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_plain_name(name: str) -> bool:
    """A class name must be one line of text: it becomes a folder, a line of ``labels.txt``, JSON and titles."""
    return is_text_name(name) and not any(ord(c) < 32 or ord(c) == 127 for c in name)


@dataclass(frozen=True)
class Failure:
    """An input that gave no result, and why, in words for the user."""

    path: str
    error: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", printable(self.path))  # a name that is not UTF-8 is named escaped

    def __str__(self) -> str:
        return f"{self.path}: {self.error}"


def is_image_file(path: Path) -> bool:
    """An image by its name: a decodable extension, not hidden. Symbolic links count even when broken or
    looping, so that the check names them instead of a listing silently leaving them out."""
    return ((path.is_file() or path.is_symlink()) and path.suffix.lower() in DECODABLE_EXTENSIONS
            and not path.name.startswith("."))


def read_image_folder(directory: str | Path, class_names: Sequence[str] | None = None) -> ImageFolder:
    """List a split folder's images. ``class_names`` (e.g. the training split's) must then all be present."""
    root = Path(directory)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; prepare a split with `python -m data_prep --out DIR` "
                        f"and pass {parameter('data_dir', 'DIR')}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in found:  # a class name goes into labels.txt, JSON, CSV and figure titles: one line of text
        if not is_plain_name(name):
            raise UserError(f"the class folder {printable(root / name)!r} has a name with control characters or "
                            "bytes that are not UTF-8; rename it to plain text")
    if class_names is None:
        class_names = found
        if len(class_names) < 2:
            raise UserError(f"{root} needs one sub-folder per class (at least 2), found {found or 'none'}")
    else:
        missing = [name for name in class_names if name not in found]
        if missing:
            raise UserError(f"{root} lacks the class folders {missing} (expected {list(class_names)})")
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        files = sorted(p for p in (root / name).iterdir() if is_image_file(p))
        if not files:
            raise UserError(f"{root / name} holds no images ({', '.join(DECODABLE_EXTENSIONS)})")
        paths.extend(str(p) for p in files)
        labels.extend([label] * len(files))
    return ImageFolder(root, tuple(class_names), tuple(paths), tuple(labels))


def read_splits(data_dir: str | Path) -> dict[str, ImageFolder]:
    """The ``train`` / ``validation`` / ``test`` folders under ``data_dir`` that exist (train is required)."""
    data_dir = Path(data_dir)
    train_name = SPLITS[0]
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} is a file; pass the folder that holds {'/, '.join(SPLITS)}/ "
                        "(written by `python -m data_prep`)")
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} does not exist; make one with "
                        f"`python -m data_prep --source PATH --out {data_dir}`")
    if not (data_dir / train_name).is_dir():
        raise UserError(f"{data_dir} has no {train_name}/ folder; expected {data_dir}/{'|'.join(SPLITS)}/<class>/ "
                        "as written by `python -m data_prep`")
    train = read_image_folder(data_dir / train_name)
    splits = {train_name: train}
    for name in SPLITS[1:]:
        if (data_dir / name).is_dir():
            splits[name] = read_image_folder(data_dir / name, train.class_names)
    return splits


def data_fingerprint(data_dir: str | Path) -> str:
    """sha256 of the split's manifest.csv when data_prep wrote one, else of the sorted file list and sizes."""
    data_dir = Path(data_dir)
    manifest = data_dir / "manifest.csv"
    if manifest.is_file():
        return hashlib.sha256(manifest.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(data_dir)}\t{path.stat().st_size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def resolve_split_folder(data_dir: str | Path, split: str | None = None) -> Path:
    """``data_dir`` itself when it is a split folder, or its ``split`` (default ``test``) in a data_prep output."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} is a file; pass a folder of class sub-folders or a data_prep output")
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} does not exist")
    if split is not None and split not in SPLITS:
        raise UserError(f"{parameter('split')} must be one of {', '.join(SPLITS)}, not {split!r}")
    present = [name for name in SPLITS if (data_dir / name).is_dir()]
    chosen = split or SPLITS[-1]
    if chosen in present:
        return data_dir / chosen
    if present or split is not None:
        raise UserError(f"{data_dir} has no {chosen}/ split (found {', '.join(present) or 'none'}); "
                        f"pass {parameter('split')} or point {parameter('data_dir')} at a folder of class sub-folders")
    return data_dir


def describe_data(data_dir: str | Path) -> dict[str, Any]:
    """Where a model's data came from, for its metadata and card: the folder, the manifest's hash and,
    when data_prep made the folder, its source, kind and split from ``summary.json``."""
    data_dir = Path(data_dir).resolve()
    described: dict[str, Any] = {"dir": str(data_dir), "fingerprint": data_fingerprint(data_dir)}
    try:
        summary = json.loads((data_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return described
    if isinstance(summary, dict):
        described.update({key: summary[key] for key in ("source", "kind", "split", "seed") if key in summary})
    return described


def expand_inputs(paths: Iterable[str | Path]) -> tuple[list[str], list[Failure]]:
    """Files, folders (searched recursively) and globs -> the image files to use, and the problems.

    A file named explicitly is kept whatever its extension (a PNG named ``.jpg`` is fine; a text file
    fails later, when it does not decode); in folders only image files count. Each file appears once.
    """
    files: dict[str, None] = {}  # ordered and without repeats
    problems: list[Failure] = []
    for argument in map(str, paths):
        if not os.path.exists(argument) and _GLOB_CHARACTERS.search(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                problems.append(Failure(argument, "no file matches this pattern"))
            candidates = [Path(match) for match in matches]
        else:
            candidates = [Path(argument)]
        for candidate in candidates:
            if candidate.is_dir():
                images = sorted(p for p in candidate.rglob("*") if is_image_file(p))
                if not images:
                    problems.append(Failure(str(candidate),
                                            f"folder holds no images ({', '.join(DECODABLE_EXTENSIONS)})"))
                files.update((str(p), None) for p in images)
            elif candidate.is_file():
                files[str(candidate)] = None
            elif candidate.exists():
                problems.append(Failure(str(candidate), "not a regular file"))
            else:
                problems.append(Failure(str(candidate), "no such file or folder"))
    return list(files), problems


def require_image_file(path: str | Path) -> Path:
    """``path`` if it is a file; else a UserError that says what it is instead."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"image {path} {what}; pass {parameter('image', 'PATH')} to one image file")
    return path
