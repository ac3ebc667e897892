"""The promises in the README's "What catsdogs promises", checked against a hostile corpus.

A corpus of bad and odd files (each ``KIND`` below) sits beside good images in a data_prep source,
a split folder and a prediction folder. Every command that reads images runs once over all of it
(in-process, so an exception other than the one-line ``SystemExit`` fails the test: no traceback),
then one test per kind and command checks the outcome: exit status 0 since good files were there,
each unusable file named with its problem, each usable one processed, and every input byte unchanged.
The structural cases (one class, an empty folder, a file where a folder is expected and the
reverse) run per command, as does the kill test of a model being published.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers.images import make_split_folder
from PIL import Image

from catsdogs import evaluate, predict, train, visualize
from catsdogs.cli import run_cli
from catsdogs.errors import EXIT_NOTHING_DONE, EXIT_OK, EXIT_USER_ERROR
from data_prep import cli as data_prep_cli

HUGE_SIDE = 20_000
IMAGE_SIZE = 48  # what the model of these tests takes


# ------------------------------------------------------------------------------------------ the corpus
def _pixels(seed: int, shape: tuple[int, ...] = (60, 80, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _jpeg_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pixels(seed)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _save(image: Image.Image, path: Path, format: str, **options: object) -> None:
    image.save(path, format, **options)


def png_bomb(path: Path, side: int = HUGE_SIDE) -> None:
    """A grayscale PNG of ``side`` x ``side`` zeros: a few hundred KB that decode to side**2 bytes.

    Written row by row through zlib, so making it never holds the pixels either.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []  # filter byte + a row of zeros
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))


@functools.cache
def _huge_jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (HUGE_SIDE, HUGE_SIDE), 128).save(buffer, "JPEG", quality=75)
    return buffer.getvalue()


def huge_jpeg(path: Path) -> None:
    """A real 20000 x 20000 JPEG (grayscale, one colour: 4.7 MB; made once, in 0.6 s)."""
    path.write_bytes(_huge_jpeg_bytes())


def exif_rotated(path: Path) -> None:
    """A landscape JPEG whose EXIF says: turn me 90 degrees clockwise (orientation 6), as phones write."""
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(_pixels(7, (40, 90, 3))).save(path, "JPEG", exif=exif, quality=95)


def symlink_loop(path: Path) -> None:
    partner = path.with_name("loop-partner.jpg")
    os.symlink(partner.name, path)
    os.symlink(path.name, partner)


@dataclass(frozen=True)
class Kind:
    """A file a user might have: how to make it and what every command must do with it."""

    name: str  # the file name in the corpus
    make: Callable[[Path], None]
    outcome: str  # "used": processed like a good image; "skipped": named with ``words``; "ignored": not an image
    words: str = ""  # in the skipped line


KINDS = [
    Kind("empty.jpg", lambda p: p.write_bytes(b""), "skipped", "empty file"),
    Kind("truncated.jpg", lambda p: p.write_bytes(_jpeg_bytes(1)[:1500]), "skipped", "truncated"),
    Kind("text.jpg", lambda p: p.write_text("this is not a photo\n"), "skipped", "not an image"),
    Kind("png-named.jpg", lambda p: _save(Image.fromarray(_pixels(2)), p, "PNG"), "used"),
    Kind("animated-gif-named.jpg", lambda p: Image.fromarray(_pixels(3)).save(
        p, "GIF", save_all=True, append_images=[Image.fromarray(_pixels(4))]), "used"),
    Kind("cmyk.jpg", lambda p: _save(Image.fromarray(_pixels(5)).convert("CMYK"), p, "JPEG"), "used"),
    Kind("sixteen-bit.png", lambda p: _save(Image.fromarray(
        np.random.default_rng(6).integers(0, 65535, (60, 80)).astype(np.uint16)), p, "PNG"), "used"),
    Kind("rgba.png", lambda p: _save(Image.fromarray(_pixels(8)).convert("RGBA"), p, "PNG"), "used"),
    Kind("exif-rotated.jpg", exif_rotated, "used"),
    Kind("huge-20000px.jpg", huge_jpeg, "used"),
    Kind("png-bomb.png", png_bomb, "skipped", "too large"),
    Kind("loop.jpg", symlink_loop, "skipped", "cannot be read"),
    Kind(".DS_Store", lambda p: p.write_bytes(b"\0\0\0\1Bud1" + b"\0" * 64), "ignored"),
    Kind("Thumbs.db", lambda p: p.write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 64), "ignored"),
]
USED = [kind for kind in KINDS if kind.outcome == "used"]
SKIPPED = [kind for kind in KINDS if kind.outcome == "skipped"]


