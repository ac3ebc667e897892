"""``python -m catsdogs.evaluate`` (``catsdogs-evaluate``): a saved model's scores on a labelled split folder.

Examples:
    python -m catsdogs.evaluate --data-dir data/cats_vs_dogs_small --output evaluation/
    python -m catsdogs.evaluate --model saved_models/vgg19-block5.keras --data-dir data/x/test --output eval/
    python -m catsdogs.evaluate --data-dir data/x --split validation --output eval/ --top-k 3

``--data-dir`` is a split folder (one sub-folder per class) or a ``data_prep`` output, whose
``--split`` (default ``test``) is then used; its class folders must be the model's classes. The
output folder receives ``metrics.json`` (accuracy, loss, per-class precision / recall / F1, ROC AUC,
top-k accuracy with more than 2 classes, the confusion matrix, the most confidently wrong images),
``confusion.png`` / ``confusion.json``, ``wrong.png`` (a gallery of those mistakes) and
``predictions.csv`` (``catsdogs.inference.reports``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from catsdogs.cli import ArgumentParser, add_model_arguments, report_failures, run_cli
from catsdogs.config import DEFAULT_DATA_DIR, SPLITS, TTA_MODES
from catsdogs.errors import UserError
from catsdogs.metadata import ModelInfo
from catsdogs.outputs import claim_output_dir


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.evaluate",
                            description="Score a saved model on a labelled split folder and write a report.")
    add_model_arguments(parser)
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                        help="a split folder with one sub-folder per class, or a data_prep output (see --split)")
    parser.add_argument("--split", choices=SPLITS,
                        help=f"the split of a data_prep output (default: {SPLITS[-1]})")
    parser.add_argument("--output", default="evaluation", metavar="DIR", help="where the report files go")
    parser.add_argument("--top-k", type=int, default=2, metavar="K", help="top-k accuracy (models with > 2 classes)")
    parser.add_argument("--mistakes", type=int, default=16, metavar="N",
                        help="how many of the most confidently wrong images to show and list")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    parser.add_argument("--tta", nargs="?", const="auto", choices=(*TTA_MODES, "auto"), metavar="MODE",
                        help="test-time augmentation: flip (2 views) or crops (12), probabilities averaged; alone, "
                             "the mode chosen on validation by --choose-tta (default: none)")
    tune = parser.add_argument_group("tuning on the validation split (saves <name>-calibrated|tta|threshold.keras "
                                     "beside the model, which is left as it is, then evaluates that one)")
    tune.add_argument("--calibrate", action="store_true",
                      help="fit a temperature (temperature scaling) through --tta's views: honest probabilities, "
                           "the same classes")
    tune.add_argument("--choose-tta", action="store_true",
                      help="score every --tta mode on the validation split and record the best (ties: fewer views)")
    tune.add_argument("--choose-threshold", action="store_true",
                      help="two classes: the threshold on the second class's probability with the best balanced "
                           "accuracy on validation, through --tta's views; predict, serve and exports decide by it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.mistakes < 0:
        raise UserError("--batch-size must be at least 1 and --mistakes at least 0")
    tuning = args.calibrate or args.choose_tta or args.choose_threshold
    if tuning and not (Path(args.data_dir) / SPLITS[1]).is_dir():
        raise UserError(f"--calibrate, --choose-tta and --choose-threshold fit on the validation split; "
                        f"{args.data_dir} has no {SPLITS[1]}/ folder: pass --data-dir a data_prep output")
    # deferred: the library, which --help and flag errors should not wait for (an export's needs no TensorFlow)
    from catsdogs.data.files import read_image_folder, resolve_split_folder
    from catsdogs.inference.evaluation import evaluate_folder
    from catsdogs.inference.reports import summary, write_evaluation
    from catsdogs.runtime.opening import open_classifier
    from catsdogs.runtime.tta import chosen_mode

    folder = read_image_folder(resolve_split_folder(args.data_dir, args.split))
    # without --model: the best model for these classes
    classifier = open_classifier(args.model, args.saved_models_dir, args.unsafe, folder.class_names)
    if tuning and not classifier.can_explain:
        raise UserError("--calibrate, --choose-tta and --choose-threshold tune a .keras model; tune that one, then "
                        "export it again "
                        "(the export carries what was chosen)")
    claim_output_dir(args.output, [folder.root])  # before any work: results never land among the images
    line = classifier.describe()
    requested_tta = args.tta or ("auto" if args.choose_tta else None)
    if tuning:
        from catsdogs.inference.tuning import tune_on_validation  # deferred: Keras, which exports do without

        validation = read_image_folder(resolve_split_folder(args.data_dir, SPLITS[1]))
        classifier, failures = tune_on_validation(classifier, validation, args.calibrate, args.choose_tta,
                                                  requested_tta, args.batch_size, args.choose_threshold)
        report_tuning(classifier.info, failures)
        line = f"model: {classifier.path} (tuned on {validation.root})"
    info = classifier.info
    tta = chosen_mode(requested_tta, info, classifier.path)
    evaluation = evaluate_folder(classifier, folder, args.batch_size, args.top_k, args.mistakes, progress=None,
                                 tta=tta)
    evaluation.metrics["tta"] = tta
    evaluation.metrics["model"] = str(classifier.path)
    files = write_evaluation(evaluation, args.output, info.image_size)
    print(line, file=sys.stderr)
    print(summary(evaluation.metrics))
    print(f"wrote {', '.join(path.name for path in files.values())} to {args.output}")
    return report_failures(evaluation.report.failures, len(evaluation.report.results))


def report_tuning(info: ModelInfo, failures: Sequence[object]) -> None:
    """What ``--calibrate``, ``--choose-tta`` and ``--choose-threshold`` found, on stderr (the unusable validation
    files first)."""
    for failure in failures:
        print(f"skipped {failure}", file=sys.stderr)
    fit, choice, threshold = info.extra.calibration_fit, info.extra.tta, info.extra.threshold
    if fit:
        print(f"calibrated on {fit.images} validation images (test-time augmentation {fit.tta}): "
              f"temperature {fit.temperature:.3f}, NLL {fit.nll_before:.4f} -> {fit.nll_after:.4f}", file=sys.stderr)
    if choice:
        scores = ", ".join(f"{mode} {accuracy:.4f}" for mode, accuracy in choice.accuracy.items())
        print(f"test-time augmentation on {choice.images} validation images: {scores}; chose {choice.mode}",
              file=sys.stderr)
    if threshold:
        print(f"decision threshold on {threshold.images} validation images: {threshold.second_class} at "
              f"P >= {threshold.threshold:.4f}, balanced accuracy {threshold.balanced_accuracy_at_half:.4f} at 0.5 -> "
              f"{threshold.balanced_accuracy:.4f}", file=sys.stderr)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
