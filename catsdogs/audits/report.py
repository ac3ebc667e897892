"""The audit's findings, and the files a person reads them in.

Every finding names its files by path (never by an index into another table), so a CSV can be edited and
handed back (``data_prep --exclude/--relabel``, in the report's format). Written into the output folder:

- ``report.html``: one page, thumbnails embedded (it opens from the disk, without a server), a section per finding;
- ``label_issues.csv``, ``near_duplicates.csv``, ``outliers.csv``, ``odd_images.csv``, ``counts.csv``;
- ``audit.json``: all of it, plus every image's label score (the full ranking, for measuring the check);
- ``label_issues.png``, ``near_duplicates.png``, ``outliers.png``, ``odd_images.png``: contact sheets.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from catsdogs.audits.labels import LabelCheck
from catsdogs.audits.outliers import Oddity
from catsdogs.data.files import Failure, printable
from catsdogs.data.images import open_upright
from catsdogs.outputs import write_json, write_text
from catsdogs.plots import image_grid

THUMBNAIL_SIDE = 128
UNBALANCED = 1.5  # largest class over smallest, in any split: worth a warning (accuracy hides the small class)


@dataclass(frozen=True)
class AuditedImage:
    path: str
    split: str
    label: int


@dataclass
class Audit:
    """What the checks found in one image set."""

    class_names: tuple[str, ...]
    images: list[AuditedImage]
    labels: LabelCheck | None = None
    label_note: str = ""  # why the label check did not run, when it did not
    groups: list[list[int]] = field(default_factory=list)
    outlier_scores: np.ndarray | None = None
    outlier_indices: Sequence[int] | np.ndarray = ()
    oddities: list[Oddity] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    shown: int = 30  # suspects and outliers drawn in the HTML and the contact sheets

    def counts(self) -> dict[str, dict[str, int]]:
        counted = Counter((image.split, image.label) for image in self.images)
        splits = list(dict.fromkeys(image.split for image in self.images))
        return {split: {name: counted[(split, index)] for index, name in enumerate(self.class_names)}
                for split in splits}

    def unbalanced(self) -> list[str]:
        """A warning per split whose largest class has more than ``UNBALANCED`` times its smallest."""
        warnings = []
        for split, per_class in self.counts().items():
            low, high = min(per_class.values()), max(per_class.values())
            if high > UNBALANCED * max(low, 1):
                warnings.append(f"{split}: unbalanced classes ({', '.join(f'{k} {v}' for k, v in per_class.items())})"
                                "; consider train --class-weight balanced and balanced accuracy")
        return warnings

    def suspects(self) -> list[dict[str, Any]]:
        """cleanlab's label issues, most suspicious first, with their rank in their own split."""
        if self.labels is None:
            return []
        rows, per_split = [], Counter[str]()
        for rank, index in enumerate(self.labels.ranked(), 1):
            image = self.images[index]
            per_split[image.split] += 1
            if self.labels.is_issue[index]:
                rows.append({"rank": rank, "rank_in_split": per_split[image.split], "path": printable(image.path),
                             "split": image.split, "given_label": self.class_names[image.label],
                             "suggested_label": self.class_names[int(self.labels.suggested[index])],
                             "score": round(float(self.labels.scores[index]), 6)})
        return rows

    def duplicate_rows(self) -> list[dict[str, Any]]:
        rows = []
        for number, group in enumerate(self.groups, 1):
            leak = len({self.images[i].split for i in group}) > 1
            rows += [{"group": number, "leak": leak, "path": printable(self.images[i].path),
                      "split": self.images[i].split, "label": self.class_names[self.images[i].label]} for i in group]
        return rows

    def outlier_rows(self) -> list[dict[str, Any]]:
        scores = self.outlier_scores if self.outlier_scores is not None else np.zeros(0)
        return [{"rank": rank, "path": printable(self.images[i].path), "split": self.images[i].split,
                 "label": self.class_names[self.images[i].label], "score": round(float(scores[i]), 6)}
                for rank, i in enumerate(self.outlier_indices, 1)]

    def odd_rows(self) -> list[dict[str, Any]]:
        return [{"path": printable(self.images[o.index].path), "split": self.images[o.index].split,
                 "label": self.class_names[self.images[o.index].label], "kind": o.kind, "value": round(o.value, 3)}
                for o in self.oddities]

    def summary(self) -> dict[str, Any]:
        leaks = sum(len({self.images[i].split for i in g}) > 1 for g in self.groups)
        return {"images": len(self.images), "classes": list(self.class_names), "counts": self.counts(),
                "unbalanced": self.unbalanced(), "label_issues": len(self.suspects()),
                "label_check": self.label_note or "ran", "near_duplicate_groups": len(self.groups),
                "leaking_groups": leaks, "outliers": len(self.outlier_indices), "odd_images": len(self.oddities),
                "skipped_files": [str(f) for f in self.failures]}


def _csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _thumbnail(path: str) -> np.ndarray:
    try:
        return open_upright(path, THUMBNAIL_SIDE)
    except (OSError, ValueError):
        return np.full((THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3), 200, np.uint8)