def add_corpus(folder: Path) -> list[Path]:
    """Every kind in ``folder``; the paths, in KINDS order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        kind.make(folder / kind.name)
        paths.append(folder / kind.name)
    return paths


def fingerprints(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (a symbolic link: its target text), so any change shows."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# ------------------------------------------------------------------------------------------ running
@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str]) -> Outcome:
    """A command in-process as its console script runs it; any exception but SystemExit fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_cli(main, list(argv))
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else EXIT_OK
        else:
            code = EXIT_OK
    return Outcome(code, out.getvalue(), err.getvalue())


def skipped_lines(outcome: Outcome) -> list[str]:
    return [line for line in outcome.err.splitlines() if line.startswith("skipped ")]


@dataclass
class Session:
    """Every command run once over the corpus, with what the inputs were before."""

    root: Path
    before: dict[str, str]
    outcomes: dict[str, Outcome]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    root = tmp_path_factory.mktemp("reliability")
    # data_prep's source: class folders, the corpus among 8 good cats, 8 + len(USED) dogs. As many
    # images are asked for as there are usable cats, so data_prep must look at every candidate.
    source = make_split_folder(root / "source-root", {"all": 8 + len(USED)}, size=40) / "all"
    for extra in range(len(USED)):
        (source / "cats" / f"cats.{8 + extra}.jpg").unlink()
    add_corpus(source / "cats")
    # A split folder as a user might assemble it: the corpus in train/cats and test/cats.
    data = make_split_folder(root / "data", {"train": 6, "validation": 3, "test": 4}, size=40)
    add_corpus(data / "train" / "cats")
    add_corpus(data / "test" / "cats")
    photos = root / "photos"
    for index in range(3):
        (photos / f"good-{index}.jpg").parent.mkdir(parents=True, exist_ok=True)
        (photos / f"good-{index}.jpg").write_bytes(_jpeg_bytes(10 + index))
    add_corpus(photos)
    inputs = [source, data, photos]
    before = {path: digest for folder in inputs for path, digest in fingerprints(folder).items()}
    models = root / "saved_models"
    outcomes = {
        "data_prep": run(data_prep_cli._main, ["--source", str(source), "--out", str(root / "prepared"),
                                               "--train", str(4 + len(USED)), "--val", "2", "--test", "2",
                                               "--quiet"]),
        "train": run(train.main, ["--data-dir", str(data), "--image-size", str(IMAGE_SIZE), "--epochs", "1",
                                  "--batch-size", "8", "--quiet", "--output", str(root / "runs"),
                                  "--saved-models-dir", str(models)]),
    }
    model = ["--model", str(models / "small_cnn.keras")]
    outcomes["evaluate"] = run(evaluate.main, ["--data-dir", str(data), *model, "--output", str(root / "evaluation")])
    outcomes["predict"] = run(predict.main, [str(photos), *model, "--format", "json",
                                             "--explain", str(root / "explained")])
    outcomes["visualize"] = run(visualize.main, ["gradcam", "--image", str(photos), *model,
                                                 "--output", str(root / "gradcam")])
    return Session(root, before, outcomes)


COMMANDS = ["data_prep", "train", "evaluate", "predict", "visualize"]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_good_files_are_processed_and_the_exit_is_zero(session, command):
    outcome = session.outcomes[command]
    assert outcome.code == EXIT_OK, outcome.err
    assert "Traceback" not in outcome.err


def _skipped_by(session: Session, command: str) -> dict[str, str]:
    """File name -> its skipped line, for the corpus files a command named."""
    lines = skipped_lines(session.outcomes[command])
    return {kind.name: line for kind in KINDS for line in lines if f"{kind.name}" in line.split(":")[0]}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", SKIPPED, ids=lambda kind: kind.name)
