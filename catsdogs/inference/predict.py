"""Batched prediction over image files: each file gets class probabilities or a ``Failure`` that says why not.

Every file is checked first (``catsdogs.data.images``: empty, truncated, not an image, over the pixel
limit), then the usable ones are decoded upright in batches (``data.sources.decoded_batches``: the tf.data
pipeline training used, or Pillow's copy of it where TensorFlow is not installed). A file that still fails
to decode is described on its own. The others are still predicted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from catsdogs.data.files import Failure
from catsdogs.data.images import check_files
from catsdogs.data.sources import decoded_batches
from catsdogs.metadata import ModelInfo
from catsdogs.models.calibration import calibrated
from catsdogs.models.heads import class_probabilities
from catsdogs.runtime.predict import progress_bar
from catsdogs.runtime.results import Prediction, PredictionReport
from catsdogs.runtime.tta import averaged


def run_batches(forward: Callable[[np.ndarray], np.ndarray], info: ModelInfo, paths: Sequence[str],
                batch_size: int = 32, progress: bool | None = False) -> tuple[list[str], np.ndarray, list[Failure]]:
    """``forward`` over ``paths`` in batches (``data.sources.decoded_batches``): the paths that decoded, their rows
    (in that order) and a ``Failure`` for each file that did not, whether the check or the decoder refused it."""
    checks = check_files(paths, info.image_size)
    failures = [check.failure() for check in checks if not check.ok]
    usable = [check for check in checks if check.ok]
    kept: list[str] = []
    rows: list[np.ndarray] = []
    with progress_bar(len(usable), progress) as bar:
        for batch, images in decoded_batches(usable, info.image_size, batch_size, failures):
            kept += batch
            rows.append(np.asarray(forward(images)))
            bar.update(len(batch))
    return kept, (np.concatenate(rows) if rows else np.zeros((0, 0))), failures


def predict_files(model: keras.Model, info: ModelInfo, paths: Sequence[str], batch_size: int = 32,
                  progress: bool | None = False, tta: str = "none") -> PredictionReport:
    """Predict ``paths`` in batches (``run_batches``); undecodable files become failures.

    ``progress``: a tqdm bar on stderr (None: only for large inputs on a terminal). A temperature in
    ``info`` (``catsdogs.models.calibration``) is applied; ``tta`` averages over views (``runtime.tta``).
    """
    model = calibrated(model, info)  # the metadata's temperature, when it has one

    def forward(images: np.ndarray) -> np.ndarray:
        return class_probabilities(model.predict_on_batch(images), len(info.class_names))

    kept, probabilities, failures = run_batches(lambda images: averaged(forward, images, tta), info, paths,
                                                batch_size, progress)
    report = PredictionReport(list(info.class_names), failures=failures)
    for path, row in zip(kept, probabilities):
        index = int(np.argmax(row))
        report.results.append(Prediction(path, row, index, info.class_names[index]))
    return report
