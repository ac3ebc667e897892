"""``train --find-lr``: the learning-rate range test (Smith, 2017; fastai's ``lr_find``).

The model of the run's first phase (the head on a frozen base when fine-tuning, else the whole
network) trains for up to ``steps`` batches while the learning rate grows exponentially from
``start`` to ``end``; the loss of each batch is recorded, smoothed (an exponential moving average
with bias correction, as fastai does) and the sweep stops once it exceeds four times its minimum.
The suggestion is the rate where the smoothed loss falls fastest against log(rate), before its
minimum (fastai's "steep" suggestion, measured over a few points so noise does not count): fast
enough to learn, well below where training diverges. The sweep's model is thrown
away; ``lr_find.png`` and ``lr_find.json`` go to a new folder beside the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras
import numpy as np

from catsdogs.config import TrainConfig
from catsdogs.data.files import read_splits
from catsdogs.outputs import new_folder, write_json
from catsdogs.plots import learning_rate_figure, save_figure
from catsdogs.training.fitting import class_weights, compile_model, keras_verbosity, plan_phases
from catsdogs.training.settings import model_from_config
from catsdogs.training.trainer import build_datasets, check_splits

SMOOTHING = 0.98  # fastai's
DIVERGED = 4.0  # stop once the smoothed loss is this many times its minimum
SKIP = 10  # points at the start left out of the suggestion
SLOPE_SPAN = 3  # the slope at a point is measured from 3 points before it to 3 after


@dataclass
class LearningRateSweep:
    """The sweep: rates tried, the smoothed loss at each, the suggested rate, and where the files went."""

    rates: list[float]
    losses: list[float]
    suggestion: float
    plot: Path
    data: Path


class _ExponentialSweep(keras.callbacks.Callback):
    """Sets each batch's rate, records each batch's loss alone, stops when the loss diverges."""

    def __init__(self, start: float, end: float, steps: int):
        super().__init__()
        self.start, self.factor, self.steps = start, (end / start) ** (1 / max(steps - 1, 1)), steps
        self.rates: list[float] = []
        self.raw: list[float] = []
        self.smoothed: list[float] = []
        self._average = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.model.reset_metrics()  # so the logged loss is this batch's, not the epoch's running mean
        rate = self.start * self.factor ** len(self.rates)
        self.model.optimizer.learning_rate.assign(rate)
        self.rates.append(rate)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = float((logs or {}).get("loss", np.nan))
        self.raw.append(loss)
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
        smoothed = self._average / (1 - SMOOTHING ** len(self.raw))  # bias-corrected, as in Adam
        self.smoothed.append(smoothed)
        if not np.isfinite(loss) or smoothed > DIVERGED * min(self.smoothed) or len(self.rates) >= self.steps:
            self.model.stop_training = True


def suggest_rate(rates: list[float], losses: list[float]) -> float:
    """The rate where the smoothed loss falls fastest against log(rate), before the loss's minimum.

    The slope is taken over ``SLOPE_SPAN`` points on each side, and the first ``SKIP`` points (where
    the moving average has seen few batches) are left out, so batch-to-batch noise at tiny rates,
    where nothing is learnt, cannot pass for a fall. With too few points: a tenth of the minimum's rate.
    """
    log_rates, losses_array = np.log(np.asarray(rates, float)), np.asarray(losses, float)
    lowest = int(np.nanargmin(losses_array))
    first = min(SKIP, max(lowest - 2 * SLOPE_SPAN, 0))
    candidates = range(first + SLOPE_SPAN, lowest - SLOPE_SPAN + 1)
    if not candidates:
        return float(np.exp(log_rates[lowest]) / 10)
    slopes = [(losses_array[i + SLOPE_SPAN] - losses_array[i - SLOPE_SPAN])
              / (log_rates[i + SLOPE_SPAN] - log_rates[i - SLOPE_SPAN]) for i in candidates]
    return float(np.exp(log_rates[candidates[int(np.nanargmin(slopes))]]))


def find_learning_rate(config: TrainConfig, start: float = 1e-7, end: float = 10.0,
                       steps: int = 100) -> LearningRateSweep:
    """Sweep the rate over the first phase of ``config``'s run; write and return the curve and the suggestion."""
    keras.utils.set_random_seed(config.seed)
    folders, _ = check_splits(read_splits(config.data_dir), config.image_size, config.verbose)
    phase = plan_phases(config)[0]
    datasets = build_datasets(config, {"train": folders["train"]}, config.batch_size, augment_in_model=False)
    model = model_from_config(config, len(folders["train"].class_names), phase.unfreeze)
    classes = len(folders["train"].class_names)
    compile_model(model, config, start, classes, class_weights(config, folders["train"].labels, classes))
    sweep = _ExponentialSweep(start, end, steps)
    model.fit(datasets["train"].repeat(), epochs=1, steps_per_epoch=steps, callbacks=[sweep], shuffle=False,
              verbose=keras_verbosity(config.verbose))
    suggestion = suggest_rate(sweep.rates, sweep.smoothed)
    folder = new_folder(config.output, f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{config.model_name}-lr_find")
    title = f"{config.model_name}, phase {phase.name} ({phase.unfreeze} unfrozen), {config.optimizer}"
    plot = save_figure(learning_rate_figure(sweep.rates, sweep.smoothed, suggestion, title), folder / "lr_find.png")
    data = write_json(folder / "lr_find.json", {
        "suggestion": suggestion, "phase": phase.name, "optimizer": config.optimizer, "batch_size": config.batch_size,
        "rates": sweep.rates, "loss": sweep.raw, "smoothed_loss": sweep.smoothed})
    return LearningRateSweep(sweep.rates, sweep.smoothed, suggestion, plot, data)
