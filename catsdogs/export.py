"""``python -m catsdogs.export --format saved_model|litert|onnx`` (``catsdogs-export``): a model out of the app.

Examples:
    python -m catsdogs.export --format litert                      # the default model, float32
    python -m catsdogs.export --model saved_models/mobilenet.keras --format litert --quantize int8
    python -m catsdogs.export --format onnx --quantize dynamic --output exports/
    python -m catsdogs.export --format saved_model                 # TF Serving: exports/<model>-saved_model/1/

Every export is the inference graph (no augmentation) with the input ``image`` (float32 RGB 0-255 at
the model's size) and the output ``probabilities`` (one per class), in a new folder beside its
``catsdogs.json`` and ``labels.txt``, its model card and ``parity.json``. The export ends with a
parity check against the Keras model on held-out images (the test split of ``--data-dir``, by
default the data recorded in the model); when it fails the exit status is 3 and the export is kept
for inspection. ``int8`` is calibrated on the training split's images. Under another Keras backend (JAX) the
command runs itself again on the TensorFlow backend, which every format needs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence

from catsdogs.cli import ArgumentParser, add_model_arguments, report_failures, run_cli
from catsdogs.config import DEFAULT_EXPORT_CHECK_IMAGES, EXPORT_FORMATS, QUANTIZATIONS
from catsdogs.errors import EXIT_CHECK_FAILED, EXIT_OK, UserError
from catsdogs.outputs import quiet_tensorflow

# The library's parameters whose flags have other names (its errors name parameters; this command, flags).
FLAGS = {"export_format": "--format"}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.export",
                            description="Export a saved model to SavedModel, LiteRT or ONNX and check it.")
    add_model_arguments(parser)
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                        help="saved_model: TF Serving's layout, signatures on tensors and on encoded images; "
                             "litert: a .tflite file; onnx: an .onnx file")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                        help="litert and onnx: float16 (half the size), dynamic (int8 weights), int8 (weights and "
                             "activations, calibrated on training images)")
    parser.add_argument("--output", default="exports", metavar="DIR",
                        help="the export goes into a new folder in DIR, named after the model, format and quantization")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="held-out images for the parity check (its test split) and int8 calibration (its train "
                             "split) (default: the data recorded in the model)")
    parser.add_argument("--check-images", type=int, default=DEFAULT_EXPORT_CHECK_IMAGES, metavar="N",
                        help="held-out images the parity check compares on (0: no check, said so on the card)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check_images < 0:
        raise UserError(f"--check-images must be 0 or more, not {args.check_images}")
    quiet_tensorflow("python -m catsdogs.export")  # one line where TensorFlow is not installed
    import keras  # deferred: Keras imports TensorFlow, as the library below does

    if keras.backend.backend() != "tensorflow":
        # Keras exports through TensorFlow's graphs (LiteRT needs its backend, ONNX and SavedModel its dtypes):
        # the same command again on the TensorFlow backend, which reads the .keras file as well.
        print(f"exporting on the TensorFlow backend (KERAS_BACKEND is {keras.backend.backend()})", file=sys.stderr)
        again = [sys.executable, "-m", "catsdogs.export", *(sys.argv[1:] if argv is None else argv)]
        return subprocess.run(again, env={**os.environ, "KERAS_BACKEND": "tensorflow"}).returncode
    # deferred: the library imports TensorFlow, which --help and flag errors should not wait for
    from catsdogs.exports.exporter import export_model
    from catsdogs.exports.parity import describe
    from catsdogs.runtime.catalog import choose_model

    source = args.model or choose_model(args.saved_models_dir)
    print(f"exporting {source} to {args.format}" + ("" if args.quantize == "none" else f" ({args.quantize})"),
          file=sys.stderr)
    export = export_model(source, args.format, args.quantize, args.output, args.data_dir, args.check_images,
                          args.unsafe)
    report_failures(export.skipped, 1)  # unreadable held-out or calibration images, named, then left out
    print(f"wrote {export.model_path} with catsdogs.json, labels.txt and its model card in {export.folder}")
    if export.parity is None:
        print("no parity check (--check-images 0)")
        return EXIT_OK
    print(describe(export.parity))
    return EXIT_OK if export.passed else EXIT_CHECK_FAILED


def cli() -> None:
    run_cli(main, flags=FLAGS)


if __name__ == "__main__":
    cli()
