"""data_prep.split / output: reproducible splits, bad files replaced, atomic output, --force and --link rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest
from helpers.data_prep import (
    BAD_KINDS,
    build_source,
    jpeg,
    kaggle_files,
    read_manifest,
    read_summary,
    tree_digest,
    write_files,
)
from PIL import Image

from catsdogs.errors import UserError
from data_prep import SplitCounts, output, prepare_split

COUNTS = SplitCounts(6, 3, 3)


@pytest.fixture
def source(tmp_path):
    return build_source("kaggle-folder", tmp_path / "src", n_per_class=20)


def assert_disjoint_and_complete(out, counts=COUNTS, classes=("cats", "dogs")):
    rows = read_manifest(out)
    assert Counter((r["split"], r["class"]) for r in rows) == {
        (split, c): n for split, n in counts.as_dict().items() if n for c in classes}
    for column in ("sha256", "source_sha256", "source", "path"):
        values = [r[column] for r in rows]
        assert len(values) == len(set(values)), f"{column} repeats"
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert on_disk == sorted(r["path"] for r in rows)
    return rows


def test_random_split_is_reproducible_and_seed_dependent(tmp_path, source):
    prepare_split(source, tmp_path / "a", split="random", seed=7, counts=COUNTS)
    moved = shutil.copytree(source, tmp_path / "elsewhere" / "copy")
    prepare_split(moved, tmp_path / "b", split="random", seed=7, counts=COUNTS)
    prepare_split(source, tmp_path / "c", split="random", seed=8, counts=COUNTS)
    manifest = (tmp_path / "a" / "manifest.csv").read_bytes()
    assert manifest == (tmp_path / "b" / "manifest.csv").read_bytes()  # even from another location
    assert manifest != (tmp_path / "c" / "manifest.csv").read_bytes()
    rows = assert_disjoint_and_complete(tmp_path / "a")
    assert str(tmp_path) not in manifest.decode()  # no absolute paths
    assert {r["action"] for r in rows} == {"copied"}
    summary = read_summary(tmp_path / "a")
    assert (summary["split"], summary["seed"], summary["kind"]) == ("random", 7, "kaggle-folder")
    assert summary["counts"] == {"train": {"cats": 6, "dogs": 6}, "validation": {"cats": 3, "dogs": 3},
                                 "test": {"cats": 3, "dogs": 3}}
    assert summary["created_by"] == output.MARKER and summary["version"]


def test_random_split_is_not_the_id_order(tmp_path, source):
    prepare_split(source, tmp_path / "r", split="random", counts=COUNTS)
    ids = sorted(int(r["id"]) for r in read_manifest(tmp_path / "r") if r["class"] == "cats" and r["split"] == "train")
    assert ids != list(range(6))


def test_default_seed_is_1337(tmp_path, source):
    assert prepare_split(source, tmp_path / "d", counts=COUNTS).seed == 1337


def test_copies_are_the_source_bytes(tmp_path, source):
    prepare_split(source, tmp_path / "out", counts=COUNTS)
    for row in read_manifest(tmp_path / "out"):
        assert (tmp_path / "out" / row["path"]).read_bytes() == (source / row["source"]).read_bytes()


def test_bad_files_are_replaced_and_named_and_the_source_is_untouched(tmp_path):
    files = kaggle_files(20)
    bad_names = {}
    for k, kind in enumerate(sorted(BAD_KINDS)):
        make, _, _ = BAD_KINDS[kind]
        if k % 2:  # half replace existing files (inside the by-id train range), half are added
            name = f"{'cat' if k % 4 == 1 else 'dog'}.{k // 4}.jpg"
        else:
            name = f"{'cat' if k % 4 == 0 else 'dog'}.{100 + k}.jpg"
        files[name] = make(k)
        bad_names[name] = kind
    files["cat.50.jpg"] = files["cat.3.jpg"]  # an exact duplicate of an earlier cat
    files["dog.201.jpg"] = files["cat.4.jpg"]  # and one that crosses classes
    files["dog.300.jpg"] = jpeg(300)
    source = write_files(tmp_path / "src", files)
    before = tree_digest(source)
    # Each class has exactly 22 usable images (cats: 24 candidates - 1 undecodable - 1 duplicate; dogs: 25 - 2 - 1),
    # and asking for 22 uses all of them.
    skipped_kinds = [k for k in BAD_KINDS.values() if k[1] == "skipped"]
    counts = SplitCounts(12, 5, 5)
    for split in ("by-id", "random"):
        out = tmp_path / f"out-{split}"
        prepare_split(source, out, split=split, counts=counts)
        assert_disjoint_and_complete(out, counts)
        summary = read_summary(out)
        skipped = {s["source"]: s["reason"] for s in summary["skipped"]}
        reencoded = {r["source"]: r["reason"] for r in summary["reencoded"]}
        rows = {r["source"]: r for r in read_manifest(out)}
        assert reencoded.keys() == {name for name, row in rows.items() if row["action"] == "reencoded"}
        assert set(skipped) <= {name for name, kind in bad_names.items() if BAD_KINDS[kind][1] == "skipped"}
        for name in reencoded:
            with Image.open(out / rows[name]["path"]) as image:
                assert (image.format, image.mode) == ("JPEG", "RGB")
        if split == "by-id":  # every candidate up to the last usable one is met: each bad file, named with its reason
            for name, kind in bad_names.items():
                _, outcome, word = BAD_KINDS[kind]
                found = skipped if outcome == "skipped" else reencoded
                assert name in found and word in found[name], (kind, found.get(name))
            assert len(skipped) == len(skipped_kinds)
            assert {(d["source"], d["duplicate_of"]) for d in summary["duplicates"]} == {
                ("cat.50.jpg", "cat.3.jpg"), ("dog.201.jpg", "cat.4.jpg")}
    assert tree_digest(source) == before


def test_not_enough_candidates_is_a_user_error_with_advice(tmp_path):
    source = write_files(tmp_path / "src", kaggle_files(10))
    with pytest.raises(UserError, match=r"found 10 .*train=1000 validation=500 test=500 needs 2000 .*at most 10.*train=5 validation=2 test=2"):
        prepare_split(source, tmp_path / "out", counts=SplitCounts())
    assert not (tmp_path / "out").exists()


def test_not_enough_valid_images_is_a_user_error(tmp_path):
    files = kaggle_files(10)
    files["cat.3.jpg"] = b""
    source = write_files(tmp_path / "src", files)
    with pytest.raises(UserError, match=r"class 'cats': found 9 usable of 10 candidates \(1 undecodable") as caught:
        prepare_split(source, tmp_path / "out", counts=SplitCounts(6, 2, 2))
    assert "train=5 validation=2 test=2" in str(caught.value)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".data_prep-" in p.name]


def test_zero_count_split_is_not_created(tmp_path, source):
    prepare_split(source, tmp_path / "out", counts=SplitCounts(4, 2, 0))
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == ["train", "validation"]


# --- interruption and leftovers ----------------------------------------------------------------------


def test_crash_mid_write_leaves_no_output_and_a_rerun_works(tmp_path, source, monkeypatch):
    real_place = output.place_image
    placed = []

    def place_then_crash(*args, **kwargs):
        if len(placed) == 5:
            raise RuntimeError("simulated crash")
        placed.append(args)
        return real_place(*args, **kwargs)

    monkeypatch.setattr(output, "place_image", place_then_crash)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare_split(source, out, counts=COUNTS)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".data_prep-" in p.name]
    monkeypatch.setattr(output, "place_image", real_place)
    prepare_split(source, out, counts=COUNTS)
    assert_disjoint_and_complete(out)


def test_killed_run_leftovers_are_removed_but_foreign_folders_are_not(tmp_path, source):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    leftover = tmp_path / f".out.data_prep-tmp-{pid}-abcd1234"
    write_files(leftover, {"train/cats/cat.1.jpg": jpeg(1), ".data_prep-staging": b""})
    lookalike = tmp_path / f".out.data_prep-tmp-{pid}-ffff0000"  # right name, but not ours: keep it
    write_files(lookalike, {"precious.txt": b"mine"})
    prepare_split(source, out, counts=COUNTS)
    assert not leftover.exists()
    assert (lookalike / "precious.txt").read_bytes() == b"mine"


def test_killed_process_leaves_only_a_staging_folder(tmp_path, source):
    """A real SIGKILL half-way: OUT never appears; the next run cleans up and succeeds."""
    out = tmp_path / "out"
    script = (
        "import os, signal, sys\n"
        "from data_prep import output, prepare_split, SplitCounts\n"
        "real = output.place_image\n"
        "calls = []\n"
        "def place(*a, **k):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 4: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(*a, **k)\n"
        "output.place_image = place\n"
        f"prepare_split({str(source)!r}, {str(out)!r}, counts=SplitCounts(6, 3, 3))\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -9
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if ".data_prep-tmp-" in p.name]
    prepare_split(source, out, counts=COUNTS)
    assert_disjoint_and_complete(out)
    assert not [p for p in tmp_path.iterdir() if ".data_prep-" in p.name]


# --- --force -----------------------------------------------------------------------------------------


def test_non_empty_out_needs_force_and_force_replaces_our_output(tmp_path, source):
    out = tmp_path / "out"
    prepare_split(source, out, seed=1, counts=COUNTS)
    first = (out / "manifest.csv").read_bytes()
    with pytest.raises(UserError, match="not empty; pass force "):
        prepare_split(source, out, seed=2, counts=COUNTS)
    assert (out / "manifest.csv").read_bytes() == first
    prepare_split(source, out, seed=2, counts=COUNTS, force=True)
    assert (out / "manifest.csv").read_bytes() != first
    assert_disjoint_and_complete(out)
    assert not [p for p in tmp_path.iterdir() if ".data_prep-" in p.name]


def test_force_never_deletes_a_folder_data_prep_did_not_write(tmp_path, source):
    out = write_files(tmp_path / "mine", {"thesis.tex": b"years of work", "train/cats/x.jpg": jpeg(3)})
    before = tree_digest(out)
    with pytest.raises(UserError, match="not written by data_prep"):
        prepare_split(source, out, counts=COUNTS, force=True)
    assert tree_digest(out) == before


def test_force_never_deletes_files_a_user_added_to_our_output(tmp_path, source):
    out = tmp_path / "out"
    prepare_split(source, out, counts=COUNTS)
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(UserError, match="did not write.*notes.txt"):
        prepare_split(source, out, counts=COUNTS, force=True)
    assert (out / "notes.txt").read_text() == "my notes"


def test_an_empty_out_folder_is_fine(tmp_path, source):
    (tmp_path / "out").mkdir()
    prepare_split(source, tmp_path / "out", counts=COUNTS)
    assert_disjoint_and_complete(tmp_path / "out")


def test_out_inside_the_source_or_source_inside_out_is_refused(tmp_path, source):
    with pytest.raises(UserError, match="inside the source"):
        prepare_split(source, source / "split", counts=COUNTS)
    with pytest.raises(UserError, match="inside the source"):
        prepare_split(source, source, counts=COUNTS, force=True)
    with pytest.raises(UserError, match="is inside out="):
        prepare_split(source, tmp_path, counts=COUNTS, force=True)
    assert not (source / "split").exists()


# --- --link ------------------------------------------------------------------------------------------


def test_link_hard_links_plain_jpegs_and_writes_reencoded_files(tmp_path):
    files = kaggle_files(12)
    files["cat.2.jpg"] = BAD_KINDS["png_named_jpg"][0](1)
    source = write_files(tmp_path / "src", files)
    before = tree_digest(source)
    out = tmp_path / "out"
    prepare_split(source, out, split="by-id", counts=COUNTS, link=True)
    rows = read_manifest(out)
    assert Counter(r["action"] for r in rows) == {"linked": 23, "reencoded": 1}
    for row in rows:
        same_inode = os.stat(out / row["path"]).st_ino == os.stat(source / row["source"]).st_ino
        assert same_inode == (row["action"] == "linked")
    assert read_summary(out)["actions"] == {"copied": 0, "linked": 23, "reencoded": 1}
    assert tree_digest(source) == before


def test_link_falls_back_to_copy_across_filesystems(tmp_path, source, monkeypatch):
    def cross_device(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    prepare_split(source, tmp_path / "out", counts=COUNTS, link=True)
    assert {r["action"] for r in read_manifest(tmp_path / "out")} == {"copied"}


def test_link_from_a_zip_copies(tmp_path):
    source = build_source("kaggle-train-zip", tmp_path / "src", n_per_class=12)
    prepare_split(source, tmp_path / "out", counts=COUNTS, link=True)
    assert {r["action"] for r in read_manifest(tmp_path / "out")} == {"copied"}


def test_a_corrupt_zip_member_is_skipped_and_replaced(tmp_path):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in kaggle_files(12).items():
            archive.writestr(f"train/{name}", data)
    raw = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(raw))).getinfo("train/cat.1.jpg")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + info.file_size // 2] ^= 0xFF  # the stored bytes no longer match the CRC
    source = tmp_path / "train.zip"
    source.write_bytes(bytes(raw))
    prepare_split(source, tmp_path / "out", split="by-id", counts=SplitCounts(6, 3, 2))
    skipped = read_summary(tmp_path / "out")["skipped"]
    assert [(s["source"], "cannot be read" in s["reason"]) for s in skipped] == [("train.zip!train/cat.1.jpg", True)]
    assert_disjoint_and_complete(tmp_path / "out", SplitCounts(6, 3, 2))


# A kill at each step of --force's replacement (the kill hook above): OUT always holds a whole split, old or new.
KILL_AT = {
    "before the exchange": "def exchange(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    "after the exchange": "def exchange(a, b):\n    real_exchange(a, b); os.kill(os.getpid(), signal.SIGKILL)\n",
    "between two renames": (  # where the system cannot exchange: the old split renamed aside, then killed
        "def exchange(a, b):\n    return False\n"
        "def rename(a, b):\n    real_rename(a, b)\n    if '-old-' in str(b): os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.rename = rename\n"),
}


@pytest.mark.parametrize("moment", KILL_AT)
def test_a_kill_while_force_replaces_leaves_the_old_split_or_the_new_one(tmp_path, source, moment):
    out = tmp_path / "out"
    prepare_split(source, out, seed=1, counts=COUNTS)
    old = (out / "manifest.csv").read_bytes()
    script = (
        "import os, signal\n"
        "from data_prep import output, prepare_split, SplitCounts\n"
        "real_exchange, real_rename = output.exchange, os.rename\n"
        + KILL_AT[moment] +
        "output.exchange = exchange\n"
        f"prepare_split({str(source)!r}, {str(out)!r}, seed=2, counts=SplitCounts(6, 3, 3), force=True)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    output.remove_leftovers(out)  # what the next run does first
    assert_disjoint_and_complete(out)
    manifest = (out / "manifest.csv").read_bytes()
    assert (manifest == old) == (moment == "before the exchange"), moment  # else the new, finished split
    assert not [p for p in tmp_path.iterdir() if ".data_prep-" in p.name]
