"""data_prep.sources: every accepted layout is detected and split by id exactly; unknown ones are refused."""

from __future__ import annotations

import pytest
from helpers.data_prep import (
    build_source,
    jpeg,
    read_manifest,
    read_summary,
    tree_digest,
    write_files,
    zip_bytes,
)

from catsdogs.errors import UserError
from data_prep import SplitCounts, prepare_split
from data_prep.sources import image_id_from_name, open_source

COUNTS = SplitCounts(6, 3, 3)  # of 12 per class: ids 0-5 train, 6-8 validation, 9-11 test

# kind -> (detected kind, class names, the source name of cat 10, ids' file-name pattern)
LAYOUTS = {
    "kaggle-competition-zip": ("kaggle-competition-zip", ["cats", "dogs"], "dogs-vs-cats.zip!train.zip!train/cat.10.jpg"),
    "kaggle-train-zip": ("kaggle-train-zip", ["cats", "dogs"], "train.zip!train/cat.10.jpg"),
    "kaggle-folder": ("kaggle-folder", ["cats", "dogs"], "cat.10.jpg"),
    "kaggle-folder-train": ("kaggle-folder", ["cats", "dogs"], "train/cat.10.jpg"),
    "petimages-zip": ("petimages-zip", ["cats", "dogs"], "kagglecatsanddogs_5340.zip!PetImages/Cat/10.jpg"),
    "petimages-folder": ("petimages-folder", ["cats", "dogs"], "Cat/10.jpg"),
    "class-folders": ("class-folders", ["bird", "fish", "lizard"], "bird/img_10.jpg"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_is_detected_and_split_by_id(tmp_path, layout):
    kind, classes, cat_10 = LAYOUTS[layout]
    source = build_source(layout, tmp_path / "src", n_per_class=12)
    before = tree_digest(source)
    out = tmp_path / "out"
    summary = prepare_split(source, out, split="by-id", counts=COUNTS)
    assert summary.kind == kind and list(summary.class_names) == classes
    rows = read_manifest(out)
    for class_name in classes:
        ids = {split: sorted(int(r["id"]) for r in rows if r["class"] == class_name and r["split"] == split)
               for split in ("train", "validation", "test")}
        # numeric order, not string order ("10" < "2"): exactly the book's rule scaled down
        assert ids == {"train": list(range(6)), "validation": [6, 7, 8], "test": [9, 10, 11]}
        for split in ids:
            files = sorted(p.name for p in (out / split / class_name).iterdir())
            assert len(files) == len(ids[split]) and all(f.endswith(".jpg") for f in files)
    assert cat_10 in {r["source"] for r in rows}
    assert tree_digest(source) == before


def test_petimages_thumbs_db_and_extras_are_ignored_and_named(tmp_path):
    source = build_source("petimages-zip", tmp_path / "src", n_per_class=12)
    prepare_split(source, tmp_path / "out", split="by-id", counts=COUNTS)
    ignored = {i["source"]: i["reason"] for i in read_summary(tmp_path / "out")["ignored"]}
    assert "kagglecatsanddogs_5340.zip!PetImages/Cat/Thumbs.db" in ignored
    assert "kagglecatsanddogs_5340.zip!readme[1].txt" in ignored


def test_competition_zip_ignores_test1_and_submission(tmp_path):
    source = build_source("kaggle-competition-zip", tmp_path / "src", n_per_class=12)
    with open_source(source) as opened:
        assert {i.name for i in opened.ignored} == {"dogs-vs-cats.zip!test1.zip", "dogs-vs-cats.zip!sampleSubmission.csv"}
        assert opened.read(opened.candidates["cats"][0])[:2] == b"\xff\xd8"


def test_petimages_folder_given_as_its_parent(tmp_path):
    build_source("petimages-folder", tmp_path / "src", n_per_class=12)
    with open_source(tmp_path / "src" / "extracted") as opened:
        assert opened.kind == "petimages-folder"
        assert opened.candidates["dogs"][0].name.startswith("PetImages/Dog/")


def test_class_folders_without_numbers_use_name_order(tmp_path):
    files = {f"{cls}/{name}.jpg": jpeg(hash((cls, name)) % 10_000)
             for cls in ("ants", "bees") for name in ("delta", "alpha", "charlie", "bravo")}
    source = write_files(tmp_path / "src", files)
    prepare_split(source, tmp_path / "out", split="by-id", counts=SplitCounts(2, 1, 1))
    rows = read_manifest(tmp_path / "out")
    assert [r["source"] for r in rows if r["class"] == "ants"] == ["ants/alpha.jpg", "ants/bravo.jpg",
                                                                  "ants/charlie.jpg", "ants/delta.jpg"]
    assert [r["split"] for r in rows if r["class"] == "ants"] == ["train", "train", "validation", "test"]


def test_image_ids_from_names():
    assert image_id_from_name("cat.123.jpg") == 123
    assert image_id_from_name("123.jpg") == 123
    assert image_id_from_name("img_0042.png") == 42
    assert image_id_from_name("photo.jpg") is None


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "does not exist"),
    (lambda root: root.joinpath("empty").mkdir() or root / "empty", "is empty"),
    (lambda root: write_files(root / "one", {"only/a.jpg": jpeg(1)}), "accepted:"),
    (lambda root: write_files(root / "txt", {"notes.txt": b"hello"}), "accepted:"),
    (lambda root: write_files(root, {"docs.zip": zip_bytes({"a.txt": b"x"})}) / "docs.zip", "holds no images"),
    (lambda root: write_files(root, {"broken.zip": b"PK\x03\x04 not really"}) / "broken.zip", "not a readable zip"),
    (lambda root: write_files(root, {"data.tar": b"\x00" * 100}) / "data.tar", "neither a folder nor a zip"),
])
def test_unrecognised_sources_are_one_line_user_errors(tmp_path, make, message):
    with pytest.raises(UserError, match=message) as caught:
        prepare_split(make(tmp_path), tmp_path / "out", counts=SplitCounts(1, 0, 0))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_data_prep_output_is_not_taken_as_a_source(tmp_path):
    source = build_source("kaggle-folder", tmp_path / "src", n_per_class=12)
    prepare_split(source, tmp_path / "out", counts=COUNTS)
    with pytest.raises(UserError, match="written by data_prep"):
        prepare_split(tmp_path / "out", tmp_path / "out2", counts=SplitCounts(1, 0, 0))
