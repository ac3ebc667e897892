"""The output folder: where it may go, how it is built, and when an existing one may be replaced.

A split is built in a staging folder beside OUT (same filesystem) and renamed into place at the end, so an
interrupted run never leaves half a split at OUT. Staging folders of killed runs are removed by the next run.
An existing OUT is only replaced with ``force=True``, and only if data_prep wrote it (``summary.json`` with
the marker) and it holds nothing data_prep did not write: a user's files are never deleted.
"""

from __future__ import annotations

import csv
import ctypes
import errno
import io
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from catsdogs.errors import UserError, parameter

MARKER = "catsdogs.data_prep"  # summary.json's "created_by": the proof that data_prep wrote a folder
SUMMARY_NAME = "summary.json"
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("split", "class", "path", "source", "id", "sha256", "source_sha256", "width", "height", "action")
# A split written with --relabel also says, on each moved file's row, its class before and why; other splits keep
# the columns above alone, so their manifests (and the data fingerprints hashed from them) stay as they were.
RELABEL_COLUMNS = ("relabelled_from", "reason")
_STAGING_FLAG = ".data_prep-staging"  # written first into a staging folder, so cleanup knows it is ours


def _work_dir_pattern(out: Path) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(out.name)}\.data_prep-(tmp|old)-(\d+)-[0-9a-f]+$")


def _work_dir(out: Path, role: str) -> Path:
    """A hidden sibling of OUT: ``.OUT.data_prep-tmp-<pid>-<token>`` (staging) or ``...-old-...`` (replaced)."""
    return out.parent / f".{out.name}.data_prep-{role}-{os.getpid()}-{secrets.token_hex(4)}"


def written_by_data_prep(folder: Path) -> bool:
    """Whether ``folder`` has a summary.json with data_prep's marker."""
    try:
        return json.loads((folder / SUMMARY_NAME).read_text()).get("created_by") == MARKER
    except (OSError, ValueError, AttributeError):
        return False


