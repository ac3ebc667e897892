"""Odd names: a file name that is not valid UTF-8 is named (escaped) and skipped like any bad file, never a
traceback that loses the other files; a class folder whose name holds a control character is refused in one line,
since a class name becomes a line of ``labels.txt``, JSON and figure titles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.commands import assert_one_line_error, run_command, run_data_prep
from helpers.images import make_split_folder

from catsdogs.data.files import printable
from catsdogs.evaluate import main as evaluate_main
from catsdogs.predict import main as predict_main
from catsdogs.train import main as train_main

NOT_UTF8 = os.fsdecode(b"caf\xe9.jpg")  # Latin-1's e-acute: how Python keeps bytes that are not UTF-8 (surrogates)
SHOWN = "caf\\xe9.jpg"


def test_the_escape_shows_the_bytes():
    assert printable(NOT_UTF8) == SHOWN and printable("plain é.jpg") == "plain é.jpg"


def add_badly_named_copy(folder: Path) -> Path:
    good = next(folder.glob("*.jpg"))
    target = folder / NOT_UTF8
    target.write_bytes(good.read_bytes())
    return target


@pytest.fixture
def data(tmp_path) -> Path:
    split = make_split_folder(tmp_path / "data", {"train": 6, "validation": 3, "test": 3})
    for folder in (split / "train" / "cats", split / "test" / "cats"):
        add_badly_named_copy(folder)
    return split


def test_train_evaluate_and_predict_skip_and_name_a_file_whose_name_is_not_utf8(data, tmp_path, capsys):
    models = tmp_path / "models"
    code, _, err = run_command(train_main, ["--data-dir", data, "--output", tmp_path / "runs", "--saved-models-dir",
                                            models, "--image-size", "48", "--epochs", "1", "--quiet"], capsys)
    assert code == 0 and "Traceback" not in err and f"{SHOWN}: its name is not valid UTF-8" in err, err
    [model] = models.glob("*.keras")
    code, _, err = run_command(evaluate_main, ["--model", model, "--data-dir", data, "--output", tmp_path / "eval"],
                               capsys)
    assert code == 0 and SHOWN in err and "Traceback" not in err, err
    code, out, err = run_command(predict_main, [data / "test" / "cats", "--model", model, "--format", "json"],
                                 capsys)
    assert code == 0 and SHOWN in err, err
    records = json.loads(out)["predictions"]
    assert sum("predicted" in record for record in records) == 3  # the good ones
    assert [record["path"] for record in records if "error" in record] == [str(data / "test" / "cats" / SHOWN)]


def test_data_prep_names_and_leaves_out_a_file_whose_name_is_not_utf8(tmp_path, capsys):
    source = make_split_folder(tmp_path / "source", {"all": 6}) / "all"
    add_badly_named_copy(source / "cats")
    code, _, err = run_data_prep(["--source", source, "--out", tmp_path / "prepared", "--train", "3", "--val", "1",
                                  "--test", "1", "--quiet"], capsys)
    assert code == 0 and "Traceback" not in err, err
    summary = (tmp_path / "prepared" / "summary.json").read_text().replace("\\\\", "\\")  # JSON's \\ is \
    assert SHOWN in summary or SHOWN in err
    assert not any(NOT_UTF8 in str(path) for path in (tmp_path / "prepared").rglob("*"))


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "bell\a"])
def test_a_class_name_with_a_control_character_is_refused_in_one_line(name, tmp_path, capsys):
    data = make_split_folder(tmp_path / "data", {"train": 4, "validation": 2}, classes=("cats", name))
    code, _, err = run_command(train_main, ["--data-dir", data, "--output", tmp_path / "runs", "--quiet"], capsys)
    assert_one_line_error(code, err, "control characters", "rename it")
    source = make_split_folder(tmp_path / "source", {"all": 6}, classes=("cats", name)) / "all"
    code, _, err = run_data_prep(["--source", source, "--out", tmp_path / "prepared", "--quiet"], capsys)
    assert_one_line_error(code, err, "control characters", "rename it")