def test_an_unusable_file_is_named_with_its_problem(session, command, kind):
    named = _skipped_by(session, command)
    assert kind.name in named, f"{command} did not name {kind.name}:\n{session.outcomes[command].err}"
    assert kind.words in named[kind.name]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", [k for k in KINDS if k.outcome != "skipped"], ids=lambda kind: kind.name)
def test_a_usable_or_foreign_file_is_not_reported(session, command, kind):
    assert kind.name not in _skipped_by(session, command)


@pytest.mark.parametrize("kind", USED, ids=lambda kind: kind.name)
def test_usable_files_are_predicted_explained_and_evaluated(session, kind):
    predicted = json.loads(session.outcomes["predict"].out)["predictions"]
    assert any(Path(item["path"]).name == kind.name and "predicted" in item for item in predicted)
    for folder in ("explained", "gradcam"):
        assert (session.root / folder / f"{kind.name}.png").is_file()
    metrics = json.loads((session.root / "evaluation" / "metrics.json").read_text())
    evaluated = {Path(row["path"]).name for row in metrics["most_confident_mistakes"]} | {
        Path(path).name for path in _predicted_paths(session.root / "evaluation" / "predictions.csv")}
    assert kind.name in evaluated


def _predicted_paths(csv_path: Path) -> list[str]:
    return [line.split(",")[0] for line in csv_path.read_text().splitlines()[1:]]


