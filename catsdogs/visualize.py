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
structure scores), a Grad-CAM heatmap ``.npy`` per overlay. The model is ``--model`` or the newest in
``--saved-models-dir``, loaded with its metadata (image size, class names), as in ``predict``.

Library functions, which the notebooks call:
``plot_history`` / ``save_curves``: accuracy and loss, training vs validation, as in the report's figures.
``save_activation_grids``: one grid per layer, one tile per channel, for one image.
``save_filter_grid``: the input patterns that maximise a layer's filters (``catsdogs.filters``).
``save_gradcam``: Grad-CAM overlays, the same code as ``predict --explain``.
``save_augmentation_preview``: N augmented versions of one image (the report's figure 7).
TensorFlow is imported only inside the functions that need it, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from catsdogs.cli import ArgumentParser, UserError, quiet_tensorflow, run_cli  # noqa: E402

if TYPE_CHECKING:
    import keras

    from catsdogs.config import AugmentParams
    from catsdogs.filters import FilterAscent
    from catsdogs.saving import ModelInfo

DEFAULT_OUTPUT = "visualizations"


def plot_history(history: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Two panels, accuracy and loss per epoch, training (dots) vs validation (line)."""
    path = Path(path)
    epochs = history.get("epoch") or range(len(history.get("loss", [])))
    epochs = [int(e) + 1 for e in epochs]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in zip(axes, ("accuracy", "loss")):
        if metric in history:
            axis.plot(epochs, history[metric], "o", markersize=3, label=f"training {metric}")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], "-", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_title(f"{title} {metric}".strip())
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def grid_columns(count: int) -> int:
    """How many columns ``image_grid`` and ``save_mosaic`` use for ``count`` tiles by default (rows follow)."""
    return min(count, 8)


def image_grid(images: Sequence[np.ndarray], path: str | Path, columns: int | None = None,
               titles: Sequence[str] | None = None, cmap: str | None = None, tile_inches: float = 2.0) -> Path:
    """Save tiles in a grid; uint8/float RGB images or 2-D maps (shown with ``cmap``)."""
    path = Path(path)
    count = len(images)
    columns = columns or grid_columns(count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(tile_inches * columns, tile_inches * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        image = np.asarray(images[index])
        if image.ndim == 3 and image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        axis.imshow(image, cmap=cmap)
        if titles:
            axis.set_title(titles[index], fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def save_augmentation_preview(image_path: str | Path, path: str | Path, count: int = 8, image_size: int = 150,
                              params: AugmentParams | None = None, seed: int = 0) -> Path:
    """``count`` augmented versions of one image in a grid, the original first (the report's figure 7)."""
    import tensorflow as tf

    from catsdogs.augment import AugmentParams, augment_batch
    from catsdogs.data import load_image

    params = params or AugmentParams()
    image = tf.cast(load_image(image_path, image_size), tf.float32)
    batch = tf.repeat(image[None], count, axis=0)
    augmented = augment_batch(batch, params, tf.constant([seed, 0])).numpy()
    tiles = [image.numpy(), *augmented]
    titles = ["original", *[f"augmented {i + 1}" for i in range(count)]]
    return image_grid(tiles, path, columns=min(len(tiles), 5), titles=titles)


MOSAIC_GAP = 2  # white pixels between and around the tiles of a mosaic


def save_mosaic(tiles: Sequence[np.ndarray], path: str | Path, columns: int | None = None, min_tile: int = 64,
                cmap: str = "viridis") -> Path:
    """Tiles side by side, row by row, in one PNG at exact pixels: fast where ``image_grid`` is slow.

    ``image_grid`` draws one matplotlib axis per tile (titles, but seconds for a 64-tile grid); feature
    maps come 32-512 at a time, so they go into one array instead. 2-D maps are each scaled to their own
    min..max and coloured with ``cmap``; RGB tiles (uint8) are used as they are. Small tiles are
    enlarged by a whole factor (nearest neighbour) to at least ``min_tile`` pixels. The PNG is
    ``columns * (tile + gap) + gap`` pixels wide (gap = ``MOSAIC_GAP``), and as many rows high as needed.
    """
    from matplotlib import colormaps
    from PIL import Image

    path = Path(path)
    tiles = [np.asarray(tile) for tile in tiles]
    if not tiles:
        raise ValueError("no tiles to draw")
    columns = columns or grid_columns(len(tiles))
    rows = math.ceil(len(tiles) / columns)
    height, width = tiles[0].shape[:2]
    factor = max(1, math.ceil(min_tile / max(1, min(height, width))))
    tile_h, tile_w = height * factor, width * factor
    canvas = np.full((rows * (tile_h + MOSAIC_GAP) + MOSAIC_GAP, columns * (tile_w + MOSAIC_GAP) + MOSAIC_GAP, 3),
                     255, np.uint8)
    for index, tile in enumerate(tiles):
        if tile.ndim == 2:
            low, high = float(np.min(tile)), float(np.max(tile))
            scaled = (tile - low) / (high - low) if high > low else np.zeros_like(tile, np.float32)
            tile = (colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)
        tile = np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)
        top = MOSAIC_GAP + (index // columns) * (tile_h + MOSAIC_GAP)
        left = MOSAIC_GAP + (index % columns) * (tile_w + MOSAIC_GAP)
        canvas[top:top + tile_h, left:left + tile_w] = tile[..., :3]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path, format="PNG")
    return path


# ------------------------------------------------------------------------------------------- curves
def save_curves(source: str | Path, output_dir: str | Path = DEFAULT_OUTPUT) -> Path:
    """``curves.png`` (accuracy and loss, training vs validation) and ``curves.json`` from a run's history.

    ``source``: a run directory written by ``catsdogs.train`` or its ``history.csv``.
    """
    from catsdogs.training import read_history

    source = Path(source)
    if not source.exists():
        raise UserError(f"{source} does not exist; pass a run directory (runs/<time>-<model>) or its history.csv")
    history_path = source / "history.csv" if source.is_dir() else source
    if not history_path.is_file():
        raise UserError(f"{source} has no history.csv; pass a run directory written by python -m catsdogs.train "
                        "(runs/<time>-<model>) or a history.csv")
    try:
        history = read_history(history_path)
    except (KeyError, ValueError):  # no epoch column, or cells that are not numbers
        history = {}
    if not history.get("loss"):
        raise UserError(f"{history_path} holds no training history (no loss column); pass the history.csv "
                        "that python -m catsdogs.train writes in its run directory")
    output_dir = Path(output_dir)
    title = source.name if source.is_dir() else source.parent.name
    path = plot_history(history, output_dir / "curves.png", title=title)
    summary: dict[str, Any] = {"source": str(history_path), "history": history}
    if history.get("val_accuracy"):
        best = int(np.nanargmax(history["val_accuracy"]))
        summary.update(best_epoch=best + 1, best_val_accuracy=history["val_accuracy"][best])
    (output_dir / "curves.json").write_text(json.dumps(summary, indent=2) + "\n")
    return path


# -------------------------------------------------------------------------------------- activations
@dataclass(frozen=True)
class ActivationGrid:
    """One layer's grid: where it went, the map's shape (H, W, channels) and how many channels it shows."""

    layer: str
    path: Path
    shape: tuple[int, int, int]
    tiles: int


def activation_layers(model: keras.Model) -> list[str]:
    """The layers ``activations`` shows by default: every convolution and pooling layer, bottom to top."""
    import keras

    from catsdogs.gradcam import feature_map_layers, layers_by_name

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
             keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
    layers = layers_by_name(model)
    return [name for name in feature_map_layers(model) if isinstance(layers[name], kinds)]


def check_activation_layers(model: keras.Model, layer_names: Sequence[str] | None) -> list[str]:
    """The named layers (default: ``activation_layers``), each checked to have a 2-D feature map."""
    from catsdogs.gradcam import feature_map_layers, layers_by_name

    if not layer_names:
        return activation_layers(model)
    known, with_maps = layers_by_name(model), set(feature_map_layers(model))
    suggestion = ", ".join(activation_layers(model)[:4])
    for name in layer_names:
        if name not in known:
            raise UserError(f"{model.name} has no layer {name!r}; choose from its convolution and pooling "
                            f"layers, e.g. {suggestion} (or leave out --layers for all of them)")
        if name not in with_maps:
            raise UserError(f"layer {name!r} has no 2-D feature map to show; choose a convolution or pooling "
                            f"layer, e.g. {suggestion}")
    return list(layer_names)


def layer_activations(model: keras.Model, image: np.ndarray, layer_names: Sequence[str]) -> dict[str, np.ndarray]:
    """One image (raw 0-255 RGB at the model's input size) -> each named layer's map, float32 (H, W, C)."""
    import tensorflow as tf

    from catsdogs.gradcam import feature_extractor

    batch = tf.convert_to_tensor(np.asarray(image, np.float32)[None])
    outputs = feature_extractor(model, layer_names)(batch)
    return {name: np.asarray(output[0], np.float32) for name, output in zip(layer_names, outputs)}


def save_activation_grids(model: keras.Model, image: np.ndarray, output_dir: str | Path = DEFAULT_OUTPUT,
                          layer_names: Sequence[str] | None = None, max_channels: int = 64) -> list[ActivationGrid]:
    """``activations-<layer>.png`` and ``.npy`` (the whole map) per layer.

    The PNG is a ``save_mosaic``: one tile per channel, the first ``max_channels``, channel ``k`` at
    row ``k // 8``, column ``k % 8``; each tile scaled to its own range (a dead channel is flat).
    """
    if max_channels < 1:
        raise UserError(f"--max-channels must be at least 1, not {max_channels}")
    layer_names = check_activation_layers(model, layer_names)
    output_dir = Path(output_dir)
    grids = []
    for name, activation in layer_activations(model, image, layer_names).items():
        channels = min(activation.shape[-1], max_channels)
        tiles = [activation[:, :, channel] for channel in range(channels)]
        path = save_mosaic(tiles, output_dir / f"activations-{name}.png")
        np.save(path.with_suffix(".npy"), activation)
        grids.append(ActivationGrid(name, path, tuple(activation.shape), channels))
    return grids


# ------------------------------------------------------------------------------------------- filters
def save_filter_grid(model: keras.Model, layer_name: str | None = None, output_dir: str | Path = DEFAULT_OUTPUT,
                     filters: int = 64, method: str = "improved", steps: int | None = None,
                     seed: int = 0) -> tuple[Path, FilterAscent]:
    """``filters-<layer>-<method>.png`` (a ``save_mosaic``, filters in row order) with ``.npy`` and ``.json``.

    The ``.npy`` holds the patterns in 0-255 input space; the ``.json`` the settings, each filter's
    objective before and after and its structure score (``catsdogs.filters.low_frequency_share``).
    """
    from catsdogs.filters import STRUCTURE_THRESHOLD, filter_ascent, to_display

    if filters < 1:
        raise UserError(f"--filters must be at least 1, not {filters}")
    ascent = filter_ascent(model, layer_name, filters, method=method, steps=steps, seed=seed)
    structure = ascent.structure
    stem = f"filters-{ascent.layer_name}-{method}"
    path = save_mosaic(list(to_display(ascent.patterns)), Path(output_dir) / f"{stem}.png")
    np.save(path.with_suffix(".npy"), ascent.patterns)
    path.with_suffix(".json").write_text(json.dumps({
        "model": model.name, "layer": ascent.layer_name, "method": method,
        "settings": ascent.settings.__dict__, "seed": seed, "filters": ascent.filters,
        "objective_before": ascent.objective_before.tolist(), "objective_after": ascent.objective_after.tolist(),
        "structure": structure.tolist(), "structure_threshold": STRUCTURE_THRESHOLD,
        "structured_fraction": ascent.structured_fraction}, indent=2) + "\n")
    return path, ascent


# ------------------------------------------------------------------------------------------- Grad-CAM
def save_gradcam(model: keras.Model, info: ModelInfo, images: Sequence[str | Path],
                 output_dir: str | Path = DEFAULT_OUTPUT, layer_name: str | None = None,
                 batch_size: int = 32) -> tuple[list[Path], list[Any]]:
    """Grad-CAM overlays (PNG + heatmap .npy) for image files, folders or globs, explaining the predicted class.

    The same code as ``predict --explain``; returns the overlays written and the inputs that failed.
    """
    from catsdogs.gradcam import resolve_target_layer
    from catsdogs.predict import expand_inputs, explain_predictions, predict_files

    resolve_target_layer(model, layer_name)  # a wrong layer fails before any work
    files, problems = expand_inputs([str(image) for image in images])
    if not files:
        first = problems[0] if problems else "no image given"
        raise UserError(f"{first}; pass --image with an image file, a folder of images or a glob pattern")
    report = predict_files(model, info, files, batch_size)
    written = explain_predictions(model, info, report.results, output_dir, layer_name, batch_size)
    return written, [*problems, *report.failures]


# ----------------------------------------------------------------------------------------------- CLI
def require_image_file(path: str | Path) -> Path:
    """``path`` if it is a file; else a UserError that says what it is instead."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"image {path} {what}; pass --image PATH to one image file")
    return path


def read_image(path: str | Path, image_size: int) -> np.ndarray:
    """One image file at ``image_size`` (uint8 RGB) through the pipeline's decoder; problems as UserError."""
    import tensorflow as tf

    from catsdogs.data import load_image
    from catsdogs.predict import describe_decode_failure

    path = require_image_file(path)
    try:
        return load_image(path, image_size).numpy()
    except tf.errors.OpError:
        raise UserError(f"image {path}: {describe_decode_failure(str(path), image_size)}") from None


def _run_curves(args: argparse.Namespace) -> int:
    path = save_curves(args.run_dir, args.output)
    print(f"wrote {path} and curves.json")
    return 0


def _run_activations(args: argparse.Namespace) -> int:
    from catsdogs.predict import load_model_from_args

    require_image_file(args.image)  # before the model is loaded
    model, info, _ = load_model_from_args(args)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    check_activation_layers(model, layers)  # before the image is decoded
    grids = save_activation_grids(model, read_image(args.image, info.image_size), args.output, layers,
                                  args.max_channels)
    for grid in grids:
        print(f"{grid.layer}: {grid.shape[0]}x{grid.shape[1]}, {grid.tiles} of {grid.shape[2]} channels -> "
              f"{grid.path}")
    return 0


def _run_filters(args: argparse.Namespace) -> int:
    from catsdogs.filters import STRUCTURE_THRESHOLD, check_filter_layer
    from catsdogs.predict import load_model_from_args

    model, _, _ = load_model_from_args(args)
    check_filter_layer(model, args.layer)
    path, ascent = save_filter_grid(model, args.layer, args.output, args.filters, args.method, args.steps, args.seed)
    rise = float(np.mean(ascent.objective_after - ascent.objective_before))
    print(f"{ascent.layer_name} ({args.method}): {len(ascent.filters)} filters, mean activation rose by {rise:.3g}; "
          f"{ascent.structured_fraction:.0%} of the tiles structured (low-frequency share > "
          f"{STRUCTURE_THRESHOLD}) -> {path}")
    return 0


def _run_gradcam(args: argparse.Namespace) -> int:
    from catsdogs.predict import load_model_from_args, report_failures

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    model, info, _ = load_model_from_args(args)
    written, failures = save_gradcam(model, info, args.image, args.output, args.layer, args.batch_size)
    print(f"wrote {len(written)} Grad-CAM overlays to {args.output}")
    return report_failures(failures)


def _run_augment(args: argparse.Namespace) -> int:
    from catsdogs.config import AugmentParams, TrainConfig

    params, image_size = AugmentParams(), args.image_size
    if args.from_run:
        config_path = Path(args.from_run) / "config.json"
        if not config_path.is_file():
            raise UserError(f"{args.from_run} has no config.json; pass a run directory written by "
                            "python -m catsdogs.train")
        config = TrainConfig.load(config_path)
        params, image_size = config.augment_params, args.image_size or config.image_size
    image_size = image_size or 150
    if args.count < 1 or image_size < 1:
        raise UserError(f"--count and --image-size must be at least 1, not {args.count} and {image_size}")
    read_image(args.image, image_size)  # a missing or undecodable image is a one-line error, not a traceback
    path = save_augmentation_preview(args.image, Path(args.output) / "augmentation.png", args.count,
                                     image_size, params, args.seed)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from catsdogs.predict import add_model_arguments

    parser = ArgumentParser(prog="python -m catsdogs.visualize",
                            description="Pictures of training and of what a saved model sees.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, run: Any, model: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        sub.set_defaults(handler=run)
        if model:
            add_model_arguments(sub)
        sub.add_argument("--output", default=DEFAULT_OUTPUT, metavar="DIR", help="where the PNGs (and data) go")
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
                              "catsdogs.filters")
    filters.add_argument("--steps", type=int, help="gradient-ascent steps (default: the method's, 40 / 128)")
    filters.add_argument("--seed", type=int, default=0, help="the start's noise and the jitter")

    gradcam = command("gradcam", "Grad-CAM overlays: where the evidence for the predicted class is", _run_gradcam)
    gradcam.add_argument("--image", required=True, nargs="+", metavar="PATH",
                         help="image files, folders (recursive) or glob patterns")
    gradcam.add_argument("--layer", help="the layer to explain (default: the last feature-map layer)")
    gradcam.add_argument("--batch-size", type=int, default=32)

    augment = command("augment", "augmented versions of one image (the report's figure 7)", _run_augment,
                      model=False)
    augment.add_argument("--image", required=True, metavar="PATH", help="the image to augment")
    augment.add_argument("--count", type=int, default=8, help="augmented versions")
    augment.add_argument("--seed", type=int, default=0)
    augment.add_argument("--image-size", type=int, help="square size in pixels (default: the run's, else 150)")
    augment.add_argument("--from-run", metavar="RUN_DIR",
                         help="use the augmentation parameters a training run recorded (default: the report's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    return args.handler(args)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
