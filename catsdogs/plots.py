"""Figures: training curves, image grids, mosaics of feature maps, confusion matrices.

Everything goes through matplotlib's object API (``matplotlib.figure.Figure``), never ``pyplot``:
a library must not choose the process's backend (``matplotlib.use``) or keep figures alive in
pyplot's global state, which would break inline plots in a user's notebook. ``*_figure`` functions
return the ``Figure`` (a notebook displays it, a test inspects its axes); ``save_figure`` writes a
PNG with the Agg canvas whatever the backend. This module imports no TensorFlow.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from catsdogs.outputs import atomic_path

MOSAIC_GAP = 2  # white pixels between and around the tiles of a mosaic


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG (folders created as needed), whole or not at all."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    return Path(path)


def history_figure(history: Mapping[str, Sequence[float]], title: str = "",
                   phase_starts: Mapping[str, int] | None = None) -> Figure:
    """Two panels, accuracy and loss per epoch, training (dots) vs validation (line).

    ``phase_starts``: a phase's name -> its first epoch (1-based), drawn as a dashed line (fine-tuning).
    """
    epochs = history.get("epoch") or range(len(history.get("loss", [])))
    epochs = [int(e) + 1 for e in epochs]
    figure = Figure(figsize=(11, 4), layout="tight")
    for axis, metric in zip(figure.subplots(1, 2), ("accuracy", "loss")):
        if metric in history:
            axis.plot(epochs, history[metric], "o", markersize=3, label=f"training {metric}")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], "-", label=f"validation {metric}")
        for name, epoch in (phase_starts or {}).items():
            axis.axvline(epoch - 0.5, color="grey", linestyle="--", linewidth=1, label=f"{name} starts")
        axis.set_xlabel("epoch")
        axis.set_title(f"{title} {metric}".strip())
        axis.grid(alpha=0.3)
        axis.legend()
    return figure


def curves_overlay_figure(curves: Mapping[str, Sequence[float]], metric: str) -> Figure:
    """One line per labelled curve (a run's validation accuracy per epoch, say) on one axis."""
    figure = Figure(figsize=(9, 5), layout="tight")
    axis = figure.subplots()
    for label, values in curves.items():
        axis.plot(range(1, len(values) + 1), values, label=label)
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.set_title(f"{metric} of {len(curves)} runs")
    axis.grid(alpha=0.3)
    if curves:
        axis.legend(fontsize="small")
    return figure


def ladder_figure(labels: Sequence[str], accuracies: Sequence[float], intervals: Sequence[Sequence[float]],
                  references: Sequence[float], reference_label: str, title: str) -> Figure:
    """Bars with their 95 % intervals, and a reference figure per bar drawn as a mark beside it."""
    figure = Figure(figsize=(max(6, 1.6 * len(labels)), 4.5), layout="tight")
    axis = figure.subplots()
    positions = np.arange(len(labels))
    lows = [accuracy - low for accuracy, (low, _) in zip(accuracies, intervals)]
    highs = [high - accuracy for accuracy, (_, high) in zip(accuracies, intervals)]
    axis.bar(positions, accuracies, yerr=[lows, highs], capsize=6, color="#4c72b0", label="this run (95 % interval)")
    axis.scatter(positions + 0.3, references, marker="D", color="#dd8452", zorder=3, label=reference_label)
    for x, accuracy in zip(positions, accuracies):  # inside the bar's top, clear of the interval's whisker
        axis.annotate(f"{accuracy:.3f}", (x, accuracy), textcoords="offset points", xytext=(-20, -14), fontsize=9,
                      color="white", ha="center")
    axis.set_xticks(positions, labels)
    axis.set_ylim(max(0.0, min([*accuracies, *references]) - 0.15), 1.02)
    axis.set_ylabel("test accuracy")
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="lower right", fontsize="small")
    return figure


def effect_figure(key: str, labels: Sequence[str], accuracies: Sequence[Sequence[float]], title: str) -> Figure:
    """One setting's effect: every run's accuracy (dots) at each of its values, their mean and standard
    deviation (a bar) across the seeds and the other settings' values."""
    figure = Figure(figsize=(max(4.5, 1.3 * len(labels) + 2), 4), layout="tight")
    axis = figure.subplots()
    rng = np.random.default_rng(0)  # a little horizontal jitter, so equal accuracies stay visible
    for position, values in enumerate(accuracies):
        axis.scatter(position + rng.uniform(-0.08, 0.08, len(values)), values, color="#4c72b0", alpha=0.6, s=18,
                     label="a run" if position == 0 else None)
        if values:
            spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            axis.errorbar(position + 0.25, float(np.mean(values)), yerr=spread, fmt="D", color="#dd8452", capsize=5,
                          label="mean ± std" if position == 0 else None)
    axis.set_xticks(range(len(labels)), labels)
    axis.set_xlabel(key)
    axis.set_ylabel("test accuracy")
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="lower right", fontsize="small")
    return figure


def plot_history(history: Mapping[str, Sequence[float]], path: str | Path, title: str = "",
                 phase_starts: Mapping[str, int] | None = None) -> Path:
    """``history_figure`` saved as a PNG."""
    return save_figure(history_figure(history, title, phase_starts), path)


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


