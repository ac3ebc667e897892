"""``python -m catsdogs.train`` (``catsdogs-train``): flags -> ``TrainConfig`` -> ``catsdogs.training.trainer.train``.

Examples:
    python -m catsdogs.train --data-dir data/cats_vs_dogs_small --model small_cnn --epochs 100
    python -m catsdogs.train --model vgg19 --unfreeze block5 --warmup-epochs 5 --epochs 30
    python -m catsdogs.train --model mobilenet --alpha 0.25 --image-size 224 --unfreeze 0.3
    python -m catsdogs.train --resume runs/20261124-120000-vgg19-block5
    python -m catsdogs.train --config runs/20261124-120000-mobilenet-0.25-all/config.json --seed 2
    python -m catsdogs.train --model mobilenet --alpha 0.25 --image-size 224 --find-lr

Every ``TrainConfig`` field is a flag (``image_size`` -> ``--image-size``), generated from the field's
metadata, so help, choices and validation cannot drift from the config. Settings resolve as
field default <- the model's recipe (``--recipe``) <- ``--config FILE`` <- flags
(``catsdogs.training.settings.resolve_config``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from catsdogs.cli import ArgumentParser, add_option_arguments, add_settings_arguments, run_cli, settings_from_args
from catsdogs.config import DISTRIBUTION, MODEL, OUTPUT, TrainConfig, read_settings_file
from catsdogs.outputs import quiet_tensorflow


def build_parser(model_options: bool = False) -> argparse.ArgumentParser:
    """The flags; with ``model_options``, also one per option the models declare (``--alpha``, ``--units``...),
    which imports the registry, and so Keras."""
    parser = ArgumentParser(
        prog="python -m catsdogs.train",
        description="Train an image classifier on a split folder (train/validation/test, one sub-folder per class).",
        epilog="Models and their recipes: see --list-models. The defaults shown are the settings' own; a model's "
               "recipe replaces some of them (optimizer, rates, epochs, fine-tuning), and a --config file and the "
               "flags replace any.",
    )
    parser.add_argument("--list-models", action="store_true", help="list the registered models and exit")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted run from its last finished epoch (its config.json wins)")
    parser.add_argument("--config", metavar="FILE",
                        help="settings from a .json, .yaml or .toml file (a run's config.json works); flags win")
    parser.add_argument("--print-config", action="store_true", help="print the resolved settings as JSON and exit")
    parser.add_argument("--find-lr", action="store_true",
                        help="sweep the learning rate of the first phase, plot the loss (lr_find.png), print the "
                             "suggested --lr, and exit")
    groups = add_settings_arguments(parser, TrainConfig)
    if model_options:
        quiet_tensorflow()
        from catsdogs.models.registry import option_fields  # deferred: Keras, only when an option flag is given

        add_option_arguments(parser, groups[MODEL], option_fields())
    groups[OUTPUT].add_argument("--quiet", action="store_true", help="no progress bars: the same as --verbose 0")
    # Where this process stands in a multi-process run: a launch's coordinates, not a run setting (a resumed
    # run is restarted with its own), so they are flags of this command and not of the saved config.
    processes = groups[DISTRIBUTION]
    processes.add_argument("--coordinator", metavar="HOST:PORT",
                           help="multi-process training (KERAS_BACKEND=jax): process 0's address and a free port")
    processes.add_argument("--num-processes", type=int, metavar="N", help="how many processes train together")
    processes.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 to N-1 (0 writes)")
    return parser


def setting_layers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The config file's settings and the flags', in that order (validated together: errors name the flag)."""
    from_file = read_settings_file(args.config) if args.config else {}
    given = settings_from_args(args, TrainConfig)
    if args.quiet:
        given["verbose"] = 0
    TrainConfig.resolve(from_file, given, source=f"{args.config} and the flags" if args.config else "the flags")
    return [from_file, given]


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: defaults <- the model's recipe <- ``--config`` <- flags."""
    from catsdogs.training.settings import resolve_config  # deferred: the registry imports TensorFlow

    return resolve_config(*setting_layers(args))


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags, in two passes when needed: the models' option flags need the registry, so Keras, which the other
    flags' errors should not wait for; they are added for --help (which lists them) and for a flag the first pass
    does not know."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in argv):
        return build_parser(model_options=True).parse_args(argv)
    args, unknown = build_parser().parse_known_args(argv)
    return build_parser(model_options=True).parse_args(argv) if unknown else args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    setting_layers(args)  # a wrong flag or config file fails before TensorFlow loads
    quiet_tensorflow()
    # deferred: the library imports TensorFlow, which --help and flag errors should not wait for
    from catsdogs.data.sources import tensorflow_installed
    from catsdogs.models.registry import describe, list_models
    from catsdogs.training import strategy
    from catsdogs.training.lr_finder import find_learning_rate
    from catsdogs.training.trainer import train

    if args.list_models:
        print("\n".join(describe(name) for name in list_models()))
        return 0
    config = config_from_args(args)  # an unknown model or recipe fails before any data is read
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    if tensorflow_installed():  # not where JAX trains alone (--pipeline pydataset)
        from catsdogs.training import tf_strategy  # deferred: TensorFlow's own module, where it is installed

        if strategy.cpu_devices_wanted(config.devices) > 1:  # before TensorFlow starts its devices
            tf_strategy.configure_logical_cpus(strategy.cpu_devices_wanted(config.devices))
        tf_strategy.keep_tensorflow_off_the_gpus()  # on JAX; before TensorFlow starts its devices
    strategy.start_processes(args.coordinator, args.num_processes, args.process_id)  # before JAX computes anything
    if args.find_lr:
        found = find_learning_rate(config)
        print(f"suggested --lr {found.suggestion:.2g} (steepest fall of the loss); plot: {found.plot}")
        return 0
    run = train(config, resume_dir=args.resume)
    if run.model_path is None:
        print("done: process 0 writes the run folder and the model")
        return 0
    test = run.metrics.get("test", {})
    print(f"done: {run.run_dir}" + (f", test accuracy {test['accuracy']:.4f}" if test else ""))
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
