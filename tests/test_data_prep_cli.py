"""The ``python -m data_prep`` / ``catsdogs-prep`` command: flags, one-line errors with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers.commands import assert_one_line_error, run_data_prep
from helpers.data_prep import (
    build_source,
    read_manifest,
    read_summary,
    write_files,
    zip_bytes,
)


@pytest.fixture
def source(tmp_path):
    return build_source("kaggle-folder", tmp_path / "src", n_per_class=12)


def test_split_by_id_from_the_command_line(tmp_path, source, capsys):
    code, out, err = run_data_prep(["--source", source, "--out", tmp_path / "out", "--split", "by-id",
                               "--train", 6, "--val", 3, "--test", 3], capsys)
    assert code == 0
    assert out.startswith(f"wrote {(tmp_path / 'out').resolve()}: train 6+6, validation 3+3, test 3+3")
    assert out.count("\n") == 1
    rows = read_manifest(tmp_path / "out")
    assert sorted(int(r["id"]) for r in rows if r["split"] == "test" and r["class"] == "dogs") == [9, 10, 11]


def test_quiet_prints_nothing(tmp_path, source, capsys):
    code, out, err = run_data_prep(["--source", source, "--out", tmp_path / "out", "--train", 6, "--val", 3,
                               "--test", 3, "--quiet"], capsys)
    assert (code, out, err) == (0, "", "")


def test_force_from_the_command_line(tmp_path, source, capsys):
    flags = ["--source", source, "--out", tmp_path / "out", "--train", 6, "--val", 3, "--test", 3, "--quiet"]
    assert run_data_prep(flags, capsys)[0] == 0
    code, _, err = run_data_prep(flags, capsys)
    assert_one_line_error(code, err, "--force")
    assert run_data_prep([*flags, "--force", "--seed", 9], capsys)[0] == 0
    assert read_summary(tmp_path / "out")["seed"] == 9


def test_synthetic_uses_50_25_25_percent_and_cleans_up(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    code, _, _ = run_data_prep(["--synthetic", 8, "--out", tmp_path / "out", "--quiet"], capsys)
    assert code == 0
    summary = read_summary(tmp_path / "out")
    assert summary["counts"] == {"train": {"cats": 4, "dogs": 4}, "validation": {"cats": 2, "dogs": 2},
                                 "test": {"cats": 2, "dogs": 2}}
    assert summary["synthetic"]["n_per_class"] == 8 and summary["kind"] == "kaggle-folder"
    assert list((tmp_path / "tmp").iterdir()) == []  # the generated source was temporary


def test_synthetic_dir_is_kept_and_counts_can_be_given(tmp_path, capsys):
    code, _, _ = run_data_prep(["--synthetic", 10, "--synthetic-dir", tmp_path / "syn", "--synthetic-size", 40,
                           "--train", 4, "--val", 1, "--test", 1, "--out", tmp_path / "out", "--quiet"], capsys)
    assert code == 0
    assert len(list((tmp_path / "syn").glob("*.jpg"))) == 20
    assert len(read_manifest(tmp_path / "out")) == 12


@pytest.mark.parametrize("make_argv, words", [
    (lambda p: ["--source", p / "missing", "--out", p / "out"], ["does not exist"]),
    (lambda p: ["--source", p.joinpath("empty").mkdir() or p / "empty", "--out", p / "out"], ["is empty", "accepted:"]),
    (lambda p: ["--source", write_files(p, {"x.zip": zip_bytes({"a.txt": b"a"})}) / "x.zip", "--out", p / "out"],
     ["holds no images", "accepted:"]),
    (lambda p: ["--source", p, "--out", p / "out", "--train", "-3"], ["--train", "must be >= 0"]),
    (lambda p: ["--source", p, "--out", p / "out", "--val", "many"], ["--val", "whole number"]),
    (lambda p: ["--source", p, "--out", p / "out", "--split", "sideways"], ["--split", "invalid choice"]),
    (lambda p: ["--out", p / "out"], ["exactly one of --source PATH, --download, --synthetic N"]),
    (lambda p: ["--source", p, "--synthetic", 4, "--out", p / "out"], ["exactly one of", "got --source, --synthetic"]),
    (lambda p: ["--synthetic", 0, "--out", p / "out"], ["--synthetic", ">= 1"]),
    (lambda p: ["--source", p, "--out", p / "out", "--train", 0, "--val", 0, "--test", 0], ["all split counts are 0"]),
    (lambda p: ["--source", build_source("kaggle-folder", p / "s", 3), "--out", p / "out"],
     ["not enough images", "found 3", "--train 1000 --val 500 --test 500 needs 2000", "e.g. --train 1 --val 0 --test 0"]),
    (lambda p: ["--synthetic", 2, "--synthetic-dir", build_source("kaggle-folder", p / "s", 1), "--out", p / "out"],
     ["not an empty folder; choose a new or empty --synthetic-dir"]),
])
def test_bad_arguments_and_sources_exit_2_with_one_line(tmp_path, capsys, make_argv, words):
    code, out, err = run_data_prep(make_argv(tmp_path), capsys)
    assert_one_line_error(code, err, *words)
    assert not (tmp_path / "out").exists()


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "data_prep", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_python_m_data_prep_reports_a_missing_source_in_one_line(tmp_path):
    done = run_module("--source", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert_one_line_error(done.returncode, done.stderr, "does not exist")
    assert done.stdout == ""


def test_python_m_data_prep_rejects_an_unknown_split_in_one_line(tmp_path):
    done = run_module("--source", str(tmp_path), "--out", str(tmp_path / "out"), "--split", "alphabetical")
    assert_one_line_error(done.returncode, done.stderr, "invalid choice")


def test_help_states_the_default_seed_and_does_not_load_tensorflow():
    done = run_module("--help")
    assert done.returncode == 0 and "default: 1337" in done.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, data_prep.cli, data_prep.download; "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]"
