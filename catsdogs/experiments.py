"""``python -m catsdogs.experiments ladder|compare|ablate`` (``catsdogs-experiments``): the report's ladder, runs
side by side, and grids of settings over seeds.

Examples:
    python -m catsdogs.experiments ladder --base mobilenet --alpha 0.25 --weights W.h5 --budget quick
    python -m catsdogs.experiments ladder --resume experiments/20261125-150000-ladder   # reuses finished steps
    python -m catsdogs.experiments compare --all                       # every run in runs/
    python -m catsdogs.experiments compare runs/20261125-1* --sort test_accuracy --format csv
    python -m catsdogs.experiments ablate --model lenet5 --data-dir data/digits \
        --vary dropout=0,0.5 --vary batchnorm=off,on --seeds 2

``ladder`` runs the report's four steps (small CNN, + augmentation, base frozen, top fine-tuned) as
runs in a new ``experiments/<time>-ladder/`` (``catsdogs.studies.ladder``), scores each on the
test split, tests each step against the one below with McNemar's exact test, and writes
``results.csv`` / ``.json`` / ``.md`` and ``ladder.png`` (the report's figures as marks beside the bars).

``ablate`` trains every combination of the ``--vary`` values over ``--seeds`` seeds in a new
``experiments/<time>-ablate/`` (``catsdogs.studies.ablation``) and writes the mean ± std table
(``results.md`` / ``.csv`` / ``.json``) and an ``effect-<setting>.png`` per varied setting.

``compare`` gives one row per run from its ``config.json``, ``metrics.json`` and ``history.csv``: model, recipe, the
data's fingerprint, test accuracy with its Wilson 95 % interval, epochs, minutes. The table goes to
stdout (markdown or CSV) and, with the overlay of the validation curves (``val_accuracy.png``), to a
new folder ``experiments/<time>-compare/`` (``--output``). A folder that is not a run is named on
stderr and left out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from catsdogs.cli import ArgumentParser, report_failures, run_cli
from catsdogs.config import COMPARE_SORT_KEYS, DEFAULT_DATA_DIR, DEFAULT_IMAGE_SIZE, LADDER_BUDGETS
from catsdogs.errors import UserError
from catsdogs.outputs import new_folder, quiet_tensorflow, write_json, write_text


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catsdogs.experiments",
                            description="Experiments over runs: the report's ladder, grids of settings over seeds, "
                                        "and finished runs compared.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ladder = commands.add_parser("ladder", help="the report's four steps as runs, compared on the test images",
                                 description="The report's ladder: small CNN, + augmentation, base frozen, "
                                             "top fine-tuned; paired tests between steps.")
    ladder.add_argument("--base", default="mobilenet", help="the pretrained base of steps 3 and 4 (the report: vgg19)")
    ladder.add_argument("--alpha", type=float, default=1.0, help="the base's width (MobileNet)")
    ladder.add_argument("--weights", default="imagenet", help="the base's ImageNet weights: imagenet or a file")
    ladder.add_argument("--budget", choices=LADDER_BUDGETS, default="quick",
                        help="epochs per step: report = the report's, quick = for a CPU, smoke = one each")
    ladder.add_argument("--seeds", type=int, default=1, help="runs per step (the spread beside the interval)")
    ladder.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="a data_prep output with a test split")
    ladder.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="square input size in pixels")
    ladder.add_argument("--batch-size", type=int, default=32, help="batch size")
    ladder.add_argument("--output", default="experiments", metavar="DIR", help="where the ladder's folder goes")
    ladder.add_argument("--resume", metavar="LADDER_DIR",
                        help="continue a ladder: finished steps are reused, an interrupted one continues")
    ladder.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="training progress")
    ablate = commands.add_parser("ablate", help="a grid over settings, each cell over seeds: mean ± std",
                                 description="Train every combination of the --vary values, each over --seeds "
                                             "seeds; a mean ± std table and a plot per varied setting.")
    ablate.add_argument("--model", default="small_cnn", help="the registered model (its recipe applies beneath)")
    ablate.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                        help="a setting and its values, e.g. dropout=0,0.5 or batchnorm=off,on or "
                             "augment_params.rotation_range=0,40 (lists: units=400+200,800); repeatable")
    ablate.add_argument("--seeds", type=int, default=2, help="runs per cell (seed, seed+1, ...)")
    ablate.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="a data_prep output with a test split")
    ablate.add_argument("--epochs", type=int, help="epochs per run (default: the model's recipe)")
    ablate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting every cell shares, e.g. lr=0.001; repeatable")
    ablate.add_argument("--output", default="experiments", metavar="DIR", help="where the grid's folder goes")
    ablate.add_argument("--resume", metavar="ABLATE_DIR",
                        help="continue a grid: finished runs are reused, an interrupted one continues")
    ablate.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                        help="each run's training progress (default 0: a line per run)")
    compare = commands.add_parser("compare", help="one table of runs and their validation curves",
                                  description="One table of runs and an overlay of their validation curves.")
    compare.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run folders (or --all)")
    compare.add_argument("--all", action="store_true", help="every run in --runs-dir")
    compare.add_argument("--runs-dir", default="runs", help="where --all looks")
    compare.add_argument("--sort", choices=COMPARE_SORT_KEYS, default="run",
                         help="the column to sort by (accuracy: best first)")
    compare.add_argument("--format", choices=("markdown", "csv"), default="markdown", help="the table on stdout")
    compare.add_argument("--output", default="experiments", metavar="DIR",
                         help="the new <time>-compare folder for the table and the curves goes here")
    return parser


def compare(args: argparse.Namespace) -> int:
    if bool(args.runs) == args.all:
        raise UserError("name run folders or pass --all (not both)")
    quiet_tensorflow()
    # deferred: the library imports TensorFlow, which --help and flag errors should not wait for
    from catsdogs.plots import curves_overlay_figure, save_figure
    from catsdogs.studies.compare import csv_table, find_runs, markdown_table, read_runs, sort_runs

    paths = find_runs(Path(args.runs_dir)) if args.all else [Path(run) for run in args.runs]
    runs, failures = read_runs(paths)
    if not runs:
        report_failures(failures, 0)
        raise UserError(f"no run to compare in {args.runs_dir if args.all else 'the folders given'}")
    runs = sort_runs(runs, args.sort)
    rows = [run.row for run in runs]
    print(csv_table(rows) if args.format == "csv" else markdown_table(rows), end="")
    folder = new_folder(args.output, f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-compare")
    write_text(folder / "comparison.md", markdown_table(rows))
    write_text(folder / "comparison.csv", csv_table(rows))
    write_json(folder / "comparison.json", rows)
    curves = {run.path.name: run.history["val_accuracy"] for run in runs if run.history.get("val_accuracy")}
    save_figure(curves_overlay_figure(curves, "validation accuracy"), folder / "val_accuracy.png")
    print(f"wrote comparison.md, .csv, .json and val_accuracy.png to {folder}", file=sys.stderr)
    return report_failures(failures, len(runs))


def resumed_folder(args: argparse.Namespace, state_file: str, kind: str) -> Path | None:
    """``--resume``'s folder, checked to hold ``state_file`` (None without ``--resume``); ``--seeds`` checked too."""
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, not {args.seeds}")
    folder = Path(args.resume) if args.resume else None
    if folder is not None and not (folder / state_file).is_file():
        raise UserError(f"{folder} is not {kind} folder (no {state_file}); pass the folder it wrote")
    return folder


