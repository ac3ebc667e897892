"""``python -m catsdogs.predict PATH [PATH ...]`` (``catsdogs-predict``): classify image files with a saved model.

Examples:
    python -m catsdogs.predict photo.jpg holiday/ "downloads/*.png"
    python -m catsdogs.predict data/test1 --format csv > predictions.csv
    python -m catsdogs.predict data/test1 --kaggle-submission submission.csv
    python -m catsdogs.predict photo.jpg --model saved_models/vgg19-block5.keras --explain gradcam/

The model is ``--model`` or the newest ``.keras`` file in ``--saved-models-dir``; its metadata gives
the class names, the image size and the preprocessing, so no training flag is needed here. Paths
may be files, folders (searched recursively for images) or glob patterns (expanded here too, since
Windows shells leave them alone). Images go through one batched tf.data pipeline. An input that
cannot be read or decoded is named on stderr with its problem; the others are still predicted,
and the exit status is then 1. A missing or unloadable model is a one-line error, status 2.

This module's library functions (``expand_inputs``, ``predict_files``, ``find_newest_model``)
are what ``evaluate`` and notebooks use. TensorFlow is imported only when needed, after
``quiet_tensorflow``, so ``--help`` is instant and the console stays free of start-up chatter.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from catsdogs.cli import ArgumentParser, UserError, quiet_tensorflow, run_cli

if TYPE_CHECKING:
    import keras

    from catsdogs.saving import ModelInfo

EXIT_SOME_FAILED = 1
PROGRESS_MIN_IMAGES = 200  # fewer finish before a progress bar would tell anything
_GLOB_CHARACTERS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Prediction:
    """One image's class probabilities (in ``class_names`` order) and the most probable class."""

    path: str
    probabilities: np.ndarray
    class_index: int
    class_name: str

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.class_index])


@dataclass(frozen=True)
class Failure:
    """An input that gave no prediction, and why, in words for the user."""

    path: str
    error: str

    def __str__(self) -> str:
        return f"{self.path}: {self.error}"


@dataclass
class PredictionReport:
    """The predictions in input order, and the inputs that failed."""

    class_names: list[str]
    results: list[Prediction] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def probabilities(self) -> np.ndarray:
        """``(N, classes)`` float32, one row per result."""
        return np.array([r.probabilities for r in self.results], np.float32).reshape(-1, len(self.class_names))


# ------------------------------------------------------------------------------------------- inputs
def expand_inputs(paths: Iterable[str | Path]) -> tuple[list[str], list[Failure]]:
    """Files, folders (searched recursively) and globs -> the image files to predict, and the problems.

    A file named explicitly is kept whatever its extension (a PNG named ``.jpg`` is fine; a text file
    fails later, when it does not decode); in folders only image files count. Each file appears once.
    """
    from catsdogs.data import IMAGE_EXTENSIONS, is_image_file

    files: dict[str, None] = {}  # ordered and without repeats
    problems: list[Failure] = []
    for argument in map(str, paths):
        if not os.path.exists(argument) and _GLOB_CHARACTERS.search(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                problems.append(Failure(argument, "no file matches this pattern"))
            candidates = [Path(match) for match in matches]
        else:
            candidates = [Path(argument)]
        for candidate in candidates:
            if candidate.is_dir():
                images = sorted(p for p in candidate.rglob("*") if is_image_file(p))
                if not images:
                    problems.append(Failure(str(candidate), f"folder holds no images ({', '.join(IMAGE_EXTENSIONS)})"))
                files.update((str(p), None) for p in images)
            elif candidate.is_file():
                files[str(candidate)] = None
            elif candidate.exists():
                problems.append(Failure(str(candidate), "not a regular file"))
            else:
                problems.append(Failure(str(candidate), "no such file or folder"))
    return list(files), problems


def describe_decode_failure(path: str, image_size: int) -> str:
    """Why ``path`` does not decode, in words: decoded again on its own to get TensorFlow's reason."""
    import tensorflow as tf

    from catsdogs.data import load_image

    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    try:
        load_image(path, image_size)
    except tf.errors.OpError as exc:
        # TensorFlow's message minus its "{{function_node ...}}" prefix and "[Op:...]" suffix.
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", str(exc).splitlines()[0]).strip()
        if "Unknown image file format" in reason:
            return "not an image (the bytes are not JPEG, PNG, GIF or BMP)"
        if "Invalid JPEG data" in reason:
            return "corrupt or truncated JPEG data"
        return f"cannot be decoded: {reason}"
    return "cannot be decoded"


# --------------------------------------------------------------------------------------------- model
def find_newest_model(directory: str | Path) -> Path:
    """The most recently written ``.keras`` file in ``directory``."""
    directory = Path(directory)
    models = [p for p in directory.glob("*.keras") if p.is_file() and not p.name.endswith(".partial.keras")]
    if not models:
        raise UserError(f"no .keras model in {directory}/; train one with `python -m catsdogs.train` "
                        "or pass --model PATH")
    return max(models, key=lambda p: p.stat().st_mtime)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--saved-models-dir`` and ``--unsafe``: how every reading command finds its model."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="PATH", help="a .keras file (default: the newest in --saved-models-dir)")
    group.add_argument("--saved-models-dir", default="saved_models", metavar="DIR",
                       help="where to look for the newest model when --model is not given")
    group.add_argument("--unsafe", action="store_true",
                       help="allow models that contain Python code (Lambda layers); only for files you trust")


def load_model_from_args(args: argparse.Namespace) -> tuple[keras.Model, ModelInfo, Path]:
    """The model the flags name, loaded in safe mode unless ``--unsafe``; any failure is a UserError."""
    from catsdogs.saving import load_model

    path = Path(args.model) if args.model else find_newest_model(args.saved_models_dir)
    try:
        model, info = load_model(path, unsafe=args.unsafe)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 (a zip that is not a Keras model fails in many ways in Keras)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} could not be loaded as a Keras model: {first_line}") from None
    return model, info, path


