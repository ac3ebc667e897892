"""``python -m catsdogs.predict PATH [PATH ...]`` (``catsdogs-predict``): classify image files with a saved model.

Examples:
    python -m catsdogs.predict photo.jpg holiday/ "downloads/*.png"
    python -m catsdogs.predict data/test1 --format csv > predictions.csv
    python -m catsdogs.predict data/test1 --kaggle-submission submission.csv
    python -m catsdogs.predict photo.jpg --model saved_models/vgg19-block5.keras --explain gradcam/
    python -m catsdogs.predict photo.jpg --model exports/mobilenet-litert/mobilenet.tflite   # no TensorFlow

The model is ``--model`` or the default in ``--saved-models-dir`` (the best validation accuracy,
``catsdogs.runtime.catalog``), named on stderr's first line; its metadata gives
the class names, the image size and the preprocessing, so no training flag is needed here. Paths
may be files, folders (searched recursively for images) or glob patterns (expanded here too, since
Windows shells leave them alone). An input that cannot be read or decoded is named on stderr with
its problem (``skipped PATH: why``); the others are still predicted, and the exit status is 0. It is
1 only when no input could be predicted. A missing or unloadable model is a one-line error, status 2.
An exported model (``.tflite``, ``.onnx``: ``python -m catsdogs.export``) is read with its own runtime
and Pillow, without importing TensorFlow, so one image takes a fraction of a second; a SavedModel
folder is read through TensorFlow. Grad-CAM (``--explain``) needs gradients: ``.keras`` models only.
``--explain DIR`` must be a new or empty folder, or one catsdogs wrote, apart from the inputs;
``--kaggle-submission`` never replaces an input, nor an existing file without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from catsdogs.cli import ArgumentParser, add_model_arguments, report_failures, run_cli
from catsdogs.config import TTA_MODES
from catsdogs.data.files import Failure, expand_inputs, printable
from catsdogs.errors import UserError
from catsdogs.metadata import ModelInfo
from catsdogs.outputs import check_output_file, claim_output_dir
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.prediction import predict_files
from catsdogs.runtime.results import Prediction
from catsdogs.runtime.tta import chosen_mode
from catsdogs.runtime.writers import write_csv, write_json, write_kaggle_submission

# The library's parameters whose flags have other names (its errors name parameters; this command, flags).
FLAGS = {"class_name": "--class"}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.predict",
                            description="Classify images with a saved model (class names and size from its metadata).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive) or glob patterns")
    add_model_arguments(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=("text", "json", "csv"), default="text",
                        help="text: 'path: class 97.3%%' lines; json/csv: every input with its probabilities or error")
    output.add_argument("--top-k", type=int, default=1, metavar="K",
                        help="text: the K most probable classes per image, e.g. '7 91.0%%, 1 6.2%%, 9 1.1%%'")
    parser.add_argument("--tta", nargs="?", const="auto", choices=(*TTA_MODES, "auto"), metavar="MODE",
                        help="test-time augmentation: flip (2 views) or crops (12), probabilities averaged; alone, the "
                             "mode chosen on validation (evaluate --choose-tta) (default: none)")
    output.add_argument("--min-confidence", type=float, metavar="P",
                        help="answer 'unsure' when the predicted class's probability is below P (0-1); json/csv "
                             "get an 'answer' field")
    output.add_argument("--kaggle-submission", metavar="CSV",
                        help="also write Kaggle's id,label file (label = probability of the model's second class)")
    output.add_argument("--force", action="store_true", help="let --kaggle-submission replace an existing file")
    output.add_argument("--explain", metavar="DIR",
                        help="write a Grad-CAM overlay PNG (+ heatmap .npy) per image (default: none)")
    output.add_argument("--class", dest="explain_class", metavar="NAME",
                        help="the class --explain explains (default: each image's predicted class)")
    output.add_argument("--layer", help="the layer Grad-CAM explains (default: the last feature-map layer)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    return parser


def check_kaggle(submission: str | None, info: ModelInfo, model_path: Path) -> None:
    if submission and not info.binary:
        raise UserError(f"--kaggle-submission needs a binary model; {model_path} has classes {info.class_names}")


def check_flags(args: argparse.Namespace) -> None:
    """One-line errors for flags that cannot work together, before any work."""
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, not {args.top_k}")
    if args.min_confidence is not None and not 0 <= args.min_confidence <= 1:
        raise UserError(f"--min-confidence is a probability from 0 to 1, not {args.min_confidence}")
    for flag, value in (("--layer", args.layer), ("--class", args.explain_class)):
        if value and not args.explain:
            raise UserError(f"{flag} chooses what --explain explains; pass --explain DIR too")



def print_results(items: list[Prediction | Failure], info: ModelInfo, model_path: Path,
                  args: argparse.Namespace) -> None:
    """The predictions on stdout: JSON, CSV, or a line per image with its top K and, below the threshold, unsure."""
    if args.format == "json":
        write_json(items, info, model_path, sys.stdout, args.min_confidence)
    elif args.format == "csv":
        write_csv(items, info.class_names, sys.stdout, args.min_confidence)
    else:
        for result in items:
            if isinstance(result, Failure):
                continue
            ranked = ", ".join(f"{name} {100 * p:.1f}%" for name, p in result.top(args.top_k, info.class_names))
            answer = result.answer(args.min_confidence)
            print(f"{result.path}: " + (ranked if answer == result.class_name else f"{answer} ({ranked})"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_flags(args)
    files, problems = expand_inputs(args.paths)
    # An export (LiteRT, ONNX) opens without TensorFlow; a .keras model or a SavedModel through it.
    classifier = open_classifier(args.model, args.saved_models_dir, args.unsafe)
    info, model_path = classifier.info, classifier.path
    check_kaggle(args.kaggle_submission, info, model_path)
    if args.explain:  # a wrong --layer or --class fails before any work
        if not classifier.can_explain:
            raise UserError(f"--explain draws Grad-CAM, which needs the model's gradients: it works with .keras models "
                            f"only, and {model_path} is an exported ({classifier.kind}) model")
        # deferred: Grad-CAM needs TensorFlow, which prediction alone does not (KERAS_BACKEND=jax without it)
        from catsdogs.explanations.backend import require_gradients_backend
        from catsdogs.explanations.gradcam import explain_files, resolve_target_layer

        require_gradients_backend("--explain (Grad-CAM)")
        resolve_target_layer(classifier.keras_model(), args.layer)
        explained = info.class_index(args.explain_class)
    # Outputs are checked before any work: they never replace an input, nor land among the inputs.
    if args.kaggle_submission:
        check_output_file(args.kaggle_submission, files, "kaggle_submission", args.force)
    if args.explain:
        claim_output_dir(args.explain, args.paths, "explain")
    report = predict_files(classifier, files, args.batch_size, None, chosen_mode(args.tta, info, model_path))
    if report.results:  # the first line says which model made the results
        print(classifier.describe(), file=sys.stderr)

    answered: list[Prediction | Failure] = [*report.results, *report.failures]
    by_path = {printable(item.path): item for item in answered}  # a failure names its file escaped
    items = [by_path[printable(path)] for path in files] + problems
    print_results(items, info, model_path, args)
    failures = [item for item in items if isinstance(item, Failure)]
    if args.kaggle_submission:
        path, left_out = write_kaggle_submission(report.results, args.kaggle_submission)
        failures += left_out
        print(f"wrote {path}", file=sys.stderr)
    if args.explain and report.results:
        written, _ = explain_files(classifier.keras_model(), info, [r.path for r in report.results], args.explain,
                                   args.layer, args.batch_size, explained)
        print(f"wrote {len(written)} Grad-CAM overlays to {args.explain}", file=sys.stderr)
    return report_failures(failures, len(report.results))


def cli() -> None:
    run_cli(main, flags=FLAGS)


if __name__ == "__main__":
    cli()
