"""``python -m catsdogs.saved`` (``catsdogs-saved``): the models in ``saved_models/``, and which is the default.

Examples:
    python -m catsdogs.saved
    python -m catsdogs.saved --saved-models-dir elsewhere/ --format json

One row per model, the default first (marked ``*``: the one predict, evaluate and visualize use without
``--model``, see ``catsdogs.runtime.catalog``): file, model, classes, image size, the data it was trained
on (fingerprint), best validation accuracy, test accuracy, and when it was trained. Only the metadata
inside each archive is read, so listing is instant whatever the models' sizes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from catsdogs.cli import ArgumentParser, run_cli
from catsdogs.config import DEFAULT_SAVED_MODELS_DIR
from catsdogs.outputs import json_text
from catsdogs.runtime.catalog import list_saved_models


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.saved",
                            description="List the saved models with their classes, size, data and accuracies.")
    parser.add_argument("--saved-models-dir", default=DEFAULT_SAVED_MODELS_DIR, metavar="DIR",
                        help="the folder train publishes models to")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="a table, or JSON records")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    models = list_saved_models(args.saved_models_dir)
    rows = [model.record(default=index == 0 and model.info is not None and not model.diverged)
            for index, model in enumerate(models)]
    if args.format == "json":
        print(json_text(rows))
        return 0
    if not rows:
        print(f"no .keras model in {args.saved_models_dir}/; train one with `python -m catsdogs.train`")
        return 0
    columns = ["", "file", "model", "classes", "size", "data", "val", "test", "trained"]
    table = [[("*" if row["default"] else ""), row["file"], row["model"], "/".join(row["classes"]),
              str(row["image_size"] or ""), (row["data_fingerprint"] or "")[:8], _score(row["val_accuracy"]),
              _score(row["test_accuracy"]), row["trained"] or ""] for row in rows]
    widths = [max(len(line[i]) for line in [columns, *table]) for i in range(len(columns))]
    for line in [columns, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    print("* the default: the best validation accuracy (ties: the latest); predict, evaluate and visualize use it "
          "without --model")
    return 0


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
