"""``python -m catsdogs.train`` (``catsdogs-train``): flags -> ``TrainConfig`` -> ``catsdogs.training.train``.

Examples:
    python -m catsdogs.train --data-dir data/cats_vs_dogs_small --model small_cnn --epochs 100
    python -m catsdogs.train --model vgg19 --unfreeze block5 --warmup-epochs 5 --epochs 30
    python -m catsdogs.train --model mobilenet --alpha 0.25 --image-size 224 --unfreeze 0.3
    python -m catsdogs.train --resume runs/20261124-120000-vgg19-block5
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from catsdogs.cli import ArgumentParser, UserError, quiet_tensorflow, run_cli
from catsdogs.config import AUGMENT_PLACES, FILL_MODES, OPTIMIZERS, STRATEGIES, AugmentParams, TrainConfig

_DEFAULTS = TrainConfig()
_AUGMENT = AugmentParams()


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m catsdogs.train",
        description="Train an image classifier on a split folder (train/validation/test, one sub-folder per class).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Models: small_cnn, vgg16, vgg19, mobilenet, mobilenet_v2, resnet50, efficientnet_b0, xception, "
               "densenet121 (see --list-models).",
    )
    parser.add_argument("--list-models", action="store_true", help="list the registered models and exit")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last finished epoch")

    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=_DEFAULTS.data_dir, help="split folder written by python -m data_prep")
    data.add_argument("--image-size", type=int, default=_DEFAULTS.image_size, help="square input size in pixels")
    data.add_argument("--cache", default=_DEFAULTS.cache,
                      help="decoded-image cache: auto (memory when it fits), memory, none, or a file path")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default=_DEFAULTS.model, help="registered model name")
    model.add_argument("--weights", default=_DEFAULTS.weights,
                       help="imagenet (Keras cache, KERAS_HOME), a local weights file, or none")
    model.add_argument("--unfreeze", default=_DEFAULTS.unfreeze,
                       help="base layers to fine-tune: none, all, blockK (VGG: K..5), a fraction, or a layer name")
    model.add_argument("--alpha", type=float, default=_DEFAULTS.alpha, help="width multiplier (MobileNet)")
    model.add_argument("--dropout", type=float, default=_DEFAULTS.dropout, help="dropout rate before the output")
    model.add_argument("--batchnorm", action="store_true", help="BatchNormalization after each conv (small_cnn)")

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--epochs", type=int, default=_DEFAULTS.epochs,
                              help="epochs (after the warm-up when fine-tuning)")
    optimisation.add_argument("--warmup-epochs", type=int, default=_DEFAULTS.warmup_epochs,
                              help="head-only epochs with the base frozen before --unfreeze takes effect")
    optimisation.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="batch size per replica")
    optimisation.add_argument("--optimizer", choices=OPTIMIZERS, default=_DEFAULTS.optimizer)
    optimisation.add_argument("--lr", type=float, default=_DEFAULTS.lr,
                              help="learning rate from scratch and for the head (report: 1e-4)")
    optimisation.add_argument("--fine-tune-lr", type=float, default=_DEFAULTS.fine_tune_lr,
                              help="learning rate once layers are unfrozen (report: 1e-5)")
    optimisation.add_argument("--ema", type=float, default=_DEFAULTS.ema, metavar="MOMENTUM",
                              help="validate and keep a moving average of the weights, e.g. 0.99 (0: off)")
    optimisation.add_argument("--early-stopping", type=int, default=_DEFAULTS.early_stopping, metavar="PATIENCE",
                              help="stop after PATIENCE epochs without a better validation accuracy (0: off)")
    optimisation.add_argument("--reduce-lr", type=int, default=_DEFAULTS.reduce_lr, metavar="PATIENCE",
                              help="halve the learning rate after PATIENCE flat epochs (0: off)")
    optimisation.add_argument("--seed", type=int, default=_DEFAULTS.seed)

    augment = parser.add_argument_group("augmentation (ImageDataGenerator's parameters and meaning)")
    augment.add_argument("--augment", action=argparse.BooleanOptionalAction, default=_DEFAULTS.augment,
                         help="augment the training images")
    augment.add_argument("--rotation-range", type=float, default=_AUGMENT.rotation_range, help="degrees")
    augment.add_argument("--width-shift-range", type=float, default=_AUGMENT.width_shift_range,
                         help="fraction of the width (< 1) or pixels")
    augment.add_argument("--height-shift-range", type=float, default=_AUGMENT.height_shift_range,
                         help="fraction of the height (< 1) or pixels")
    augment.add_argument("--shear-range", type=float, default=_AUGMENT.shear_range, help="degrees")
    augment.add_argument("--zoom-range", type=float, default=_AUGMENT.zoom_range,
                         help="x and y zoom drawn independently from [1 - z, 1 + z]")
    augment.add_argument("--horizontal-flip", action=argparse.BooleanOptionalAction, default=_AUGMENT.horizontal_flip)
    augment.add_argument("--fill-mode", choices=FILL_MODES, default=_AUGMENT.fill_mode)
    augment.add_argument("--augment-in", choices=AUGMENT_PLACES, default=_DEFAULTS.augment_in,
                         help="where augmentation runs: auto = tf.data on CPU, inside the model on GPU")

    performance = parser.add_argument_group("performance")
    performance.add_argument("--cache-features", action="store_true",
                             help="run the frozen layers once and train on their stored outputs")
    performance.add_argument("--augment-copies", type=int, default=_DEFAULTS.augment_copies, metavar="K",
                             help="with --cache-features: also cache K augmented copies of the training set")
    performance.add_argument("--feature-cache", default=_DEFAULTS.feature_cache, metavar="DIR",
                             help="where --cache-features keeps features (keyed by model, weights, data, augmentation)")
    performance.add_argument("--mixed-precision", action="store_true", help="float16 compute (GPUs)")
    performance.add_argument("--jit-compile", choices=("auto", "on", "off"), default=_DEFAULTS.jit_compile,
                             help="XLA: auto lets Keras decide (on for GPU, off for CPU, where it is slower)")

    distribution = parser.add_argument_group("distribution")
    distribution.add_argument("--strategy", choices=STRATEGIES, default=_DEFAULTS.strategy,
                              help="auto: MirroredStrategy over all GPUs when there are 2+, else the default")
    distribution.add_argument("--devices", default="",
                              help="comma-separated devices for mirrored/one-device, e.g. /gpu:0,/gpu:1 or "
                                   "/cpu:0,/cpu:1 (CPU devices are created as needed)")

    output = parser.add_argument_group("output")
    output.add_argument("--output", default=_DEFAULTS.output, help="where run directories go")
    output.add_argument("--name", default=_DEFAULTS.name,
                        help="saved_models/NAME.keras (default: model and --unfreeze, e.g. vgg19-block5)")
    output.add_argument("--saved-models-dir", default=_DEFAULTS.saved_models_dir)
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Map the parsed flags onto the run's config (flag names are the config's field names)."""
    for name in ("epochs", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    if not 0 <= args.ema < 1:
        raise UserError(f"--ema is a momentum in [0, 1), not {args.ema}")
    if args.warmup_epochs < 0 or args.augment_copies < 0:
        raise UserError("--warmup-epochs and --augment-copies cannot be negative")
    try:
        augment_params = AugmentParams(
            rotation_range=args.rotation_range, width_shift_range=args.width_shift_range,
            height_shift_range=args.height_shift_range, shear_range=args.shear_range, zoom_range=args.zoom_range,
            horizontal_flip=args.horizontal_flip, fill_mode=args.fill_mode)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return TrainConfig(
        data_dir=args.data_dir, image_size=args.image_size, cache=args.cache, model=args.model,
        weights=args.weights, unfreeze=args.unfreeze, alpha=args.alpha, dropout=args.dropout,
        batchnorm=args.batchnorm, epochs=args.epochs, warmup_epochs=args.warmup_epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, fine_tune_lr=args.fine_tune_lr, ema=args.ema,
        early_stopping=args.early_stopping, reduce_lr=args.reduce_lr, seed=args.seed, augment=args.augment,
        augment_params=augment_params, augment_in=args.augment_in, cache_features=args.cache_features,
        augment_copies=args.augment_copies, feature_cache=args.feature_cache,
        mixed_precision=args.mixed_precision, jit_compile=args.jit_compile, strategy=args.strategy,
        devices=[d.strip() for d in args.devices.split(",") if d.strip()], output=args.output, name=args.name,
        saved_models_dir=args.saved_models_dir, verbose=0 if args.quiet else 1)


def _cpu_devices_wanted(devices: Sequence[str]) -> int:
    indices = [int(d.rsplit(":", 1)[-1]) for d in devices if "cpu" in d.lower() and d.rsplit(":", 1)[-1].isdigit()]
    return max(indices) + 1 if indices else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    if args.list_models:
        from catsdogs.models import describe, list_models

        print("\n".join(describe(name) for name in list_models()))
        return 0
    config = config_from_args(args)
    if _cpu_devices_wanted(config.devices) > 1:
        from catsdogs.training import configure_logical_cpus

        configure_logical_cpus(_cpu_devices_wanted(config.devices))  # before TensorFlow starts its devices
    from catsdogs.models import get_spec
    from catsdogs.training import train

    get_spec(config.model)  # an unknown name fails before any data is read
    run = train(config, resume_dir=args.resume)
    test = run.metrics.get("test", {})
    print(f"done: {run.run_dir}" + (f", test accuracy {test['accuracy']:.4f}" if test else ""))
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
