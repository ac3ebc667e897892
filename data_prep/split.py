"""Choose the split and write it: ``prepare_split`` is what the CLI, notebooks and tests call.

Per class, candidates are put in order (by id, or sorted by name then shuffled with the seed), then taken
one by one: read, hashed (an exact duplicate of an earlier image is dropped), decoded fully (undecodable
files are skipped), re-encoded if not a plain RGB JPEG, and written. The first ``train`` accepted images
go to train, the next ``validation`` to validation, the next ``test`` to test, so skipped files are
replaced by the next candidates and the counts hold.
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from catsdogs import __version__
from catsdogs.config import DEFAULT_SEED, SPLITS
from catsdogs.data.near_duplicates import groups_of, near_duplicate_pairs, perceptual_hash
from catsdogs.errors import UserError, parameter
from data_prep import output
from data_prep.changes import apply_changes, read_changes
from data_prep.checking import CheckedImage, UndecodableImage, check_image
from data_prep.sources import Candidate, Source, open_source, require_source

SPLIT_MODES = ("random", "by-id")


@dataclass(frozen=True)
class SplitCounts:
    """Images per class in each split."""

    train: int = 1000
    validation: int = 500
    test: int = 500

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 0:
                raise UserError(f"the {name} count must be a whole number >= 0, got {value!r}")
        if self.total == 0:
            raise UserError(f"all split counts are 0; ask for at least one image, e.g. {parameter('train', 1000)}")

    @property
    def total(self) -> int:
        return self.train + self.validation + self.test

    def as_dict(self) -> dict[str, int]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def split_of(self, index: int) -> str:
        """The split of the ``index``-th accepted image of a class (0-based)."""
        if index < self.train:
            return "train"
        return "validation" if index < self.train + self.validation else "test"

    def as_arguments(self) -> str:
        """The counts as the arguments that ask for them, for a ``UserError``'s message."""
        return " ".join(parameter(name, value) for name, value in self.as_dict().items())

    def counts_for(self, available: int) -> SplitCounts:
        """The counts for a class with ``available`` candidates: these, whatever it has (too few is an error)."""
        return self

    def summary_entry(self) -> dict[str, dict]:
        return {"requested_per_class": self.as_dict()}

    def fitted_to(self, available: int) -> SplitCounts | None:
        """Counts that fit ``available`` images per class (validation and test kept if possible), or None."""
        if available > self.validation + self.test:
            return SplitCounts(available - self.validation - self.test, self.validation, self.test)
        scale = max(available, 0) / self.total
        parts = [int(n * scale) for n in (self.train, self.validation, self.test)]
        return SplitCounts(*parts) if sum(parts) else None


@dataclass(frozen=True)
class SplitFractions:
    """Shares of each class's candidates per split (``--train 0.7 --val 0.15 --test 0.15``), for sets whose
    classes differ in size or are too small for fixed counts: each class is split in these proportions."""

    train: float = 0.5  # the book's 1000/500/500
    validation: float = 0.25
    test: float = 0.25

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise UserError(f"the {name} fraction must be between 0 and 1, got {value!r}")
        if self.total > 1 + 1e-9:
            raise UserError(f"the split fractions add up to {self.total:g}, more than 1; "
                            f"e.g. {SplitFractions().as_arguments()}")
        if self.total == 0:
            raise UserError(f"all split fractions are 0; e.g. {SplitFractions(0.5, 0.25, 0.25).as_arguments()}")

    @property
    def total(self) -> float:
        return self.train + self.validation + self.test

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def as_arguments(self) -> str:
        """The fractions as the arguments that ask for them, for a ``UserError``'s message."""
        return (f"{parameter('train', f'{self.train:g}')} {parameter('validation', f'{self.validation:g}')} "
                f"{parameter('test', f'{self.test:g}')}")

    def counts_for(self, available: int) -> SplitCounts:
        """Rounded shares of ``available``: validation and test first, train the rest when the shares add up to
        1 (no image lost to rounding), so rounding never takes the total past ``available``."""
        validation = round(available * self.validation)
        test = min(round(available * self.test), available - validation)
        rest = available - validation - test
        train = rest if math.isclose(self.total, 1.0) else min(round(available * self.train), rest)
        return SplitCounts(train, validation, test)

    def summary_entry(self) -> dict[str, dict]:
        return {"requested_fractions": self.as_dict()}


