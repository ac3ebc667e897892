"""Every figure explains itself: a title, labels, a colour scale or legend where one belongs (checked on
the matplotlib objects, not by eye)."""

from __future__ import annotations

import numpy as np

from catsdogs.plots import confusion_figure, history_figure, learning_rate_figure, mosaic_figure
from catsdogs.training.rundir import phase_starts


def test_a_mosaic_has_a_title_and_each_tile_its_label():
    tiles = [np.random.default_rng(k).random((6, 6)) for k in range(10)]
    figure = mosaic_figure(tiles, "conv1: 6x6 maps, channels 0-9 of 32", [f"ch {k}" for k in range(10)])
    [axis] = figure.axes
    assert axis.get_title() == "conv1: 6x6 maps, channels 0-9 of 32"  # fits on one line
    long = mosaic_figure(tiles[:2], "a title far too long for two small tiles to carry on one line " * 2)
    assert long.axes[0].get_title().count("\n") >= 1  # wrapped, not cut off
    assert [text.get_text() for text in axis.texts] == [f"ch {k}" for k in range(10)]


def test_curves_mark_where_fine_tuning_began_and_have_a_legend():
    history = {"epoch": list(range(6)), "accuracy": [0.5] * 6, "val_accuracy": [0.6] * 6, "loss": [1.0] * 6,
               "val_loss": [0.9] * 6}
    starts = phase_starts([{"name": "warmup", "epochs": 2}, {"name": "fine_tune", "epochs": 4}])
    assert starts == {"fine_tune": 3}
    figure = history_figure(history, "mobilenet", starts)
    for axis, metric in zip(figure.axes, ("accuracy", "loss")):
        assert axis.get_title() == f"mobilenet {metric}" and axis.get_xlabel() == "epoch"
        labels = [text.get_text() for text in axis.get_legend().get_texts()]
        assert "fine_tune starts" in labels and f"validation {metric}" in labels
        [marker] = [line for line in axis.get_lines() if line.get_label() == "fine_tune starts"]
        assert marker.get_xdata()[0] == 2.5  # between epochs 2 and 3


def test_the_confusion_matrix_and_the_learning_rate_sweep_are_labelled():
    figure = confusion_figure(np.array([[5, 1], [2, 4]]), ["cats", "dogs"])
    assert len(figure.axes) == 2  # the matrix and its colour bar
    assert figure.axes[0].get_title() and figure.axes[0].get_xlabel()
    sweep = learning_rate_figure(list(np.logspace(-5, 0, 20)), list(np.linspace(1, 0.5, 20)), 1e-3, "small_cnn")
    [axis] = sweep.axes
    assert axis.get_xscale() == "log" and axis.get_title() == "small_cnn" and axis.get_legend() is not None
