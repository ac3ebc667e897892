"""Labels from a CSV (``data_prep --source labels.csv``, or Kaggle's ``id,label`` with ``--images DIR``): every rule of
the other sources holds (checked files, named skips, no duplicates, reproducible splits), and each bad row is named."""

from __future__ import annotations

from pathlib import Path

from helpers.commands import assert_one_line_error, run_data_prep
from helpers.data_prep import jpeg, read_manifest, read_summary


def photos(folder: Path, count: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"{i}.jpg"
        path.write_bytes(jpeg(i))
        paths.append(path)
    return paths


def test_path_label_rows_make_a_split_and_each_bad_row_is_named_once(tmp_path, capsys):
    root = tmp_path / "mine"
    cats, dogs = photos(root / "photos" / "a", 8), photos(root / "photos" / "b", 8, start=100)
    rows = ["path,label"] + [f"photos/a/{p.name},cats" for p in cats] + [f"photos/b/{p.name},dogs" for p in dogs]
    rows += ["photos/a/missing.jpg,cats",  # row 18: no such file
             f"photos/a/{cats[0].name},",  # 19: no label
             f"photos/b/{dogs[0].name},dogs",  # 20: listed twice
             "photos/a/0.jpg,cats,extra"]  # 21: three cells
    labels = root / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    out = tmp_path / "split"
    code, _, err = run_data_prep(["--source", labels, "--out", out, "--train", "4", "--val", "2", "--test", "2",
                                  "--quiet"], capsys)
    assert code == 0, err
    skipped = [line for line in err.splitlines() if line.startswith("skipped CSV row")]
    assert [line.split(" ", 4)[3] for line in skipped] == ["18", "19", "20", "21"], err
    assert "no such file" in skipped[0] and "no label" in skipped[1] and "listed already, in row 10" in skipped[2]
    assert "3 cells" in skipped[3]
    manifest = read_manifest(out)
    assert len(manifest) == 16 and {row["class"] for row in manifest} == {"cats", "dogs"}
    assert {row["source"] for row in manifest if row["class"] == "cats"} == {f"photos/a/{p.name}" for p in cats}
    summary = read_summary(out)
    assert summary["kind"] == "csv-labels" and len(summary["ignored"]) == 4

    again = tmp_path / "again"
    run_data_prep(["--source", labels, "--out", again, "--train", "4", "--val", "2", "--test", "2", "--quiet"], capsys)
    assert (again / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()  # reproducible


def test_kaggle_id_label_rows_name_files_in_images_and_duplicates_are_dropped(tmp_path, capsys):
    images = tmp_path / "train"
    photos(images, 12)
    (images / "11.jpg").write_bytes((images / "10.jpg").read_bytes())  # the same photo under two ids
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},{'dog' if i % 2 else 'cat'}\n" for i in range(12)) + "99,cat\n")
    out = tmp_path / "split"
    code, _, err = run_data_prep(["--source", labels, "--images", images, "--out", out, "--train", "3", "--val", "1",
                                  "--test", "1", "--quiet"], capsys)
    assert code == 0, err
    assert "skipped CSV row 14" in err and "no image file '99'" in err
    manifest = read_manifest(out)
    assert {row["class"] for row in manifest} == {"cat", "dog"}
    assert len(manifest) == 10  # 5 per class: every usable file, once the copy of another's bytes is dropped
    assert [d["source"] for d in read_summary(out)["duplicates"]] in (["train/10.jpg"], ["train/11.jpg"])


def test_a_csv_without_two_usable_classes_and_images_without_a_csv_are_one_line_errors(tmp_path, capsys):
    photos(tmp_path / "p", 3)
    labels = tmp_path / "labels.csv"
    labels.write_text("p/0.jpg,cats\np/1.jpg,cats\np/2.jpg,\n")
    code, _, err = run_data_prep(["--source", labels, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "labels 1 class(es)", "at least 2")
    code, _, err = run_data_prep(["--source", tmp_path / "p", "--images", tmp_path / "p", "--out", tmp_path / "o"],
                                 capsys)
    assert_one_line_error(code, err, "--images", "CSV")
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()