# ----------------------------------------------------------------------------------------- predicting
def class_probabilities(outputs: np.ndarray, num_classes: int) -> np.ndarray:
    """Model outputs -> ``(N, classes)``; a binary model's sigmoid ``p`` becomes ``[1 - p, p]``."""
    outputs = np.asarray(outputs, np.float32)
    if num_classes == 2 and outputs.shape[-1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=-1)
    return outputs


def predict_files(model: keras.Model, info: ModelInfo, paths: Sequence[str], batch_size: int = 32,
                  progress: bool | None = False) -> PredictionReport:
    """Predict ``paths`` in batches through ``make_path_dataset``; undecodable files become failures.

    ``progress``: a tqdm bar on stderr (None: only for large inputs on a terminal).
    """
    from tqdm import tqdm

    from catsdogs.data import make_path_dataset

    report = PredictionReport(list(info.class_names))
    if not paths:
        return report

    def fail(path: str) -> None:
        report.failures.append(Failure(path, describe_decode_failure(path, info.image_size)))

    if progress is None:  # automatic: large inputs only, and only on a terminal (tqdm's disable=None)
        disable = True if len(paths) < PROGRESS_MIN_IMAGES else None
    else:
        disable = not progress
    pending = iter(paths)  # the pipeline keeps the order and only drops files, so in and out align
    with tqdm(total=len(paths), unit="image", file=sys.stderr, disable=disable, leave=False) as bar:
        for batch_paths, images in make_path_dataset(paths, info.image_size, batch_size):
            probabilities = class_probabilities(model.predict_on_batch(images), len(info.class_names))
            for path, row in zip((p.decode() for p in batch_paths.numpy()), probabilities):
                skipped = next(pending)
                while skipped != path:  # inputs the pipeline dropped before this one
                    fail(skipped)
                    skipped = next(pending)
                index = int(np.argmax(row))
                report.results.append(Prediction(path, row, index, info.class_names[index]))
            bar.update(len(probabilities))
        for skipped in pending:
            fail(skipped)
        bar.update(len(report.failures))
    return report


# ---------------------------------------------------------------------------------------- explaining
def explain_predictions(model: keras.Model, info: ModelInfo, results: Sequence[Prediction], output_dir: str | Path,
                        layer_name: str | None = None, batch_size: int = 32) -> list[Path]:
    """A Grad-CAM overlay PNG (and its heatmap as .npy) per prediction, for the predicted class.

    The overlay is drawn on the original image at its own size; files are named after the image's
    path below the inputs' common folder (``cats/cat.1.jpg`` -> ``cats__cat.1.png``).
    """
    import tensorflow as tf

    from catsdogs.data import make_path_dataset
    from catsdogs.gradcam import grad_cam, save_overlay

    if not results:
        return []
    output_dir = Path(output_dir)
    names = _explanation_names([r.path for r in results])
    predicted = {r.path: r.class_index for r in results}
    written = []
    for batch_paths, images in make_path_dataset([r.path for r in results], info.image_size, batch_size):
        batch_paths = [p.decode() for p in batch_paths.numpy()]
        heatmaps = grad_cam(model, images, layer_name, class_index=[predicted[p] for p in batch_paths])
        for path, heatmap in zip(batch_paths, heatmaps):
            original = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).numpy()
            written.append(save_overlay(original, heatmap, output_dir / f"{names[path]}.png"))
    return written


