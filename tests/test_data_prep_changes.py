"""Acting on an audit (``data_prep --exclude FILE --relabel FILE``): a new split from the same source, the files
named in the audit's CSVs left out or moved, the source and the old split untouched, summary.json saying why; and
``--group-near-duplicates``, which keeps a planted near-copy in its original's split."""

from __future__ import annotations

import csv

import pytest
from helpers.commands import assert_one_line_error, run_data_prep
from helpers.data_prep import build_source, read_manifest, read_summary, tree_digest
from helpers.images import plant_near_copy


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def test_exclude_and_relabel_write_a_new_split_and_leave_the_source_and_the_old_split_alone(tmp_path, capsys):
    source = build_source("kaggle-folder", tmp_path / "src", n_per_class=12)
    old = tmp_path / "old"
    counts = ["--train", "6", "--val", "2", "--test", "2", "--split", "by-id", "--quiet"]
    assert run_data_prep(["--source", source, "--out", old, *counts], capsys)[0] == 0
    before = {"source": tree_digest(source), "old": tree_digest(old)}
    manifest = read_manifest(old)
    a_cat, another_cat = [row for row in manifest if row["class"] == "cats"][:2]
    a_dog = next(row for row in manifest if row["class"] == "dogs")
    # the audit's own formats, paths into the old split
    exclude = write_csv(tmp_path / "exclude.csv", ["rank", "path", "split", "label", "score"],
                        [[1, old / a_dog["path"], a_dog["split"], "dogs", 0.1]])
    relabel = write_csv(tmp_path / "relabel.csv", ["rank", "rank_in_split", "path", "split", "given_label",
                                                   "suggested_label", "score"],
                        [[1, 1, old / a_cat["path"], a_cat["split"], "cats", "dogs", 0.01]])
    new = tmp_path / "new"
    code, _, err = run_data_prep(["--source", source, "--out", new, "--exclude", exclude, "--relabel", relabel,
                                  "--train", "5", "--val", "2", "--test", "2", "--split", "by-id", "--quiet"], capsys)
    assert code == 0, err
    assert {"source": tree_digest(source), "old": tree_digest(old)} == before  # nothing read was changed
    rows = {row["source"]: row for row in read_manifest(new)}
    assert a_dog["source"] not in rows
    assert rows[a_cat["source"]]["class"] == "dogs" and rows[another_cat["source"]]["class"] == "cats"
    # the manifest says which rows moved, from where and why; the others' notes are blank
    assert (rows[a_cat["source"]]["relabelled_from"], rows[a_cat["source"]]["reason"]) == ("cats",
                                                                                          "listed in relabel.csv")
    assert rows[another_cat["source"]]["relabelled_from"] == rows[another_cat["source"]]["reason"] == ""
    assert "relabelled_from" not in manifest[0]  # a split written without --relabel has the plain columns
    summary = read_summary(new)
    assert [(e["source"], e["class"]) for e in summary["excluded"]] == [(a_dog["source"], "dogs")]
    assert [(r["source"], r["from"], r["to"]) for r in summary["relabelled"]] == [(a_cat["source"], "cats", "dogs")]
    assert summary["relabelled"][0]["reason"] == "listed in relabel.csv"


def test_a_row_naming_no_file_of_the_source_or_an_unknown_class_is_one_line(tmp_path, capsys):
    source = build_source("kaggle-folder", tmp_path / "src", n_per_class=6)
    stray = write_csv(tmp_path / "x.csv", ["path"], [["elsewhere/cat.99.jpg"]])
    code, _, err = run_data_prep(["--source", source, "--out", tmp_path / "a", "--exclude", stray, "--train", "2",
                                  "--val", "1", "--test", "1"], capsys)
    assert_one_line_error(code, err, "--exclude", "row 2", "elsewhere/cat.99.jpg", "not a file of the source")
    birds = write_csv(tmp_path / "b.csv", ["path", "label"], [["cat.1.jpg", "birds"]])
    code, _, err = run_data_prep(["--source", source, "--out", tmp_path / "b", "--relabel", birds, "--train", "2",
                                  "--val", "1", "--test", "1"], capsys)
    assert_one_line_error(code, err, "'birds'", "cats, dogs")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_group_near_duplicates_keeps_a_planted_copy_in_its_originals_split(tmp_path, capsys):
    pytest.importorskip("imagehash", reason="the audit extra is not installed: pip install -e '.[audit]'")
    source = build_source("kaggle-folder", tmp_path / "src", n_per_class=12)
    original, copy = sorted(source.glob("cat.*.jpg"), key=lambda p: int(p.name.split(".")[1]))[1::10]
    plant_near_copy(original, copy)  # by id, the copy (cat.11) lands in test and its original (cat.1) in train
    counts = ["--train", "6", "--val", "3", "--test", "3", "--split", "by-id", "--quiet"]
    code, _, err = run_data_prep(["--source", source, "--out", tmp_path / "plain", *counts], capsys)
    assert code == 0, err
    plain = {row["source"]: row["split"] for row in read_manifest(tmp_path / "plain")}
    assert (plain[original.name], plain[copy.name]) == ("train", "test")  # the leak the option prevents

    code, _, err = run_data_prep(["--source", source, "--out", tmp_path / "grouped", "--group-near-duplicates",
                                  *counts], capsys)
    assert code == 0, err
    grouped = {row["source"]: row["split"] for row in read_manifest(tmp_path / "grouped")}
    assert (grouped[original.name], grouped[copy.name]) == ("train", "train")
    summary = read_summary(tmp_path / "grouped")
    assert summary["near_duplicate_groups"] == [{"sources": [original.name, copy.name], "splits": ["train"]}]
    assert summary["moved_to_their_group"] == [{"source": copy.name, "class": "cats", "from": "test", "to": "train"}]
    assert summary["counts"]["train"]["cats"] == 7 and summary["counts"]["test"]["cats"] == 2  # moved, not dropped
    assert {k: v for k, v in grouped.items() if k != copy.name} == {k: v for k, v in plain.items() if k != copy.name}