def _mosaic_geometry(tiles: Sequence[np.ndarray], columns: int | None, min_tile: int) -> tuple[int, int, int, int]:
    """Columns, the enlargement factor, and a tile's height and width in the mosaic."""
    if not len(tiles):
        raise ValueError("no tiles to draw")
    columns = columns or grid_columns(len(tiles))
    height, width = np.asarray(tiles[0]).shape[:2]
    factor = max(1, math.ceil(min_tile / max(1, min(height, width))))
    return columns, factor, height * factor, width * factor


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
    columns, factor, tile_h, tile_w = _mosaic_geometry(tiles, columns, min_tile)
    rows = math.ceil(len(tiles) / columns)
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


def mosaic_figure(tiles: Sequence[np.ndarray], title: str, labels: Sequence[str] | None = None,
                  columns: int | None = None, min_tile: int = 64, cmap: str = "viridis") -> Figure:
    """``mosaic`` under a title, each tile labelled in its corner (``ch 12``, ``filter 3``).

    One axis shows the whole mosaic (drawing 64 axes would take seconds), at one pixel of the mosaic
    per pixel of the figure at 100 dpi, plus a band for the title.
    """
    canvas = mosaic(tiles, columns, min_tile, cmap)
    columns, _, tile_h, tile_w = _mosaic_geometry(tiles, columns, min_tile)
    height, width = canvas.shape[:2]
    width_px = max(width, 320)
    lines = textwrap.wrap(title, width=width_px // 7) or [""]  # about 7 pixels per character at 9 pt
    band = 25 + 15 * len(lines)  # pixels for the title
    figure = Figure(figsize=(width_px / 100, (height + band) / 100), dpi=100)
    axis = figure.add_axes((0, 0, 1, height / (height + band)))
    axis.imshow(canvas, interpolation="nearest", aspect="auto")
    axis.set_axis_off()
    axis.set_title("\n".join(lines), fontsize=9, pad=6)
    for index, label in enumerate(labels or []):
        top = MOSAIC_GAP + (index // columns) * (tile_h + MOSAIC_GAP)
        left = MOSAIC_GAP + (index % columns) * (tile_w + MOSAIC_GAP)
        axis.text(left + 2, top + 2, label, color="white", fontsize=6, va="top", ha="left",
                  bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0})
    return figure


def save_mosaic(tiles: Sequence[np.ndarray], path: str | Path, title: str, labels: Sequence[str] | None = None,
                columns: int | None = None, min_tile: int = 64, cmap: str = "viridis") -> Path:
    """``mosaic_figure`` saved as a PNG."""
    return save_figure(mosaic_figure(tiles, title, labels, columns, min_tile, cmap), path)


def overlay_figure(image: np.ndarray, heatmap: np.ndarray, title: str, alpha: float = 0.4,
                   colormap: str = "jet") -> Figure:
    """A heatmap in [0, 1] over an RGB image (the map stretched to the image), a title and a colour bar."""
    image = np.asarray(image)
    height, width = image.shape[:2]
    figure = Figure(figsize=(max(width, 240) / 100 + 0.9, max(height, 240) / 100 + 0.4), dpi=100, layout="tight")
    axis = figure.subplots()
    axis.imshow(image)
    shown = axis.imshow(np.asarray(heatmap, np.float32), cmap=colormap, alpha=alpha, vmin=0.0, vmax=1.0,
                        extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bicubic")
    axis.set_axis_off()
    axis.set_title(title, fontsize=10)
    colorbar = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
    colorbar.set_label("Grad-CAM evidence (0-1)", fontsize=8)
    return figure


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


def reliability_figure(bins: Sequence[Mapping[str, float]], ece: float, title: str = "") -> Figure:
    """The reliability diagram: per confidence bin, accuracy (bars) against the diagonal of perfect calibration,
    the gap to each bin's mean confidence shaded, and how many images each bin holds below."""
    figure = Figure(figsize=(5.5, 6), layout="tight")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    lows = [row["low"] for row in bins]
    width = bins[0]["high"] - bins[0]["low"] if bins else 1.0
    top.bar(lows, [row["accuracy"] for row in bins], width=width, align="edge", color="#4c72b0",
            edgecolor="white", label="accuracy")
    top.bar(lows, [row["confidence"] - row["accuracy"] for row in bins], bottom=[row["accuracy"] for row in bins],
            width=width, align="edge", color="#dd8452", alpha=0.45, label="gap to the mean confidence")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(title or f"reliability (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(lows, [row["images"] for row in bins], width=width, align="edge", color="grey")
    bottom.set_yscale("log")
    bottom.set_ylabel("images")
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_xlim(0, 1)
    return figure


def risk_coverage_figure(coverage: Sequence[float], risk: Sequence[float], area: float, title: str = "") -> Figure:
    """The error rate among the answered images against their share, answering the most confident first."""
    figure = Figure(figsize=(6, 4.5), layout="tight")
    axis = figure.subplots()
    axis.plot(coverage, risk, "-", color="#4c72b0")
    axis.set_xlabel("coverage (share of images answered, most confident first)")
    axis.set_ylabel("risk (error rate among the answered)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, max(0.05, max(risk, default=0) * 1.1))
    axis.set_title(title or f"risk-coverage (area {area:.4f})")
    axis.grid(alpha=0.3)
    return figure


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """``confusion_figure`` saved as a PNG."""
    return save_figure(confusion_figure(matrix, class_names), path)