def _explanation_names(paths: Sequence[str]) -> dict[str, str]:
    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    names = {}
    for path in paths:
        relative = os.path.relpath(os.path.abspath(path), root)
        names[path] = os.path.splitext(relative)[0].replace(os.sep, "__")
    return names


# ------------------------------------------------------------------------------------------- writing
def _record(item: Prediction | Failure, class_names: Sequence[str]) -> dict[str, Any]:
    if isinstance(item, Failure):
        return {"path": item.path, "error": item.error}
    return {"path": item.path, "predicted": item.class_name,
            "probabilities": {name: float(p) for name, p in zip(class_names, item.probabilities)}}


def write_json(items: Sequence[Prediction | Failure], info: ModelInfo, model_path: Path, stream: TextIO) -> None:
    records = [_record(item, info.class_names) for item in items]
    json.dump({"model": str(model_path), "class_names": list(info.class_names), "image_size": info.image_size,
               "predictions": records}, stream, indent=2)
    stream.write("\n")


def write_csv(items: Sequence[Prediction | Failure], class_names: Sequence[str], stream: TextIO) -> None:
    """``path, predicted, probability_<class>..., error``: one row per input, failures with ``error`` only."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["path", "predicted", *(f"probability_{name}" for name in class_names), "error"])
    for item in items:
        if isinstance(item, Failure):
            writer.writerow([item.path, "", *([""] * len(class_names)), item.error])
        else:
            writer.writerow([item.path, item.class_name, *(f"{p:.6f}" for p in item.probabilities), ""])


def write_kaggle_submission(results: Sequence[Prediction], path: str | Path) -> tuple[Path, list[Failure]]:
    """Kaggle's ``id,label`` file: id from ``N.jpg``, label = P(class 1), sorted by id.

    Files whose name is not a number are left out and returned as failures.
    """
    rows, problems = [], []
    for result in results:
        stem = Path(result.path).stem
        if stem.isdigit():
            rows.append((int(stem), float(result.probabilities[1])))
        else:
            problems.append(Failure(result.path,
                                    "not in the Kaggle test set's N.jpg naming; left out of the submission"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "label"])
        writer.writerows((image_id, f"{label:.6f}") for image_id, label in sorted(rows))
    return path, problems


def report_failures(failures: Iterable[Failure]) -> int:
    """One line per failure on stderr; the exit status to return (1 if any)."""
    failures = list(failures)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return EXIT_SOME_FAILED if failures else 0


# ----------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.predict",
                            description="Classify images with a saved model (class names and size from its metadata).",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive) or glob patterns")
    add_model_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=("text", "json", "csv"), default="text",
                        help="text: 'path: class 97.3%%' lines; json/csv: every input with its probabilities or error")
    output.add_argument("--kaggle-submission", metavar="CSV",
                        help="also write Kaggle's id,label file (label = probability of the model's second class)")
    output.add_argument("--explain", metavar="DIR", help="write a Grad-CAM overlay PNG (+ heatmap .npy) per image")
    output.add_argument("--layer", help="the layer Grad-CAM explains (default: the last feature-map layer)")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    quiet_tensorflow()
    model, info, model_path = load_model_from_args(args)
    if args.kaggle_submission and not info.binary:
        raise UserError(f"--kaggle-submission needs a binary model; {model_path} has classes {info.class_names}")
    if args.layer and not args.explain:
        raise UserError("--layer chooses the layer that --explain explains; pass --explain DIR too")
    if args.explain:
        from catsdogs.gradcam import resolve_target_layer

        resolve_target_layer(model, args.layer)  # a wrong --layer fails before any work
    files, problems = expand_inputs(args.paths)
    report = predict_files(model, info, files, args.batch_size, progress=None)

    by_path = {item.path: item for item in [*report.results, *report.failures]}
    items = [by_path[path] for path in files] + problems
    if args.format == "json":
        write_json(items, info, model_path, sys.stdout)
    elif args.format == "csv":
        write_csv(items, info.class_names, sys.stdout)
    else:
        for result in report.results:
            print(f"{result.path}: {result.class_name} {100 * result.confidence:.1f}%")
    failures = [item for item in items if isinstance(item, Failure)]
    if args.kaggle_submission:
        path, left_out = write_kaggle_submission(report.results, args.kaggle_submission)
        failures += left_out
        print(f"wrote {path}", file=sys.stderr)
    if args.explain and report.results:
        written = explain_predictions(model, info, report.results, args.explain, args.layer, args.batch_size)
        print(f"wrote {len(written)} Grad-CAM overlays to {args.explain}", file=sys.stderr)
    return report_failures(failures)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