@dataclass
class PrepSummary:
    """What a run did; ``summary.json`` is ``to_dict()`` of it."""

    out: Path
    source: Path
    kind: str
    split: str
    seed: int | None  # None for by-id
    requested: SplitCounts | SplitFractions
    class_names: tuple[str, ...]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    actions: dict[str, int]  # copied / linked / reencoded -> files
    skipped: list[dict] = field(default_factory=list)  # undecodable or unreadable: source, class, reason
    reencoded: list[dict] = field(default_factory=list)  # source, path, reason
    duplicates: list[dict] = field(default_factory=list)  # source, duplicate_of, sha256
    ignored: list[dict] = field(default_factory=list)  # not candidates at all (Thumbs.db, test1.zip): source, reason
    candidates: dict[str, int] = field(default_factory=dict)  # class -> candidate files in the source
    extra: dict = field(default_factory=dict)  # e.g. {"synthetic": {...}, "download": {...}}

    @property
    def total(self) -> int:
        return sum(sum(per_class.values()) for per_class in self.counts.values())

    def to_dict(self) -> dict:
        return {
            "created_by": output.MARKER,
            "version": __version__,
            "source": str(self.source),
            "kind": self.kind,
            "split": self.split,
            "seed": self.seed,
            **self.requested.summary_entry(),
            "classes": list(self.class_names),
            "counts": self.counts,
            "total": self.total,
            "actions": self.actions,
            "candidates": self.candidates,
            "skipped": self.skipped,
            "reencoded": self.reencoded,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            **self.extra,
        }

    def describe(self) -> str:
        """One line for the terminal."""
        per_split = ", ".join(
            f"{split} {'+'.join(str(n) for n in self.counts[split].values())}" for split in self.counts)
        return (f"wrote {self.out}: {per_split} ({'/'.join(self.class_names)}); {len(self.reencoded)} re-encoded, "
                f"{len(self.skipped)} skipped, {len(self.duplicates)} duplicates dropped")


def order_candidates(candidates: Sequence[Candidate], mode: str, seed: int, class_name: str) -> list[Candidate]:
    """The order in which a class's candidates are taken: by id, or by name then shuffled with the seed."""
    if mode == "by-id":
        return sorted(candidates, key=lambda c: c.id_order)
    ordered = sorted(candidates, key=lambda c: c.name)
    # One generator per class (a string seed is hashed deterministically), so a class's order
    # does not depend on how many candidates the other classes have.
    random.Random(f"{seed}:{class_name}").shuffle(ordered)
    return ordered


def _not_enough(class_name: str, found: int, detail: str, counts: SplitCounts) -> UserError:
    fitted = counts.fitted_to(found)
    advice = f"ask for at most {found} per class, e.g. {fitted.as_arguments()}" if fitted else "use another source"
    return UserError(f"not enough images for class {class_name!r}: found {found} usable {detail}, but "
                     f"{counts.as_arguments()} needs {counts.total} per class; {advice}")


@dataclass
class _Selection:
    """What selecting and writing builds up, across classes."""

    rows: list[tuple[tuple, dict]] = field(default_factory=list)  # (sort key, manifest row)
    seen: dict[str, str] = field(default_factory=dict)  # source sha256 -> first source name
    skipped: list[dict] = field(default_factory=list)
    reencoded: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=lambda: {"copied": 0, "linked": 0, "reencoded": 0})
    relabelled: dict[str, dict[str, str]] = field(default_factory=dict)  # source name -> its manifest note
    group_of: dict[str, int] = field(default_factory=dict)  # source name -> its near-duplicate group
    group_split: dict[int, str] = field(default_factory=dict)  # group -> the split its first accepted member took
    moved: list[dict] = field(default_factory=list)  # members placed in their group's split instead of their own


def _unique_file_name(stem: str, used: set[str]) -> str:
    """``stem.jpg``, or ``stem-2.jpg`` ... when taken (``1.png`` and ``1.jpg`` in one class folder)."""
    name, suffix = f"{stem}.jpg", 2
    while name in used:
        name, suffix = f"{stem}-{suffix}.jpg", suffix + 1
    used.add(name)
    return name