def _data_uri(path: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(_thumbnail(path)).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _sheet(rows: list[dict[str, Any]], files: dict[str, str], path: Path, title: Any) -> None:
    """A contact sheet of the rows' images (``files``: a row's printable path -> the file)."""
    image_grid([_thumbnail(files[row["path"]]) for row in rows], path, titles=[title(row) for row in rows],
               tile_inches=1.6)


def _cards(rows: list[dict[str, Any]], files: dict[str, str], caption: Any) -> str:
    return "".join(f'<figure><img src="{_data_uri(files[row["path"]])}" alt="{html.escape(row["path"])}">'
                   f"<figcaption>{caption(row)}</figcaption></figure>" for row in rows)


def write_report(audit: Audit, output: Path) -> list[Path]:
    """Every file of the module's docstring in ``output``; the paths written."""
    files = {printable(image.path): image.path for image in audit.images}
    suspects, duplicates = audit.suspects(), audit.duplicate_rows()
    outlying, odd = audit.outlier_rows(), audit.odd_rows()
    written = [
        write_text(output / "label_issues.csv", _csv(suspects, ["rank", "rank_in_split", "path", "split",
                                                                "given_label", "suggested_label", "score"])),
        write_text(output / "near_duplicates.csv", _csv(duplicates, ["group", "leak", "path", "split", "label"])),
        write_text(output / "outliers.csv", _csv(outlying, ["rank", "path", "split", "label", "score"])),
        write_text(output / "odd_images.csv", _csv(odd, ["path", "split", "label", "kind", "value"])),
        write_text(output / "counts.csv", _csv([{"split": s, "class": c, "images": n} for s, per in
                                                audit.counts().items() for c, n in per.items()],
                                               ["split", "class", "images"])),
    ]
    ranking = []
    if audit.labels is not None:
        ranking = [{"path": printable(audit.images[i].path), "split": audit.images[i].split,
                    "given_label": audit.class_names[audit.images[i].label],
                    "score": float(audit.labels.scores[i])} for i in audit.labels.ranked()]
    written.append(write_json(output / "audit.json", {
        "summary": audit.summary(), "label_issues": suspects, "near_duplicates": duplicates, "outliers": outlying,
        "odd_images": odd, "label_ranking": ranking}))
    sheets = [("label_issues.png", suspects[:audit.shown],
               lambda r: f"{r['given_label']}->{r['suggested_label']} {r['score']:.2f}"),
              ("near_duplicates.png", duplicates[:4 * audit.shown],
               lambda r: f"group {r['group']} {r['split']}" + (" LEAK" if r["leak"] else "")),
              ("outliers.png", outlying[:audit.shown], lambda r: f"{r['label']} {r['score']:.2f}"),
              ("odd_images.png", odd[:audit.shown], lambda r: f"{r['kind']} {r['value']:g}")]
    for name, rows, title in sheets:
        if rows:
            _sheet(rows, files, output / name, title)
            written.append(output / name)
    written.append(write_text(output / "report.html", _html(audit, files, suspects, duplicates, outlying, odd)))
    return written


def _html(audit: Audit, files: dict[str, str], suspects: list[dict[str, Any]], duplicates: list[dict[str, Any]],
          outlying: list[dict[str, Any]], odd: list[dict[str, Any]]) -> str:
    e = html.escape
    summary = audit.summary()
    counts = "".join(f"<tr><th>{e(split)}</th>" + "".join(f"<td>{n}</td>" for n in per.values()) + "</tr>"
                     for split, per in audit.counts().items())
    groups = []
    for number in dict.fromkeys(row["group"] for row in duplicates[:4 * audit.shown]):
        members = [row for row in duplicates if row["group"] == number]
        leak = members[0]["leak"]
        groups.append(f'<div class="group{" leak" if leak else ""}"><h3>group {number}'
                      f'{" - across splits (leak)" if leak else ""}</h3>'
                      + _cards(members, files,
                               lambda r: f"{e(r['split'])} / {e(r['label'])}<br><code>{e(r['path'])}</code>")
                      + "</div>")
    label_section = (_cards(suspects[:audit.shown], files, lambda r: f"#{r['rank']} {e(r['split'])}: given "
                            f"<b>{e(r['given_label'])}</b>, suggested <b>{e(r['suggested_label'])}</b>, score "
                            f"{r['score']:.3f}<br><code>{e(r['path'])}</code>")
                     if audit.labels is not None else f"<p>Not run: {e(audit.label_note)}</p>")
    warnings = "".join(f"<p class=warn>{e(w)}</p>" for w in audit.unbalanced())
    outlier_section = _cards(outlying[:audit.shown], files, lambda r: f"{e(r['split'])} / {e(r['label'])}, score "
                             f"{r['score']:.3f}<br><code>{e(r['path'])}</code>") or "<p>Not run, or none.</p>"
    odd_section = _cards(odd[:audit.shown], files,
                         lambda r: f"{e(r['kind'])} ({r['value']:g})<br><code>{e(r['path'])}</code>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>catsdogs audit</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
figure {{ display: inline-block; width: {THUMBNAIL_SIDE + 40}px; margin: .3rem; vertical-align: top;
          font-size: .75rem; }}
figure img {{ max-width: {THUMBNAIL_SIDE}px; max-height: {THUMBNAIL_SIDE}px; display: block; }}
code {{ word-break: break-all; }} .group {{ border: 1px solid #ccc; padding: .3rem; margin: .5rem 0; }}
.leak {{ border-color: #c00; }} .warn {{ color: #b60; }} td, th {{ padding: .2rem .6rem; text-align: right; }}
</style></head><body>
<h1>Audit of {summary["images"]} images</h1>
<h2>Counts per class and split</h2>
<table><tr><th></th>{"".join(f"<th>{e(c)}</th>" for c in audit.class_names)}</tr>{counts}</table>{warnings}
<h2>Label issues: {summary["label_issues"]} (the {min(audit.shown, len(suspects))} most suspicious shown)</h2>
{label_section}
<h2>Near-duplicates: {len(audit.groups)} groups, {summary["leaking_groups"]} across splits</h2>
{"".join(groups) or "<p>None found.</p>"}
<h2>Outliers: {len(outlying)} (the images farthest from their nearest neighbours)</h2>
{outlier_section}
<h2>Odd images: {len(odd)}</h2>
{odd_section or "<p>None.</p>"}
</body></html>
"""