def test_train_counts_what_it_used_and_skipped(session):
    run_dir = next((session.root / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # train/cats: 6 good + the usable kinds; test/cats: 4 good + the same; the rest skipped in both.
    assert metrics["images"]["train"] == 12 + len(USED)
    assert metrics["test"]["images"] == 8 + len(USED)
    unusable = {kind.name for kind in SKIPPED} | {"loop-partner.jpg"}  # the loop's other link is one too
    assert metrics["skipped"] == 2 * len(unusable)
    recorded = json.loads((run_dir / "config.json").read_text())["run"]["skipped"]
    assert {Path(item["path"]).name for item in recorded} == unusable


def test_data_prep_records_the_skipped_files_and_turns_photos_upright(session):
    summary = json.loads((session.root / "prepared" / "summary.json").read_text())
    assert {Path(item["source"]).name for item in summary["skipped"]} == {kind.name for kind in SKIPPED} | {
        "loop-partner.jpg"}
    reasons = {Path(item["source"]).name: item["reason"] for item in summary["reencoded"]}
    assert "upright" in reasons["exif-rotated.jpg"]
    assert "decoded at 1/" in reasons["huge-20000px.jpg"]  # grayscale, so re-encoded, from a bounded decode


def test_no_input_changed(session):
    inputs = [session.root / "source-root", session.root / "data", session.root / "photos"]
    assert len(session.before) > 3 * len(KINDS)
    after = {path: digest for folder in inputs for path, digest in fingerprints(folder).items()}
    assert after == session.before


# ------------------------------------------------------------------------------------------ structure
@pytest.fixture(scope="module")
def model_path(session: Session) -> Path:
    return session.root / "saved_models" / "small_cnn.keras"


def _structures(root: Path) -> dict[str, Path]:
    one_class = make_split_folder(root / "one-class", {"train": 3, "test": 3}, classes=("cats",))
    shutil.rmtree(one_class / "train" / "dogs", ignore_errors=True)
    shutil.rmtree(one_class / "test" / "dogs", ignore_errors=True)
    empty = root / "empty"
    (empty / "train" / "cats").mkdir(parents=True)
    (empty / "train" / "dogs").mkdir(parents=True)
    a_file = root / "a-file.jpg"
    a_file.write_bytes(_jpeg_bytes(3))
    return {"one_class": one_class, "empty": empty, "file": a_file, "folder": root / "one-class"}


@pytest.mark.parametrize("case", ["one_class", "empty", "file"])
def test_train_refuses_a_split_it_cannot_use_in_one_line(tmp_path, case):
    data = _structures(tmp_path)[case]
    outcome = run(train.main, ["--data-dir", str(data), "--image-size", str(IMAGE_SIZE), "--epochs", "1",
                               "--quiet", "--output", str(tmp_path / "runs")])
    assert outcome.code == EXIT_USER_ERROR
    assert outcome.err.count("\n") == 1 and str(data) in outcome.err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no half run left


def test_a_file_given_as_the_data_folder_is_named_as_a_file(tmp_path, model_path):
    data = _structures(tmp_path)["file"]
    assert "is a file" in run(train.main, ["--data-dir", str(data), "--quiet"]).err
    assert "is a file" in run(evaluate.main, ["--data-dir", str(data), "--model", str(model_path)]).err
    assert "is a folder" in run(predict.main, [str(data), "--model", str(tmp_path)]).err


@pytest.mark.parametrize("case", ["one_class", "empty", "file"])
def test_evaluate_refuses_in_one_line(tmp_path, model_path, case):
    data = _structures(tmp_path)[case]
    outcome = run(evaluate.main, ["--data-dir", str(data), "--model", str(model_path),
                                  "--output", str(tmp_path / "out")])
    assert outcome.code == EXIT_USER_ERROR
    assert outcome.err.count("\n") == 1 and "error:" in outcome.err


def test_predict_on_an_empty_folder_did_nothing_and_says_so(tmp_path, model_path):
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / ".DS_Store").write_bytes(b"\0")
    outcome = run(predict.main, [str(tmp_path / "nothing"), "--model", str(model_path)])
    assert outcome.code == EXIT_NOTHING_DONE
    assert "holds no images" in outcome.err and "nothing" in outcome.err


def test_predict_with_only_bad_files_exits_non_zero_naming_each(tmp_path, model_path):
    bad = [tmp_path / kind.name for kind in SKIPPED if kind.name != "png-bomb.png"]
    for kind in SKIPPED:
        if kind.name != "png-bomb.png":
            kind.make(tmp_path / kind.name)
    outcome = run(predict.main, [*map(str, bad), "--model", str(model_path)])
    assert outcome.code == EXIT_NOTHING_DONE
    assert len(skipped_lines(outcome)) == len(bad)


@pytest.mark.parametrize("argv", [
    ["--model", "{folder}", "{image}"],  # a folder where the model file goes
    ["{image}", "--kaggle-submission", "{folder}"],  # a folder where a file is written
    ["{image}", "--explain", "{image}"],  # a file where a folder is written
    ["{image}", "--kaggle-submission", "{image}"],  # an input as the output
], ids=["model-folder", "submission-folder", "explain-file", "submission-is-input"])
def test_predict_file_and_folder_mix_ups_are_one_line(tmp_path, model_path, argv):
    image = tmp_path / "photo.jpg"
    image.write_bytes(_jpeg_bytes(4))
    folder = tmp_path / "folder"
    folder.mkdir()
    before = image.read_bytes()
    argv = [a.format(folder=folder, image=image) for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(model_path)]
    outcome = run(predict.main, argv)
    assert outcome.code == EXIT_USER_ERROR
    assert outcome.err.count("\n") == 1 and outcome.err.startswith("error:")
    assert image.read_bytes() == before


@pytest.mark.parametrize("subcommand", [["activations", "--image", "{folder}"], ["gradcam", "--image", "{image}",
                                                                                 "--output", "{image}"]],
                         ids=["activations-image-is-folder", "gradcam-output-is-file"])
def test_visualize_file_and_folder_mix_ups_are_one_line(tmp_path, model_path, subcommand):
    image = tmp_path / "photo.jpg"
    image.write_bytes(_jpeg_bytes(4))
    (tmp_path / "folder").mkdir()
    argv = [a.format(folder=tmp_path / "folder", image=image) for a in subcommand]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "figures")]
    outcome = run(visualize.main, [*argv, "--model", str(model_path)])
    assert outcome.code == EXIT_USER_ERROR
    assert outcome.err.count("\n") == 1


def test_data_prep_given_a_file_as_source_is_one_line(tmp_path):
    image = tmp_path / "photo.jpg"
    image.write_bytes(_jpeg_bytes(4))
    outcome = run(data_prep_cli._main, ["--source", str(image), "--out", str(tmp_path / "out"), "--quiet"])
    assert outcome.code == EXIT_USER_ERROR
    assert outcome.err.count("\n") == 1 and "photo.jpg" in outcome.err


def test_the_readme_counts_the_kinds_of_file_checked_here():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"`tests/test_reliability.py` ({len(KINDS)} kinds of file" in readme