def ladder(args: argparse.Namespace) -> int:
    folder = resumed_folder(args, "ladder.json", "a ladder")
    quiet_tensorflow()
    # deferred: the library imports TensorFlow, which --help and flag errors should not wait for
    from catsdogs.studies.ladder import results_table, run_steps, summarise, test_split, write_results
    from catsdogs.training.rundir import read_json

    if folder is None:
        base, budget, seeds = args.base, args.budget, args.seeds
        common = {"data_dir": args.data_dir, "image_size": args.image_size, "batch_size": args.batch_size,
                  "alpha": args.alpha, "weights": args.weights, "verbose": args.verbose}
        test_split(args.data_dir)  # before any training
        folder = new_folder(args.output, f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-ladder")
    else:  # the ladder's own settings: a resumed ladder stays the same experiment
        state = read_json(folder / "ladder.json")
        base, budget, seeds, common = state["base"], state["budget"], state["seeds"], state["settings"]
    print(f"ladder in {folder}: base {base}, budget {budget}, {seeds} seed(s)", file=sys.stderr)
    runs = run_steps(folder, base, budget, seeds, common)
    rows = summarise(runs, test_split(common["data_dir"]))
    files = write_results(folder, rows, base)
    print(results_table(rows), end="")
    print(f"wrote {', '.join(path.name for path in files.values())} to {folder}", file=sys.stderr)
    return 0


def ablate(args: argparse.Namespace) -> int:
    folder = resumed_folder(args, "ablate.json", "an ablation")
    if folder is None and not args.vary:
        raise UserError("name at least one setting to vary, e.g. --vary dropout=0,0.5")
    quiet_tensorflow()
    # deferred: the library imports TensorFlow, which --help and flag errors should not wait for
    from catsdogs.studies import ablation
    from catsdogs.studies.compare import markdown_table
    from catsdogs.training.rundir import read_json

    if folder is None:
        texts, seeds = list(args.vary), args.seeds
        common = {"model": args.model, "data_dir": args.data_dir, "verbose": args.verbose,
                  **ablation.parse_settings(args.set)}
        if args.epochs is not None:
            common["epochs"] = args.epochs
    else:  # the grid's own settings: a resumed grid stays the same experiment
        state = read_json(folder / ablation.STATE_FILE)
        texts, seeds, common = state["vary"], state["seeds"], state["settings"]
    variations = [ablation.parse_variation(text) for text in texts]
    cells = ablation.grid(variations)
    if folder is None:
        ablation.check_grid(cells, common, Path(args.output) / "runs")  # every cell's settings, before any training
        folder = new_folder(args.output, f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-ablate")
    varied = {variation.key for variation in variations}
    model = "the models varied" if "model" in varied else common["model"]
    print(f"ablate in {folder}: {len(cells)} cell(s) x {seeds} seed(s) = {len(cells) * seeds} runs of {model}",
          file=sys.stderr)
    runs = ablation.run_grid(folder, cells, seeds, common, {"vary": texts, "seeds": seeds, "settings": common})
    rows = ablation.summarise(cells, runs)
    keys = [variation.key for variation in variations]
    files = ablation.write_results(folder, rows, variations, f"{model}, {seeds} seed(s) per cell")
    print(markdown_table(ablation.table_rows(rows, keys), ablation.table_columns(keys)), end="")
    print(f"wrote {', '.join(path.name for path in files.values())} to {folder}", file=sys.stderr)
    return 0


COMMANDS = {"ladder": ladder, "compare": compare, "ablate": ablate}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
