"""Batched prediction over image files: each file gets class probabilities or a ``Failure`` that says why not.

Every file is checked first (``catsdogs.data.images``: empty, truncated, not an image, over the pixel
limit), then the usable ones go upright through one tf.data pipeline
(``catsdogs.data.pipeline.make_path_dataset``). A file that still fails to decode there is dropped by
the pipeline, noticed by comparing paths, and described on its own. The others are still predicted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from catsdogs.data.decode import describe_decode_failure
from catsdogs.data.files import Failure
from catsdogs.data.images import check_files
from catsdogs.data.pipeline import make_path_dataset
from catsdogs.metadata import ModelInfo
from catsdogs.models.calibration import calibrated
from catsdogs.models.heads import class_probabilities
from catsdogs.runtime.predict import progress_bar
from catsdogs.runtime.results import Prediction, PredictionReport
from catsdogs.runtime.tta import averaged


def run_batches(forward: Callable[[tf.Tensor], np.ndarray], info: ModelInfo, paths: Sequence[str],
                batch_size: int = 32, progress: bool | None = False) -> tuple[list[str], np.ndarray, list[Failure]]:
    """``forward`` over ``paths`` in batches through ``make_path_dataset``: the paths that decoded, their rows
    (in that order) and a ``Failure`` for each file that did not, whether the check or TensorFlow refused it."""
    checks = check_files(paths, info.image_size)
    failures = [check.failure() for check in checks if not check.ok]
    usable = [check for check in checks if check.ok]
    paths = [check.path for check in usable]
    kept: list[str] = []
    rows: list[np.ndarray] = []
    if not paths:
        return kept, np.zeros((0, 0)), failures

    def fail(path: str) -> None:  # passed the check, yet TensorFlow could not decode it
        failures.append(Failure(path, describe_decode_failure(path, info.image_size)))

    pending = iter(paths)  # the pipeline keeps the order and only drops files, so in and out align
    with progress_bar(len(paths), progress) as bar:
        for batch_paths, images in make_path_dataset(paths, info.image_size, batch_size,
                                                     [check.orientation for check in usable]):
            batch = [p.decode() for p in batch_paths.numpy()]
            for path in batch:
                skipped = next(pending)
                while skipped != path:  # inputs the pipeline dropped before this one
                    fail(skipped)
                    skipped = next(pending)
            kept += batch
            rows.append(np.asarray(forward(images)))
            bar.update(len(batch))
        for skipped in pending:
            fail(skipped)
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

    kept, probabilities, failures = run_batches(lambda images: averaged(forward, images.numpy(), tta), info, paths,
                                                batch_size, progress)
    report = PredictionReport(list(info.class_names), failures=failures)
    for path, row in zip(kept, probabilities):
        index = int(np.argmax(row))
        report.results.append(Prediction(path, row, index, info.class_names[index]))
    return report
