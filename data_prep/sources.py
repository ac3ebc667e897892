"""Recognise a source's layout and list its candidate images, per class, without changing anything.

Accepted layouts (detected automatically):
- ``kaggle-competition-zip``: Kaggle's ``dogs-vs-cats.zip``, holding a nested ``train.zip`` (plus ``test1.zip``
  and ``sampleSubmission.csv``, which are ignored).
- ``kaggle-train-zip``: Kaggle's ``train.zip`` (members ``train/cat.N.jpg``, ``train/dog.N.jpg``).
- ``kaggle-folder``: an extracted folder of ``cat.N.jpg`` / ``dog.N.jpg``, flat or under ``train/``.
- ``petimages-zip``: Microsoft's ``kagglecatsanddogs_*.zip`` (``PetImages/Cat/N.jpg``, ``PetImages/Dog/N.jpg``).
- ``petimages-folder``: an extracted ``PetImages`` folder (or a folder holding one) with ``Cat`` and ``Dog``.
- ``class-folders``: any folder with one sub-folder of images per class (at least two classes).
Kaggle and PetImages classes become ``cats`` / ``dogs`` (the book's names); class folders keep their names.

Every candidate is named relative to the source root (``train/cat.1.jpg``; in zips ``archive.zip!member``),
so manifests do not depend on where the source lives.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from catsdogs.config import DECODABLE_EXTENSIONS
from catsdogs.data.files import is_plain_name, is_text_name, printable
from catsdogs.errors import UserError, parameter
from data_prep.output import written_by_data_prep

KAGGLE_COMPETITION_ZIP = "kaggle-competition-zip"
KAGGLE_TRAIN_ZIP = "kaggle-train-zip"
KAGGLE_FOLDER = "kaggle-folder"
PETIMAGES_ZIP = "petimages-zip"
PETIMAGES_FOLDER = "petimages-folder"
CLASS_FOLDERS = "class-folders"
CSV_LABELS = "csv-labels"
CSV_ROW = "CSV row"  # how a skipped row's reason starts (the command names each one)

# What data_prep accepts: TensorFlow's decodable formats plus those only Pillow reads (WebP, TIFF); every
# non-JPEG is re-encoded to an RGB JPEG (``checking``), so a split holds only what the pipeline decodes.
PREPARABLE_EXTENSIONS = (*DECODABLE_EXTENSIONS, ".webp", ".tif", ".tiff")
KAGGLE_CLASSES = {"cat": "cats", "dog": "dogs"}
PETIMAGES_CLASSES = {"Cat": "cats", "Dog": "dogs"}

ACCEPTED_LAYOUTS = (
    "Kaggle dogs-vs-cats.zip or train.zip, a folder of cat.N.jpg/dog.N.jpg (flat or under train/), "
    "Microsoft's kagglecatsanddogs_*.zip or its extracted PetImages/Cat|Dog folder, "
    "a folder with one sub-folder of images per class (at least 2), "
    "or a CSV of path,label (paths relative to the CSV; or id,label with --images DIR)"
)

_KAGGLE_NAME = re.compile(r"^(cat|dog)\.(\d+)\.jpe?g$", re.IGNORECASE)
_PETIMAGES_MEMBER = re.compile(r"^(?:.*/)?PetImages/(Cat|Dog)/([^/]+)$")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")
# No photo comes near this; a bigger candidate is not one (a disk image renamed .jpg, a zip member of zeros).
MAX_SOURCE_FILE_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class Candidate:
    """One file that may become a training image."""

    class_name: str
    name: str  # relative to the source root; zip members as "archive.zip!member"
    image_id: int | None  # the number in the file name; None when it has none
    out_stem: str  # output file name without ".jpg"
    file_path: Path | None = None  # a real file (folder sources), which --link can hard-link
    member: str | None = None  # the zip member (zip sources)

    @property
    def id_order(self) -> tuple:
        """Sort key of the by-id split: numeric id, then name; files without a number last, by name."""
        return (self.image_id is None, self.image_id or 0, self.name)


@dataclass(frozen=True)
class Ignored:
    """A file in the source that is not a candidate (Thumbs.db, test1.zip, a readme, a hidden file)."""

    name: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", printable(self.name))  # a name that is not UTF-8 is reported escaped


@dataclass
class Source:
    """An opened source: its layout, classes and candidates; ``read`` returns a candidate's bytes."""

    path: Path
    kind: str
    candidates: dict[str, list[Candidate]]  # class name -> candidates, sorted by name
    ignored: list[Ignored] = field(default_factory=list)
    _archive: zipfile.ZipFile | None = None
    _open_files: list[IO[bytes] | zipfile.ZipFile] = field(default_factory=list)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.candidates))

    def read(self, candidate: Candidate) -> bytes:
        """The candidate's bytes; raises OSError / zipfile.BadZipFile when they cannot be read.

        Only a regular file is read (a device, FIFO or socket, also behind a symbolic link, would block or never
        end: ``/dev/zero`` named ``.jpg``), and only up to the size it reports; a zip member whose declared size is
        over ``MAX_SOURCE_FILE_BYTES`` is refused before any of it is read."""
        if candidate.file_path is not None:
            return read_regular_file(candidate.file_path)
        assert self._archive is not None and candidate.member is not None
        declared = self._archive.getinfo(candidate.member).file_size
        if declared > MAX_SOURCE_FILE_BYTES:
            raise OSError(f"the zip declares {declared:,} bytes for it, over the limit of {MAX_SOURCE_FILE_BYTES:,}")
        with self._archive.open(candidate.member) as member:
            return member.read(MAX_SOURCE_FILE_BYTES + 1)

    def close(self) -> None:
        for handle in reversed(self._open_files):
            handle.close()
        self._open_files.clear()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_regular_file(path: Path, limit: int = MAX_SOURCE_FILE_BYTES) -> bytes:
    """A regular file's bytes, at most the size it reports; OSError for anything else or anything larger."""
    status = os.stat(path)  # follows a symbolic link: what it points at is what would be read
    if not stat.S_ISREG(status.st_mode):
        raise OSError("not a regular file (a device, FIFO or socket); remove it from the source")
    if status.st_size > limit:
        raise OSError(f"{status.st_size:,} bytes, over the limit of {limit:,} for an image")
    with open(path, "rb") as handle:
        return handle.read(status.st_size)


