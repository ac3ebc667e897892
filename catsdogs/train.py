"""``python -m catsdogs.train`` (``catsdogs-train``): flags -> ``TrainConfig`` -> ``catsdogs.training.trainer.train``.

Examples:
    python -m catsdogs.train --data-dir data/cats_vs_dogs_small --model small_cnn --epochs 100
    python -m catsdogs.train --model vgg19 --unfreeze block5 --warmup-epochs 5 --epochs 30
    python -m catsdogs.train --model mobilenet --alpha 0.25 --image-size 224 --unfreeze 0.3
    python -m catsdogs.train --resume runs/20261124-120000-vgg19-block5

Every ``TrainConfig`` field is a flag (``image_size`` -> ``--image-size``), generated from the field's
metadata, so help, choices and validation cannot drift from the config.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from catsdogs.cli import ArgumentParser, add_settings_arguments, quiet_tensorflow, run_cli, settings_from_args
from catsdogs.config import OUTPUT, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m catsdogs.train",
        description="Train an image classifier on a split folder (train/validation/test, one sub-folder per class).",
        epilog="Models: see --list-models.",
    )
    parser.add_argument("--list-models", action="store_true", help="list the registered models and exit")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted run from its last finished epoch (its config.json wins)")
    groups = add_settings_arguments(parser, TrainConfig)
    groups[OUTPUT].add_argument("--quiet", action="store_true", help="no progress bars: the same as --verbose 0")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: the field defaults with the flags given on top (validated: a ConfigError names the flag)."""
    given = settings_from_args(args, TrainConfig)
    if args.quiet:
        given["verbose"] = 0
    return TrainConfig.resolve(given, source="the flags")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    quiet_tensorflow()
    # deferred: the library imports TensorFlow, which --help and flag errors should not wait for
    from catsdogs.models.registry import describe, get_spec, list_models
    from catsdogs.training.strategy import configure_logical_cpus, cpu_devices_wanted
    from catsdogs.training.trainer import train

    if args.list_models:
        print("\n".join(describe(name) for name in list_models()))
        return 0
    if cpu_devices_wanted(config.devices) > 1:
        configure_logical_cpus(cpu_devices_wanted(config.devices))  # before TensorFlow starts its devices
    get_spec(config.model)  # an unknown name fails before any data is read
    run = train(config, resume_dir=args.resume)
    test = run.metrics.get("test", {})
    print(f"done: {run.run_dir}" + (f", test accuracy {test['accuracy']:.4f}" if test else ""))
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
