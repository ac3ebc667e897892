"""Operating-system errors (a full disk, a read-only folder, a name too long) are one line and leave nothing
half-written. The errors are simulated: the tests run as root in CI, which writes through any permission, so the
renames that publish every output into the user's folders are made to fail as the system would."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from helpers.commands import assert_one_line_error, run_command, run_data_prep
from helpers.images import make_split_folder
from helpers.training import train_tiny

from catsdogs.errors import EXIT_OS_ERROR, os_error_message
from catsdogs.evaluate import main as evaluate_main
from catsdogs.export import main as export_main
from catsdogs.outputs import NAME_MAX, TEMP_PREFIX, fitted_name, temporary_path
from catsdogs.predict import main as predict_main
from catsdogs.train import main as train_main
from catsdogs.visualize import main as visualize_main

FULL, READ_ONLY, TOO_LONG = errno.ENOSPC, errno.EROFS, errno.ENAMETOOLONG
WORDS = {FULL: "is full", READ_ONLY: "is read-only", TOO_LONG: "name is too long", errno.EACCES: "is read-only",
         errno.ENOENT: "does not exist", errno.EIO: "Input/output error"}


@pytest.mark.parametrize("number", list(WORDS))
def test_each_error_is_one_line_naming_the_path_and_the_fix(number):
    message = os_error_message(OSError(number, os.strerror(number), "/data/out/metrics.json"))
    assert "'/data/out/metrics.json'" in message and WORDS[number] in message and "\n" not in message
    assert "; " in message  # the fix follows the problem


def test_an_error_without_a_path_still_says_what_happened():
    assert os_error_message(OSError(FULL, os.strerror(FULL))).startswith("a disk is full")


@pytest.fixture
def fail_writes(monkeypatch):
    """``fail(number, under, after=0)``: from the ``after``+1-th, every rename into ``under`` raises ``number``."""
    real_replace, real_rename = os.replace, os.rename

    def fail(number: int, under: Path, after: int = 0) -> None:
        calls = []

        def refusing(real):
            def call(source, target, *args, **kwargs):
                if Path(os.path.abspath(target)).is_relative_to(under.resolve()):
                    calls.append(target)
                    if len(calls) > after:
                        raise OSError(number, os.strerror(number), str(target))
                return real(source, target, *args, **kwargs)
            return call

        monkeypatch.setattr(os, "replace", refusing(real_replace))
        monkeypatch.setattr(os, "rename", refusing(real_rename))
    return fail


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny(tmp_path_factory.mktemp("model"), "small_cnn", 48, ("cats", "dogs"), False)


def leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.startswith(TEMP_PREFIX)] if folder.exists() else []


def assert_os_error(code: int, err: str, number: int, folder: Path) -> None:
    assert code == EXIT_OS_ERROR, err
    last = err.splitlines()[-1]  # after the "model: ..." line of a command that reads one
    assert last.startswith("error: ") and err.count("error") == 1 and "Traceback" not in err, err
    assert WORDS[number] in last and str(folder) in last, err
    assert not leftovers(folder), leftovers(folder)


COMMANDS = {  # command -> (its main, its arguments given the model, its data and the output folder)
    "train": (train_main, lambda model, data, out: [
        "--data-dir", data, "--output", out / "runs", "--saved-models-dir", out / "models", "--model", "small_cnn",
        "--image-size", "48", "--epochs", "1", "--batch-size", "4", "--quiet"]),
    "evaluate": (evaluate_main, lambda model, data, out: [
        "--model", model, "--data-dir", data, "--output", out]),
    "predict --kaggle-submission": (predict_main, lambda model, data, out: [
        data / "test", "--model", model, "--kaggle-submission", out / "submission.csv"]),
    "predict --explain": (predict_main, lambda model, data, out: [
        data / "test", "--model", model, "--explain", out]),
    "visualize gradcam": (visualize_main, lambda model, data, out: [
        "gradcam", "--image", data / "test", "--model", model, "--output", out]),
    "export": (export_main, lambda model, data, out: [
        "--model", model, "--format", "onnx", "--data-dir", data, "--output", out]),
}


# Every command with a full disk; the other errors through two commands (the words are the same function's, above).
CASES = [(command, FULL) for command in COMMANDS] + [(command, number) for command in ("evaluate", "predict --explain")
                                                     for number in (READ_ONLY, TOO_LONG)]


@pytest.mark.parametrize("command, number", CASES)
def test_every_command_that_writes_reports_an_os_error_in_one_line(command, number, model, tmp_path, fail_writes,
                                                                   capsys):
    if command == "export":
        pytest.importorskip("onnxruntime")
    main, arguments = COMMANDS[command]
    out = tmp_path / "out"
    fail_writes(number, out)
    code, _, err = run_command(main, arguments(*model, out), capsys)
    assert_os_error(code, err, number, out)


def test_data_prep_reports_a_full_disk_in_one_line(tmp_path, fail_writes, capsys):
    out = tmp_path / "out"
    fail_writes(FULL, out)
    code, _, err = run_data_prep(["--synthetic", "6", "--out", out], capsys)
    assert code == EXIT_OS_ERROR and err.count("\n") == 1 and "is full" in err and "Traceback" not in err, err
    assert not out.exists() or not any(out.iterdir())


def test_a_report_that_fails_half_way_leaves_none_of_its_files(model, tmp_path, fail_writes, capsys):
    out = tmp_path / "evaluation"
    fail_writes(FULL, out, after=4)  # four files are written whole before the disk fills
    code, _, err = run_command(evaluate_main, ["--model", model[0], "--data-dir", model[1], "--output", out], capsys)
    assert code == EXIT_OS_ERROR, err
    assert sorted(path.name for path in out.iterdir()) == [".catsdogs-output"]


def test_a_run_that_cannot_write_its_settings_leaves_no_run_folder(tmp_path, fail_writes, capsys):
    data = make_split_folder(tmp_path / "data", {"train": 4, "validation": 2, "test": 2})
    runs = tmp_path / "runs"
    fail_writes(FULL, runs)
    code, _, err = run_command(train_main, ["--data-dir", data, "--output", runs, "--saved-models-dir",
                                            tmp_path / "models", "--image-size", "48", "--epochs", "1", "--quiet"],
                               capsys)
    assert code == EXIT_OS_ERROR, err
    assert not list(runs.glob("*")), list(runs.glob("*"))


def test_temporary_names_never_outgrow_a_file_name():
    longest = "x" * (NAME_MAX - len(".weights.h5")) + ".weights.h5"
    temporary = temporary_path(Path("/tmp") / longest)
    assert len(temporary.name.encode()) <= NAME_MAX and temporary.name.endswith(".weights.h5")
    assert temporary.name.startswith(TEMP_PREFIX)
    assert fitted_name("short.png") == "short.png"
    # two long names that share their start and end stay two
    one, two = "a" * 300 + "1" + "b" * 50 + ".jpg.png", "a" * 300 + "2" + "b" * 50 + ".jpg.png"
    assert fitted_name(one) != fitted_name(two) and len(fitted_name(one).encode()) <= NAME_MAX


def test_explain_keeps_working_for_the_longest_file_names(model, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    image = next((model[1] / "test" / "cats").iterdir())
    longest = photos / ("c" * (NAME_MAX - len(".jpg")) + ".jpg")
    longest.write_bytes(image.read_bytes())
    code, _, err = run_command(predict_main, [longest, "--model", model[0], "--explain", tmp_path / "overlays"],
                               capsys)
    assert code == 0, err
    overlays = list((tmp_path / "overlays").glob("*.png"))
    assert len(overlays) == 1 and len(overlays[0].name.encode()) <= NAME_MAX


@pytest.mark.parametrize("flag,inside", [("--output", "train"), ("--saved-models-dir", "train/cats"),
                                         ("--output", "")])
def test_train_never_writes_inside_its_data(flag, inside, tmp_path, capsys):
    data = make_split_folder(tmp_path / "data", {"train": 4, "validation": 2, "test": 2})
    before = sorted(data.rglob("*"))
    code, _, err = run_command(train_main, ["--data-dir", data, flag, data / inside, "--image-size", "48",
                                            "--epochs", "1", "--quiet"], capsys)
    assert_one_line_error(code, err, flag, "overlaps the input")
    assert sorted(data.rglob("*")) == before


def test_export_never_writes_among_the_images_it_checks(model, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = model[1] / "test" / "exports"
    code, _, err = run_command(export_main, ["--model", model[0], "--format", "onnx", "--data-dir", model[1],
                                             "--output", out], capsys)
    last = err.splitlines()[-1]  # after export's "exporting ... to onnx"
    assert code == 2 and last.startswith("error: --output") and "overlaps the input" in last, err
    assert "Traceback" not in err and not out.exists()