def _write_accepted(candidate: Candidate, data: bytes, digest: str, checked: CheckedImage, relative: str,
                    staging: Path, link: bool, state: _Selection) -> None:
    """Write one accepted image at ``staging/relative`` and record its manifest row."""
    destination = staging / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    if checked.reencoded is not None:
        output.write_bytes(checked.reencoded, destination)  # never linked: the bytes differ from the source
        state.reencoded.append({"source": candidate.name, "path": relative, "reason": checked.reason})
        action, written = "reencoded", hashlib.sha256(checked.reencoded).hexdigest()
    else:
        action, written = output.place_image(data, destination, candidate.file_path if link else None), digest
    state.actions[action] += 1
    split, class_name, _ = relative.split("/")
    state.rows.append(((SPLITS.index(split), class_name, candidate.id_order), {
        "split": split, "class": class_name, "path": relative, "source": candidate.name,
        "id": "" if candidate.image_id is None else candidate.image_id, "sha256": written,
        "source_sha256": digest, "width": checked.width, "height": checked.height, "action": action,
        **state.relabelled.get(candidate.name, {})}))


def _select_class(source: Source, class_name: str, ordered: list[Candidate], counts: SplitCounts, staging: Path,
                  link: bool, state: _Selection, progress: tqdm) -> None:
    """Take ``ordered`` candidates until ``counts.total`` images are accepted, skipping what cannot be used."""
    accepted = 0
    used_names: set[str] = set()
    for candidate in ordered:
        if accepted == counts.total:
            break
        try:
            data = source.read(candidate)
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            state.skipped.append({"source": candidate.name, "class": class_name, "reason": f"cannot be read ({exc})"})
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in state.seen:  # the first one met in selection order is kept
            state.duplicates.append({"source": candidate.name, "duplicate_of": state.seen[digest], "sha256": digest})
            continue
        try:
            checked = check_image(data, candidate.name)
        except UndecodableImage as exc:
            state.skipped.append({"source": candidate.name, "class": class_name, "reason": str(exc)})
            continue
        state.seen[digest] = candidate.name
        split = counts.split_of(accepted)
        group = state.group_of.get(candidate.name)
        if group is not None:  # --group-near-duplicates: where the group's first member went
            kept = state.group_split.setdefault(group, split)
            if kept != split:
                state.moved.append({"source": candidate.name, "class": class_name, "from": split, "to": kept})
                split = kept
        relative = f"{split}/{class_name}/{_unique_file_name(candidate.out_stem, used_names)}"
        _write_accepted(candidate, data, digest, checked, relative, staging, link, state)
        accepted += 1
        progress.update(1)
    if accepted < counts.total:
        names = {c.name for c in ordered}
        unusable = sum(1 for s in state.skipped if s["source"] in names)
        dropped = sum(1 for d in state.duplicates if d["source"] in names)
        raise _not_enough(class_name, accepted, f"of {len(ordered)} candidates ({unusable} undecodable or "
                          f"unreadable, {dropped} duplicates)", counts)


def _apply_audit(opened: Source, exclude: str | Path | None, relabel: str | Path | None) -> dict:
    """Apply --exclude / --relabel to the opened source; what summary.json records of them."""
    excluded = read_changes(Path(exclude), "exclude", opened, relabel=False) if exclude else []
    relabelled = read_changes(Path(relabel), "relabel", opened, relabel=True) if relabel else []
    class_of = {c.name: name for name, candidates in opened.candidates.items() for c in candidates}
    apply_changes(opened, excluded, relabelled)
    return {"excluded": [{"source": c.source, "path": c.path, "class": class_of[c.source], "reason": c.reason}
                         for c in excluded],
            "relabelled": [{"source": c.source, "path": c.path, "from": class_of[c.source], "to": c.label,
                            "reason": c.reason} for c in relabelled]}


def near_duplicate_groups(source: Source, progress: bool = False) -> list[list[str]]:
    """The source's candidates in groups of near-duplicates (source names), by the audit's own functions
    (``catsdogs.data.near_duplicates``) on the perceptual hash alone: data_prep runs no model for the features the
    audit adds. A file that cannot be read or decoded is left out here; the selection names it."""
    names, hashes = [], []
    candidates = [c for name in source.class_names for c in source.candidates[name]]
    with tqdm(candidates, unit="img", desc="near-duplicates", file=sys.stderr, disable=None if progress else True,
              leave=False) as bar:
        for candidate in bar:
            try:
                hashes.append(perceptual_hash(source.read(candidate)))
            except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError):
                continue
            names.append(candidate.name)
    return [[names[i] for i in group] for group in groups_of(near_duplicate_pairs(hashes))]


