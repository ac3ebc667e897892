"""Figures: training curves, image grids, mosaics of feature maps, confusion matrices.

Everything goes through matplotlib's object API (``matplotlib.figure.Figure``), never ``pyplot``:
a library must not choose the process's backend (``matplotlib.use``) or keep figures alive in
pyplot's global state, which would break inline plots in a user's notebook. ``*_figure`` functions
return the ``Figure`` (a notebook displays it, a test inspects its axes); ``save_figure`` writes a
PNG with the Agg canvas whatever the backend. This module imports no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from catsdogs.outputs import atomic_path

MOSAIC_GAP = 2  # white pixels between and around the tiles of a mosaic


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG (folders created as needed), whole or not at all."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    return Path(path)


def history_figure(history: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Two panels, accuracy and loss per epoch, training (dots) vs validation (line)."""
    epochs = history.get("epoch") or range(len(history.get("loss", [])))
    epochs = [int(e) + 1 for e in epochs]
    figure = Figure(figsize=(11, 4), layout="tight")
    for axis, metric in zip(figure.subplots(1, 2), ("accuracy", "loss")):
        if metric in history:
            axis.plot(epochs, history[metric], "o", markersize=3, label=f"training {metric}")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], "-", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_title(f"{title} {metric}".strip())
        axis.grid(alpha=0.3)
        axis.legend()
    return figure


def plot_history(history: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """``history_figure`` saved as a PNG."""
    return save_figure(history_figure(history, title), path)


def learning_rate_figure(rates: Sequence[float], losses: Sequence[float], suggestion: float,
                         title: str = "") -> Figure:
    """The learning-rate sweep: loss against the rate (log scale), the suggested rate marked."""
    figure = Figure(figsize=(7, 4.5), layout="tight")
    axis = figure.subplots()
    axis.plot(rates, losses, "-", label="training loss (smoothed)")
    index = int(np.argmin(np.abs(np.log(np.asarray(rates)) - np.log(suggestion))))
    axis.plot([rates[index]], [losses[index]], "o", color="red", markersize=8, label=f"suggested {suggestion:.2g}")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("loss")
    axis.set_title(title or "learning-rate sweep")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    return figure


def grid_columns(count: int) -> int:
    """How many columns ``image_grid`` and ``save_mosaic`` use for ``count`` tiles by default (rows follow)."""
    return min(count, 8)


def image_grid_figure(images: Sequence[np.ndarray], columns: int | None = None, titles: Sequence[str] | None = None,
                      cmap: str | None = None, tile_inches: float = 2.0) -> Figure:
    """Tiles in a grid, one axis each; uint8/float RGB images or 2-D maps (shown with ``cmap``)."""
    count = len(images)
    columns = columns or grid_columns(count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(tile_inches * columns, tile_inches * rows), layout="tight")
    axes = figure.subplots(rows, columns, squeeze=False)
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
    return figure


def image_grid(images: Sequence[np.ndarray], path: str | Path, columns: int | None = None,
               titles: Sequence[str] | None = None, cmap: str | None = None, tile_inches: float = 2.0) -> Path:
    """``image_grid_figure`` saved as a PNG."""
    return save_figure(image_grid_figure(images, columns, titles, cmap, tile_inches), path, dpi=80)


def mosaic(tiles: Sequence[np.ndarray], columns: int | None = None, min_tile: int = 64,
           cmap: str = "viridis") -> np.ndarray:
    """Tiles side by side, row by row, in one uint8 RGB array at exact pixels.

    ``image_grid`` draws one matplotlib axis per tile (titles, but seconds for a 64-tile grid); feature
    maps come 32-512 at a time, so they go into one array instead. 2-D maps are each scaled to their own
    min..max and coloured with ``cmap``; RGB tiles (uint8) are used as they are. Small tiles are
    enlarged by a whole factor (nearest neighbour) to at least ``min_tile`` pixels. The array is
    ``columns * (tile + gap) + gap`` pixels wide (gap = ``MOSAIC_GAP``), and as many rows high as needed.
    """
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
    return canvas


def save_mosaic(tiles: Sequence[np.ndarray], path: str | Path, columns: int | None = None, min_tile: int = 64,
                cmap: str = "viridis") -> Path:
    """``mosaic`` written as a PNG at exact pixels (one pixel of the array, one pixel of the file)."""
    with atomic_path(path) as temporary:
        Image.fromarray(mosaic(tiles, columns, min_tile, cmap)).save(temporary, format="PNG")
    return Path(path)


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str]) -> Figure:
    """The counts in a grid, true class down, predicted class across, with a colour scale."""
    size = 1.2 + 0.8 * len(class_names)
    figure = Figure(figsize=(size + 1, size), layout="tight")
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title("confusion matrix")
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    figure.colorbar(image, ax=axis)
    return figure


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """``confusion_figure`` saved as a PNG."""
    return save_figure(confusion_figure(matrix, class_names), path)
