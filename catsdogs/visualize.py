"""``python -m catsdogs.visualize`` (``catsdogs-visualize``): pictures of training and of what the network sees.

Examples:
    python -m catsdogs.visualize curves runs/20261124-120000-small_cnn --output figures/
    python -m catsdogs.visualize activations --image cat.jpg --layers conv1,pool1 --output figures/
    python -m catsdogs.visualize filters --model saved_models/vgg19-block5.keras --layer block5_conv1
    python -m catsdogs.visualize gradcam --image photos/ --output figures/gradcam/
    python -m catsdogs.visualize augment --image cat.jpg --count 8 --seed 1

Each subcommand writes PNGs into ``--output`` (default ``visualizations/``) and, where they are useful,
the numbers behind them beside: ``curves.json``, ``activations-<layer>.npy`` (the layer's whole map),
``filters-<layer>-<method>.npy`` / ``.json`` (the patterns, their objective before and after, their
structure scores), a Grad-CAM heatmap ``.npy`` per overlay. The model is ``--model`` or the default in
``--saved-models-dir`` (the best validation accuracy), named on stderr's first line, loaded with its
metadata (image size, class names), as in ``predict``.
The pictures come from the library: ``catsdogs.training.rundir.save_curves``,
``catsdogs.explanations`` (activations, filters, Grad-CAM) and ``catsdogs.data.augment``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.cli import ArgumentParser, add_model_arguments, report_failures, run_cli
from catsdogs.config import DEFAULT_IMAGE_SIZE, DEFAULT_VISUALIZATIONS_DIR, AugmentParams, TrainConfig
from catsdogs.data.files import require_image_file
from catsdogs.errors import UserError
from catsdogs.outputs import claim_output_dir, quiet_tensorflow


def _run_curves(args: argparse.Namespace) -> int:
    from catsdogs.training.rundir import save_curves  # deferred: Keras

    path = save_curves(args.run_dir, args.output)
    print(f"wrote {path} and curves.json")
    return 0


def _run_activations(args: argparse.Namespace) -> int:
    # deferred: TensorFlow
    from catsdogs.data.decode import read_image_file
    from catsdogs.explanations.activations import check_activation_layers, save_activation_grids
    from catsdogs.runtime.opening import open_classifier

    require_image_file(args.image)  # before the model is loaded
    classifier = open_classifier(args.model, args.saved_models_dir, args.unsafe)
    model, info = classifier.keras_model(), classifier.info
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    check_activation_layers(model, layers)  # before the image is decoded
    grids = save_activation_grids(model, read_image_file(args.image, info.image_size), args.output, layers,
                                  args.max_channels)
    print(classifier.describe(), file=sys.stderr)
    for grid in grids:
        print(f"{grid.layer}: {grid.shape[0]}x{grid.shape[1]}, {grid.tiles} of {grid.shape[2]} channels -> "
              f"{grid.path}")
    return 0


def _run_filters(args: argparse.Namespace) -> int:
    # deferred: TensorFlow
    from catsdogs.explanations.backend import require_gradients_backend
    from catsdogs.explanations.filters import STRUCTURE_THRESHOLD, check_filter_layer, save_filter_grid
    from catsdogs.runtime.opening import open_classifier

    require_gradients_backend("Filter ascent")  # before the model loads
    classifier = open_classifier(args.model, args.saved_models_dir, args.unsafe)
    model = classifier.keras_model()
    check_filter_layer(model, args.layer)
    path, ascent = save_filter_grid(model, args.layer, args.output, args.filters, args.method, args.steps, args.seed)
    print(classifier.describe(), file=sys.stderr)
    rise = float(np.mean(ascent.objective_after - ascent.objective_before))
    print(f"{ascent.layer_name} ({args.method}): {len(ascent.filters)} filters, mean activation rose by {rise:.3g}; "
          f"{ascent.structured_fraction:.0%} of the tiles structured (low-frequency share > "
          f"{STRUCTURE_THRESHOLD}) -> {path}")
    return 0


def _run_gradcam(args: argparse.Namespace) -> int:
    # deferred: TensorFlow
    from catsdogs.explanations.backend import require_gradients_backend
    from catsdogs.explanations.gradcam import save_gradcam
    from catsdogs.runtime.opening import open_classifier

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    require_gradients_backend("Grad-CAM")  # before the model loads
    classifier = open_classifier(args.model, args.saved_models_dir, args.unsafe)
    model, info = classifier.keras_model(), classifier.info
    written, failures = save_gradcam(model, info, args.image, args.output, args.layer, args.batch_size,
                                     info.class_index(args.explain_class))
    if written:
        print(classifier.describe(), file=sys.stderr)
    print(f"wrote {len(written)} Grad-CAM overlays to {args.output}")
    return report_failures(failures, len(written))


def _run_augment(args: argparse.Namespace) -> int:
    # deferred: TensorFlow
    from catsdogs.data.augment import save_augmentation_preview
    from catsdogs.data.decode import read_image_file

    params, image_size = AugmentParams(), args.image_size
    if args.from_run:
        config_path = Path(args.from_run) / "config.json"
        if not config_path.is_file():
            raise UserError(f"{args.from_run} has no config.json; pass a run directory written by "
                            "python -m catsdogs.train")
        config = TrainConfig.load(config_path)
        params, image_size = config.augment_params, args.image_size or config.image_size
    image_size = image_size or DEFAULT_IMAGE_SIZE
    if args.count < 1 or image_size < 1:
        raise UserError(f"--count and --image-size must be at least 1, not {args.count} and {image_size}")
    read_image_file(args.image, image_size)  # a missing or undecodable image is a one-line error, not a traceback
    path = save_augmentation_preview(args.image, Path(args.output) / "augmentation.png", args.count,
                                     image_size, params, args.seed)
    print(f"wrote {path}")
    return 0


def _inputs(args: argparse.Namespace) -> list[str]:
    """The paths a subcommand reads: ``--output`` must keep apart from them."""
    image = getattr(args, "image", None)
    images = [image] if isinstance(image, str) else list(image or [])
    run_dir = getattr(args, "run_dir", None)
    return images + ([run_dir] if run_dir else [])


# The library's parameters whose flags have other names (its errors name parameters; this command, flags).
FLAGS = {"class_name": "--class", "layer_names": "--layers", "images": "--image"}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.visualize",
                            description="Pictures of training and of what a saved model sees.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, run: Any, model: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  formatter_class=parser.formatter_class)
        sub.set_defaults(handler=run)
        if model:
            add_model_arguments(sub)
        sub.add_argument("--output", default=DEFAULT_VISUALIZATIONS_DIR, metavar="DIR",
                         help="where the PNGs (and data) go")
        return sub

    curves = command("curves", "accuracy and loss per epoch, training vs validation", _run_curves, model=False)
    curves.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (runs/<time>-<model>) or its history.csv")

    activations = command("activations", "one grid per layer, one tile per channel, for one image", _run_activations)
    activations.add_argument("--image", required=True, metavar="PATH", help="the image to look at")
    activations.add_argument("--layers", metavar="A,B", help="layer names (default: every convolution and pooling)")
    activations.add_argument("--max-channels", type=int, default=64, metavar="N", help="tiles per layer at most")

    filters = command("filters", "the input patterns that maximise a layer's filters (gradient ascent)",
                      _run_filters)
    filters.add_argument("--layer", help="e.g. block5_conv1 (VGG), conv_pw_13 (MobileNet), conv4 (small_cnn); "
                                         "default: the deepest convolution")
    filters.add_argument("--filters", type=int, default=64, metavar="N", help="the first N filters")
    filters.add_argument("--method", choices=("report", "improved"), default="improved",
                         help="report: 40 plain steps (Deep Learning with Python 5.4.2); improved: see "
                              "catsdogs.explanations.filters")
    filters.add_argument("--steps", type=int, help="gradient-ascent steps (default: the method's, 40 / 128)")
    filters.add_argument("--seed", type=int, default=0, help="the start's noise and the jitter")

    gradcam = command("gradcam", "Grad-CAM overlays: where the evidence for the predicted class is", _run_gradcam)
    gradcam.add_argument("--image", required=True, nargs="+", metavar="PATH",
                         help="image files, folders (recursive) or glob patterns")
    gradcam.add_argument("--layer", help="the layer to explain (default: the last feature-map layer)")
    gradcam.add_argument("--class", dest="explain_class", metavar="NAME",
                         help="the class to explain, e.g. dogs (default: each image's predicted class)")
    gradcam.add_argument("--batch-size", type=int, default=32, help="images per batch")

    augment = command("augment", "augmented versions of one image (the report's figure 7)", _run_augment,
                      model=False)
    augment.add_argument("--image", required=True, metavar="PATH", help="the image to augment")
    augment.add_argument("--count", type=int, default=8, help="augmented versions")
    augment.add_argument("--seed", type=int, default=0, help="the draw of the transforms")
    augment.add_argument("--image-size", type=int,
                         help=f"square size in pixels (default: the run's, else {DEFAULT_IMAGE_SIZE})")
    augment.add_argument("--from-run", metavar="RUN_DIR",
                         help="use the augmentation parameters a training run recorded (default: the report's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_tensorflow(None if args.handler is _run_curves else f"python -m catsdogs.visualize {args.command}")
    claim_output_dir(args.output, _inputs(args))  # never among the inputs or a user's files
    return args.handler(args)


def cli() -> None:
    run_cli(main, flags=FLAGS)


if __name__ == "__main__":
    cli()