def _files_not_written_by_data_prep(folder: Path) -> list[str]:
    """Files in a data_prep folder that its manifest does not list (a user's additions), sorted."""
    with open(folder / MANIFEST_NAME, newline="") as handle:
        ours = {row["path"] for row in csv.DictReader(handle)} | {MANIFEST_NAME, SUMMARY_NAME}
    return sorted(rel for rel in (p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
                  if rel not in ours)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_destination(out: Path, source: Path, force: bool) -> None:
    """Refuse, before any work, an OUT that would overlap the source or replace something that is not ours."""
    out_resolved, source_resolved = out.resolve(), source.resolve()
    if _is_within(out_resolved, source_resolved):
        raise UserError(f"{parameter('out', out)} is inside the source {source}; choose a folder outside it")
    if _is_within(source_resolved, out_resolved):
        raise UserError(f"the source {source} is inside {parameter('out', out)}; choose another {parameter('out')}")
    check_replaceable(out, force)


def check_replaceable(out: Path, force: bool) -> None:
    """OUT may be written if it is absent or empty, or (``force``) a data_prep output holding only our files."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{parameter('out', out)} is a file, not a folder; choose another {parameter('out')}")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise UserError(f"{parameter('out', out)} is not empty; pass {parameter('force')} to replace it (only a folder "
                        f"data_prep wrote is replaced) or choose another {parameter('out')}")
    if not written_by_data_prep(out):
        raise UserError(f"{parameter('out', out)} was not written by data_prep (no {SUMMARY_NAME} with its marker); "
                        f"refusing to delete it even with {parameter('force')}: delete or move it yourself, or choose "
                        f"another {parameter('out')}")
    try:
        foreign = _files_not_written_by_data_prep(out)
    except (OSError, KeyError, csv.Error):
        raise UserError(f"{parameter('out', out)} has no readable {MANIFEST_NAME}, so I cannot tell its files from "
                        "yours; refusing to delete it: delete or move it yourself") from None
    if foreign:
        raise UserError(f"{parameter('out', out)} holds {len(foreign)} file(s) data_prep did not write (e.g. "
                        f"{foreign[0]}); refusing to delete them: move them out of it, or choose another "
                        f"{parameter('out')}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _left_by_dead_runs(out: Path) -> list[tuple[str, Path]]:
    """``(role, folder)`` for the work folders beside OUT (``tmp``: staging, ``old``: a replaced output) whose run
    is gone."""
    pattern = _work_dir_pattern(out)
    found = []
    for candidate in sorted(out.parent.iterdir()):
        match = pattern.match(candidate.name)
        if match and candidate.is_dir() and int(match.group(2)) != os.getpid() and not _pid_alive(int(match.group(2))):
            found.append((match.group(1), candidate))
    return found


def remove_leftovers(out: Path) -> list[Path]:
    """Delete staging / replaced folders that killed runs left beside OUT; returns what was removed.

    Only folders with our name pattern, whose process is gone, and that carry our flag (staging) or
    marker (a replaced output) are touched. A run killed between publishing's two renames left no OUT: the
    finished new split goes back in place, else the old one.
    """
    if not out.parent.is_dir():
        return []
    if not out.exists():
        whole = [(role != "tmp", folder) for role, folder in _left_by_dead_runs(out)
                 if written_by_data_prep(folder) and not (folder / _STAGING_FLAG).exists()]
        if whole:
            os.rename(min(whole)[1], out)
    removed = []
    for _, candidate in _left_by_dead_runs(out):
        if (candidate / _STAGING_FLAG).is_file() or written_by_data_prep(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A fresh staging folder beside OUT, deleted if the block fails (or was already published)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = _work_dir(out, "tmp")
    staging.mkdir()
    (staging / _STAGING_FLAG).touch()
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def exchange(first: Path, second: Path) -> bool:
    """Swap two folders in one step (Linux's ``renameat2(RENAME_EXCHANGE)``), so that no moment has neither in
    place; False where the system or the file system cannot (the caller renames twice)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it (glibc before 2.28, musl before 1.2.2)
        return False
    at_current_folder, rename_exchange = -100, 2
    if renameat2(at_current_folder, os.fsencode(first), at_current_folder, os.fsencode(second), rename_exchange):
        number = ctypes.get_errno()
        if number in (errno.EINVAL, errno.ENOSYS):  # a file system without exchange (some network ones)
            return False
        raise OSError(number, os.strerror(number), str(second))
    return True


def publish(staging: Path, out: Path, force: bool) -> None:
    """Rename the finished staging folder to OUT, replacing an empty OUT or (``force``) a previous output.

    A previous output is exchanged with the new one in one step where the system can, so that a kill at any
    moment leaves the old split or the new one at OUT. Elsewhere it is renamed aside first; a kill between the two
    renames leaves both beside OUT, and the next run puts one back (``remove_leftovers``)."""
    (staging / _STAGING_FLAG).unlink()
    replaced = None
    if out.is_dir():
        if not any(out.iterdir()):
            out.rmdir()
        else:
            check_replaceable(out, force)  # OUT may have changed while we worked
            if exchange(staging, out):  # OUT is the new split; the staging name holds the old one
                shutil.rmtree(staging, ignore_errors=True)
                return
            replaced = _work_dir(out, "old")
            os.rename(out, replaced)
    try:
        os.rename(staging, out)
    except OSError:
        if replaced is not None:
            os.rename(replaced, out)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)


def write_bytes(data: bytes, destination: Path) -> None:
    with open(destination, "xb") as handle:  # "x": never overwrite
        handle.write(data)


def place_image(data: bytes, destination: Path, link_from: Path | None = None) -> str:
    """Put one image at ``destination``: a hard link to ``link_from`` when given and possible, else a copy
    of ``data`` (the very bytes that were checked). Returns ``"linked"`` or ``"copied"``."""
    if link_from is not None:
        try:
            os.link(link_from, destination)
            return "linked"
        except OSError:  # another filesystem, or links not supported there
            pass
    write_bytes(data, destination)
    return "copied"


def manifest_text(rows: Sequence[dict]) -> str:
    """The manifest as CSV text (``\\n`` line ends, fixed column order) so that it is byte-reproducible; the
    ``RELABEL_COLUMNS`` too when a row has them (blank on the rows that were not moved)."""
    buffer = io.StringIO()
    relabelled = any(column in row for row in rows for column in RELABEL_COLUMNS)
    columns = MANIFEST_COLUMNS + RELABEL_COLUMNS if relabelled else MANIFEST_COLUMNS
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_reports(folder: Path, manifest_rows: Sequence[dict], summary: dict) -> None:
    (folder / MANIFEST_NAME).write_text(manifest_text(manifest_rows), encoding="utf-8")
    (folder / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