def prepare_split(
    source: str | Path,
    out: str | Path,
    *,
    split: str = "random",
    seed: int = DEFAULT_SEED,
    counts: SplitCounts | SplitFractions = SplitCounts(),
    force: bool = False,
    link: bool = False,
    progress: bool = False,
    extra_summary: dict | None = None,
    images_dir: str | Path | None = None,
    exclude: str | Path | None = None,
    relabel: str | Path | None = None,
    group_near_duplicates: bool = False,
) -> PrepSummary:
    """Build ``out/{train,validation,test}/<class>/`` plus ``manifest.csv`` and ``summary.json`` from ``source``
    (``images_dir``: where a CSV source's ids are files; ``exclude`` / ``relabel``: CSVs of files to leave out or
    to put in another class, ``data_prep.changes``; ``group_near_duplicates``: each group of near-duplicates,
    ``near_duplicate_groups``, in the split its first accepted member takes, so that none leaks across splits;
    the splits' counts then differ from those asked for by the members moved, which ``summary.json`` lists).

    ``split``: ``"random"`` (seeded: same source and seed give a byte-identical manifest) or ``"by-id"``
    (candidates sorted by the number in their name: the first ``counts.train`` to train, and so on).
    ``counts`` are per class, or fractions of each class's candidates. ``force`` replaces an ``out`` that
    data_prep wrote earlier (never anything else);
    ``link`` hard-links plain JPEGs from a folder source instead of copying them. The source is only read.
    Raises UserError for anything the caller can fix (bad source, not enough images, occupied ``out``).
    """
    if split not in SPLIT_MODES:
        raise UserError(f"unknown split mode {split!r}; use one of {', '.join(SPLIT_MODES)}")
    source, out = require_source(source), Path(out).expanduser()
    output.check_destination(out, source, force)
    output.remove_leftovers(out)
    images = Path(images_dir) if images_dir else None
    with output.staging_folder(out) as staging, open_source(source, scratch_dir=staging, images_dir=images) as opened:
        extra = dict(extra_summary or {})
        state = _Selection()
        if exclude or relabel:
            extra.update(_apply_audit(opened, exclude, relabel))
            state.relabelled = {change["source"]: {"relabelled_from": change["from"], "reason": change["reason"]}
                                for change in extra["relabelled"]}
        if group_near_duplicates:
            groups = near_duplicate_groups(opened, progress)
            state.group_of = {name: number for number, group in enumerate(groups) for name in group}
        per_class = {c: counts.counts_for(len(opened.candidates[c])) for c in opened.class_names}
        for class_name, wanted in per_class.items():
            available = len(opened.candidates[class_name])
            if available < wanted.total:
                raise _not_enough(class_name, available, f"candidate files in {source}", wanted)
        total = sum(wanted.total for wanted in per_class.values())
        with tqdm(total=total, unit="img", desc="checking", file=sys.stderr, disable=None if progress else True,
                  leave=False) as bar:
            for class_name, wanted in per_class.items():
                ordered = order_candidates(opened.candidates[class_name], split, seed, class_name)
                _select_class(opened, class_name, ordered, wanted, staging, link, state, bar)
        rows = [row for _, row in sorted(state.rows, key=lambda item: item[0])]
        if group_near_duplicates:
            split_of = {row["source"]: row["split"] for row in rows}
            extra["near_duplicate_groups"] = [{"sources": group, "splits": sorted({split_of[s] for s in group
                                                                                   if s in split_of})}
                                              for group in groups]
            extra["moved_to_their_group"] = state.moved
        per_split = {name: {c: 0 for c in opened.class_names} for name in SPLITS
                     if any(getattr(wanted, name) for wanted in per_class.values())}
        for row in rows:
            per_split[row["split"]][row["class"]] += 1
        summary = PrepSummary(
            out=out.resolve(), source=source.resolve(), kind=opened.kind, split=split,
            seed=seed if split == "random" else None, requested=counts, class_names=opened.class_names,
            counts=per_split, actions=state.actions, skipped=state.skipped, reencoded=state.reencoded,
            duplicates=state.duplicates, ignored=[{"source": i.name, "reason": i.reason} for i in opened.ignored],
            candidates={c: len(opened.candidates[c]) for c in opened.class_names}, extra=extra)
        output.write_reports(staging, rows, summary.to_dict())
        opened.close()  # release the nested-zip scratch file before the folder moves
        output.publish(staging, out, force)
    return summary
