"""Acting on an audit, never in place: ``--exclude FILE`` and ``--relabel FILE`` change which source files a new
split takes, and under which class.

The files are CSVs in the audit's format (``python -m catsdogs.audit``: ``label_issues.csv``,
``near_duplicates.csv``, ``outliers.csv``...), edited by the user: a ``path`` column names each image, and for
``--relabel`` a ``label`` column (or the audit's ``suggested_label``) gives its class. A ``reason`` column, when
there is one, is recorded (else the file's name is). A path inside an earlier ``data_prep`` output is mapped back
to its source file through that output's ``manifest.csv``; any other path is taken relative to the source (or
absolute inside it). The source and the earlier split are only read: the new split is written to ``--out`` as
always, and its ``summary.json`` lists every file excluded or relabelled, and why.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

from catsdogs.errors import UserError, parameter
from data_prep.output import MANIFEST_NAME, written_by_data_prep
from data_prep.sources import Source


@dataclass(frozen=True)
class Change:
    """One row of an --exclude or --relabel file, resolved to a source file's name."""

    source: str
    path: str
    reason: str
    label: str | None = None  # the new class (--relabel)


def _rows(path: Path, flag: str) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{parameter(flag, path)} does not exist; pass a CSV with a path column (the audit's)") \
            from None
    except UnicodeDecodeError:
        raise UserError(f"{parameter(flag, path)} is not UTF-8 text; save it as a UTF-8 CSV") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and "path" not in rows[0]:
        raise UserError(f"{parameter(flag, path)} has no path column (its columns: {', '.join(rows[0])}); use the "
                        "audit's CSVs, or a CSV with path[,label][,reason]")
    return rows


def _manifest_of(path: Path, cache: dict[Path, dict[str, str]]) -> tuple[Path, dict[str, str]] | None:
    """The data_prep output holding ``path`` and its manifest (split path -> source name), if there is one."""
    for folder in path.parents:
        if folder in cache:
            return folder, cache[folder]
        if (folder / MANIFEST_NAME).is_file() and written_by_data_prep(folder):
            with open(folder / MANIFEST_NAME, newline="") as handle:
                cache[folder] = {row["path"]: row["source"] for row in csv.DictReader(handle)}
            return folder, cache[folder]
    return None


def _source_name(given: str, source: Source, manifests: dict[Path, dict[str, str]]) -> str | None:
    path = Path(given).expanduser()
    absolute = path if path.is_absolute() else Path.cwd() / path
    found = _manifest_of(absolute.resolve(), manifests)
    if found is not None:
        root, manifest = found
        return manifest.get(absolute.resolve().relative_to(root.resolve()).as_posix())
    root = source.path if source.path.is_dir() else source.path.parent
    try:  # a path to the source file itself, from here or absolute
        return absolute.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None if path.is_absolute() else path.as_posix()  # else: the source's own name for it


def read_changes(path: Path, flag: str, source: Source, relabel: bool) -> list[Change]:
    """The rows of ``path`` as changes to ``source``'s files; a row naming no file of the source is a UserError."""
    manifests: dict[Path, dict[str, str]] = {}
    names = {candidate.name for candidates in source.candidates.values() for candidate in candidates}
    changes = []
    for number, row in enumerate(_rows(path, flag), 2):
        given = (row.get("path") or "").strip()
        name = _source_name(given, source, manifests)
        if name is None or name not in names:
            raise UserError(f"{parameter(flag, path)} row {number}: {given!r} is not a file of the source "
                            f"{source.path} (nor of a data_prep split made from it); fix or remove the row")
        label = (row.get("label") or row.get("suggested_label") or "").strip() if relabel else None
        if relabel and not label:
            raise UserError(f"{parameter(flag, path)} row {number}: no label (a label or suggested_label column)")
        changes.append(Change(name, given, (row.get("reason") or "").strip() or f"listed in {path.name}", label))
    return changes


def apply_changes(source: Source, excluded: list[Change], relabelled: list[Change]) -> None:
    """Drop the excluded files from ``source``'s candidates and move the relabelled ones to their new class."""
    gone = {change.source for change in excluded}
    moved = {change.source: change.label for change in relabelled if change.label is not None}
    unknown = sorted({label for label in moved.values() if label not in source.candidates})
    if unknown:
        raise UserError(f"--relabel names classes the source does not have: {', '.join(map(repr, unknown))}; its "
                        f"classes are {', '.join(source.class_names)}")
    both = sorted(gone & set(moved))
    if both:
        raise UserError(f"{both[0]} is both excluded and relabelled; keep it in one of the two files")
    changed: dict[str, list] = {name: [] for name in source.candidates}
    for name, candidates in source.candidates.items():
        for candidate in candidates:
            if candidate.name in gone:
                continue
            new = moved.get(candidate.name)
            if new is not None and new != name:
                changed[new].append(dataclasses.replace(candidate, class_name=new))
            else:
                changed[name].append(candidate)
    for name, candidates in changed.items():
        candidates.sort(key=lambda c: c.name)
        source.candidates[name] = candidates
