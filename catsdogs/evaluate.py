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

from catsdogs.cli import ArgumentParser, add_model_arguments, quiet_tensorflow, report_failures, run_cli
from catsdogs.config import DEFAULT_DATA_DIR, SPLITS
from catsdogs.errors import UserError
from catsdogs.outputs import claim_output_dir
from catsdogs.runtime.engines import exported_format, open_engine


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
    parser.add_argument("--calibrate", action="store_true",
                        help="first fit a temperature on the data's validation split and save the calibrated model "
                             "beside the original as <name>-calibrated.keras (the original is left as it is), then "
                             "evaluate that one")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.mistakes < 0:
        raise UserError("--batch-size must be at least 1 and --mistakes at least 0")
    quiet_tensorflow()
    # deferred: the library imports TensorFlow, which --help and flag errors should not wait for
    from catsdogs.data.files import read_image_folder, resolve_split_folder
    from catsdogs.inference.evaluation import evaluate_folder, save_calibrated
    from catsdogs.inference.reports import summary, write_evaluation
    from catsdogs.models.catalog import load_chosen_model, model_line

    folder = read_image_folder(resolve_split_folder(args.data_dir, args.split))
    claim_output_dir(args.output, [folder.root])  # before any work: results never land among the images
    if exported_format(args.model or ""):  # LiteRT, ONNX or SavedModel, read with its runtime
        model = open_engine(args.model)
        info, model_path, line = model.info, model.path, f"model: {model.describe()}"
    else:  # without --model: the best model for these classes
        model, info, model_path = load_chosen_model(args.model, args.saved_models_dir, args.unsafe,
                                                    folder.class_names)
        line = model_line(model_path, info, not args.model)
    if args.calibrate:
        if exported_format(args.model or ""):
            raise UserError("--calibrate fits the temperature of a .keras model; calibrate that one, then export it "
                            "again (the export carries the temperature)")
        validation = read_image_folder(resolve_split_folder(args.data_dir, SPLITS[1]))
        info, model_path, failures = save_calibrated(model, info, model_path, validation, args.batch_size)
        for failure in failures:
            print(f"skipped {failure}", file=sys.stderr)
        fit = info.extra["calibration_fit"]
        print(f"calibrated on {fit['images']} validation images: temperature {fit['temperature']:.3f}, NLL "
              f"{fit['nll_before']:.4f} -> {fit['nll_after']:.4f}; saved {model_path}", file=sys.stderr)
        line = f"model: {model_path} (calibrated: temperature {fit['temperature']:.3f})"
    evaluation = evaluate_folder(model, info, folder, args.batch_size, args.top_k, args.mistakes, progress=None)
    evaluation.metrics["model"] = str(model_path)
    files = write_evaluation(evaluation, args.output, info.image_size)
    print(line, file=sys.stderr)
    print(summary(evaluation.metrics))
    print(f"wrote {', '.join(path.name for path in files.values())} to {args.output}")
    return report_failures(evaluation.report.failures, len(evaluation.report.results))


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