def image_id_from_name(file_name: str) -> int | None:
    """The id in a file name: ``cat.123.jpg`` -> 123, ``123.jpg`` -> 123, ``img_0042.png`` -> 42, else None."""
    match = _LAST_NUMBER.search(Path(file_name).stem)
    return int(match.group(1)) if match else None


def _is_hidden(relative: str) -> bool:
    """Hidden files and folders, and macOS archive debris (``__MACOSX/``, ``._name``)."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.split("/"))


def _has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in PREPARABLE_EXTENSIONS


def _finish(path: Path, kind: str, candidates: dict[str, list[Candidate]], ignored: list[Ignored],
            archive: zipfile.ZipFile | None = None, open_files: list | None = None) -> Source:
    for items in candidates.values():
        items.sort(key=lambda c: c.name)
    ignored.sort(key=lambda i: i.name)
    return Source(path, kind, candidates, ignored, archive, open_files or [])


# --- zip sources ---------------------------------------------------------------------------------------


def _zip_files(archive: zipfile.ZipFile) -> list[str]:
    return [info.filename for info in archive.infolist() if not info.is_dir()]


def _open_zip(path: Path, handle: IO[bytes] | None = None) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(handle if handle is not None else path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable zip archive ({exc}); download it again") from exc


def _list_kaggle_zip(archive: zipfile.ZipFile, prefix: str, candidates: dict, ignored: list) -> None:
    for member in _zip_files(archive):
        name = f"{prefix}!{member}"
        base = member.rsplit("/", 1)[-1]
        match = _KAGGLE_NAME.match(base)
        if _is_hidden(member) or not match:
            ignored.append(Ignored(name, "hidden file" if _is_hidden(member) else "not a cat.N.jpg / dog.N.jpg"))
            continue
        class_name = KAGGLE_CLASSES[match.group(1).lower()]
        candidates.setdefault(class_name, []).append(
            Candidate(class_name, name, int(match.group(2)), Path(base).stem, member=member))


def _open_zip_source(path: Path, scratch_dir: Path | None) -> Source:
    archive = _open_zip(path)
    open_files: list = [archive]
    try:
        members = _zip_files(archive)
        candidates: dict[str, list[Candidate]] = {}
        ignored: list[Ignored] = []
        nested = [m for m in members if m.rsplit("/", 1)[-1] == "train.zip" and not _is_hidden(m)]
        if nested:
            # A zip inside a zip needs random access; an anonymous temporary file (gone even if we are
            # killed) is far cheaper than seeking in a compressed member.
            inner_file = tempfile.TemporaryFile(dir=scratch_dir)
            open_files.append(inner_file)
            with archive.open(nested[0]) as member_file:
                shutil.copyfileobj(member_file, inner_file, 1 << 20)
            inner = _open_zip(path, inner_file)
            open_files.append(inner)
            ignored.extend(Ignored(f"{path.name}!{m}", "not part of the training set")
                           for m in members if m != nested[0])
            _list_kaggle_zip(inner, f"{path.name}!{nested[0]}", candidates, ignored)
            if not candidates:
                raise UserError(f"{path}!{nested[0]} holds no cat.N.jpg / dog.N.jpg images; "
                                f"accepted: {ACCEPTED_LAYOUTS}")
            return _finish(path, KAGGLE_COMPETITION_ZIP, candidates, ignored, inner, open_files)
        if any(_KAGGLE_NAME.match(m.rsplit("/", 1)[-1]) for m in members):
            _list_kaggle_zip(archive, path.name, candidates, ignored)
            return _finish(path, KAGGLE_TRAIN_ZIP, candidates, ignored, archive, open_files)
        if any(_PETIMAGES_MEMBER.match(m) for m in members):
            for member in members:
                name = f"{path.name}!{member}"
                match = _PETIMAGES_MEMBER.match(member)
                if _is_hidden(member):
                    ignored.append(Ignored(name, "hidden file"))
                elif not match:
                    ignored.append(Ignored(name, "outside PetImages/Cat and PetImages/Dog"))
                elif not _has_image_extension(member):
                    ignored.append(Ignored(name, "not an image file name"))
                else:
                    class_name = PETIMAGES_CLASSES[match.group(1)]
                    candidates.setdefault(class_name, []).append(Candidate(
                        class_name, name, image_id_from_name(member), Path(match.group(2)).stem, member=member))
            return _finish(path, PETIMAGES_ZIP, candidates, ignored, archive, open_files)
        raise UserError(f"{path} holds no images in a known layout; accepted: {ACCEPTED_LAYOUTS}")
    except BaseException:
        for handle in reversed(open_files):
            handle.close()
        raise


# --- folder sources ------------------------------------------------------------------------------------


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _visible_children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _walk_files(folder: Path) -> list[Path]:
    """All files below ``folder``, hidden ones included (the caller decides), in a stable order."""
    found: list[Path] = []
    for directory, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(Path(directory, f) for f in sorted(files))
    return found


def _kaggle_files(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return [Path(e.path) for e in entries if e.is_file() and _KAGGLE_NAME.match(e.name)]


def _list_kaggle_folder(root: Path, base: Path) -> Source:
    """The ``cat.N.jpg`` / ``dog.N.jpg`` files directly in ``base`` (``root`` or ``root/train``)."""
    candidates: dict[str, list[Candidate]] = {}
    ignored: list[Ignored] = []
    for path in sorted(p for p in base.iterdir() if not p.is_dir()):  # special files too: read() names them
        relative = _relative(path, root)
        match = _KAGGLE_NAME.match(path.name)
        if _is_hidden(relative) or not match:
            ignored.append(Ignored(relative, "hidden file" if _is_hidden(relative) else "not a cat.N.jpg / dog.N.jpg"))
            continue
        class_name = KAGGLE_CLASSES[match.group(1).lower()]
        candidates.setdefault(class_name, []).append(
            Candidate(class_name, relative, int(match.group(2)), path.stem, file_path=path))
    return _finish(root, KAGGLE_FOLDER, candidates, ignored)


def _list_class_folders(root: Path, folders: dict[str, Path], kind: str) -> Source:
    """One class per folder (``folders``: class name -> folder); files below it, nested ones included."""
    candidates: dict[str, list[Candidate]] = {}
    ignored: list[Ignored] = []
    for class_name, folder in folders.items():
        if not is_plain_name(class_name):
            raise UserError(f"the class folder {printable(folder)!r} has a name with control characters or bytes "
                            "that are not UTF-8; rename it to plain text")
        for path in _walk_files(folder):
            relative = _relative(path, root)
            inside = _relative(path, folder)
            if _is_hidden(inside):
                ignored.append(Ignored(relative, "hidden file"))
            elif not is_text_name(relative):
                ignored.append(Ignored(relative, "its name is not valid UTF-8; rename the file"))
            elif not _has_image_extension(path.name):
                ignored.append(Ignored(relative, "not an image file name"))
            else:
                # Nested folders are flattened into the name so that two "1.jpg" do not collide.
                stem = inside.rsplit(".", 1)[0].replace("/", "__")
                candidates.setdefault(class_name, []).append(
                    Candidate(class_name, relative, image_id_from_name(path.name), stem, file_path=path))
    return _finish(root, kind, candidates, ignored)


def _petimages_folder(root: Path) -> Path | None:
    for folder in (root, root / "PetImages"):
        if (folder / "Cat").is_dir() and (folder / "Dog").is_dir():
            return folder
    return None


def _open_folder_source(root: Path) -> Source:
    if written_by_data_prep(root):
        raise UserError(f"{root} is a split written by data_prep, not a raw source; pass the original "
                        f"source with {parameter('source')}")
    children = _visible_children(root)
    if not children:
        raise UserError(f"{root} is empty; accepted: {ACCEPTED_LAYOUTS}")
    if _kaggle_files(root):
        return _list_kaggle_folder(root, root)
    if (root / "train").is_dir() and _kaggle_files(root / "train"):
        return _list_kaggle_folder(root, root / "train")
    petimages = _petimages_folder(root)
    if petimages is not None:
        return _list_class_folders(
            root, {PETIMAGES_CLASSES[n]: petimages / n for n in sorted(PETIMAGES_CLASSES)}, PETIMAGES_FOLDER)
    class_folders = {p.name: p for p in children
                     if p.is_dir() and any(_has_image_extension(f.name) for f in _walk_files(p))}
    if len(class_folders) >= 2:
        return _list_class_folders(root, class_folders, CLASS_FOLDERS)
    found = ", ".join(p.name + ("/" if p.is_dir() else "") for p in children[:5])
    raise UserError(f"{root} is not a source layout I know (it holds {found}{', ...' if len(children) > 5 else ''}); "
                    f"accepted: {ACCEPTED_LAYOUTS}")


# --- CSV sources ---------------------------------------------------------------------------------------


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        text = read_regular_file(path, 64 * 1024**2).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save the labels as a UTF-8 CSV") from None
    return [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]


def _images_by_stem(folder: Path) -> dict[str, Path]:
    """The image files directly in ``folder`` by file name and by name without extension (Kaggle's ids)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if _has_image_extension(path.name):
            found.setdefault(path.name, path)
            found.setdefault(path.stem, path)
    return found


def _open_csv_source(path: Path, images_dir: Path | None) -> Source:
    """``path,label`` rows (paths relative to the CSV's folder, or absolute), or ``id,label`` rows naming files in
    ``images_dir`` (``<id>`` or ``<id>.<ext>``: Kaggle's files). A header row is recognised by its names. A bad row
    (no such file, no label, a file listed twice, not two cells) is named and skipped, like a bad file."""
    rows = _csv_rows(path)
    header = [cell.strip().lower() for cell in rows[0][:2]] if rows else []
    if header in (["path", "label"], ["id", "label"], ["file", "label"]):
        first = 2
        rows = rows[1:]
    else:
        first = 1
    if images_dir is not None and not images_dir.is_dir():
        raise UserError(f"{parameter('images', images_dir)} is not a folder; pass the folder the ids' files are in")
    by_id = _images_by_stem(images_dir) if images_dir is not None else {}
    root = path.parent
    candidates: dict[str, list[Candidate]] = {}
    ignored: list[Ignored] = []
    seen: dict[Path, int] = {}
    for number, row in enumerate(rows, first):
        def skip(reason: str, row: list[str] = row, number: int = number) -> None:
            ignored.append(Ignored(f"{path.name}:{number}", f"{CSV_ROW} {number} ({','.join(row)[:80]}): {reason}"))

        if len(row) != 2:
            skip(f"{len(row)} cells, not 2 (path,label)")
            continue
        name, label = (cell.strip() for cell in row)
        if not label or not is_plain_name(label) or "/" in label:
            skip("no label" if not label else "the label is not a plain name (a folder name)")
            continue
        file = by_id.get(name) if images_dir is not None else (root / name)
        if file is None or not file.is_file():
            skip(f"no image file {name!r} in {images_dir}" if images_dir is not None else
                 f"no such file {root / name}")
            continue
        if not _has_image_extension(file.name):
            skip("not an image file name")
            continue
        key = file.resolve()
        if key in seen:
            skip(f"the file is listed already, in row {seen[key]}")
            continue
        seen[key] = number
        try:
            relative = _relative(file, root)
        except ValueError:  # outside the CSV's folder
            relative = file.as_posix().lstrip("/")
        stem = relative.rsplit(".", 1)[0].replace("/", "__").replace("..", "_")
        candidates.setdefault(label, []).append(
            Candidate(label, relative, image_id_from_name(file.name), stem, file_path=file))
    if len(candidates) < 2:
        raise UserError(f"{path} labels {len(candidates)} class(es) with a usable file; a split needs at least 2 "
                        f"(rows: path,label{', or id,label with --images DIR' if images_dir is None else ''})")
    return _finish(path, CSV_LABELS, candidates, ignored)


def require_source(path: str | Path) -> Path:
    """``path`` as a Path, or a UserError if nothing is there."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"source {path} does not exist; pass a Kaggle or PetImages zip or folder, or a CSV of labels, "
                        f"with {parameter('source')} (or use {parameter('download')} / {parameter('synthetic', 'N')})")
    return path


def open_source(path: str | Path, scratch_dir: Path | None = None, images_dir: Path | None = None) -> Source:
    """Detect the layout of ``path`` (a zip, a folder or a CSV of labels) and list its candidates; use it as a
    context manager.

    ``scratch_dir`` holds the anonymous temporary copy of a nested ``train.zip`` (default: the system's);
    ``images_dir``: where a CSV's ids are files. Raises UserError for a missing path or a layout it does not know.
    """
    path = require_source(path)
    if path.suffix.lower() == ".csv" and path.is_file():
        return _open_csv_source(path, images_dir)
    if images_dir is not None:
        raise UserError(f"{parameter('images')} goes with a CSV of id,label rows; {path} is not a .csv file")
    if path.is_dir():
        return _open_folder_source(path)
    if zipfile.is_zipfile(path):
        return _open_zip_source(path, scratch_dir)
    if path.suffix.lower() == ".zip":
        raise UserError(f"{path} is not a readable zip archive; download it again")
    raise UserError(f"{path} is neither a folder nor a zip archive; accepted: {ACCEPTED_LAYOUTS}")
