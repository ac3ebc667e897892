"""Batched prediction over image files: each file gets class probabilities or a ``Failure`` that says why not.

Every file is checked first (``catsdogs.data.images``: empty, truncated, not an image, over the pixel
limit), then the usable ones go upright through one tf.data pipeline
(``catsdogs.data.pipeline.make_path_dataset``). A file that still fails to decode there is dropped by
the pipeline, noticed by comparing paths, and described on its own. The others are still predicted.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from catsdogs.data.decode import describe_decode_failure
from catsdogs.data.files import Failure
from catsdogs.data.images import check_files
from catsdogs.data.pipeline import make_path_dataset
from catsdogs.metadata import ModelInfo
from catsdogs.models.heads import class_probabilities
from catsdogs.runtime.predict import progress_bar
from catsdogs.runtime.results import Prediction, PredictionReport


def predict_files(model: keras.Model, info: ModelInfo, paths: Sequence[str], batch_size: int = 32,
                  progress: bool | None = False) -> PredictionReport:
    """Predict ``paths`` in batches through ``make_path_dataset``; undecodable files become failures.

    ``progress``: a tqdm bar on stderr (None: only for large inputs on a terminal).
    """
    report = PredictionReport(list(info.class_names))
    checks = check_files(paths, info.image_size)
    report.failures.extend(check.failure() for check in checks if not check.ok)
    usable = [check for check in checks if check.ok]
    paths = [check.path for check in usable]
    if not paths:
        return report

    def fail(path: str) -> None:  # passed the check, yet TensorFlow could not decode it
        report.failures.append(Failure(path, describe_decode_failure(path, info.image_size)))

    pending = iter(paths)  # the pipeline keeps the order and only drops files, so in and out align
    with progress_bar(len(paths), progress) as bar:
        for batch_paths, images in make_path_dataset(paths, info.image_size, batch_size,
                                                     [check.orientation for check in usable]):
            probabilities = class_probabilities(model.predict_on_batch(images), len(info.class_names))
            for path, row in zip((p.decode() for p in batch_paths.numpy()), probabilities):
                skipped = next(pending)
                while skipped != path:  # inputs the pipeline dropped before this one
                    fail(skipped)
                    skipped = next(pending)
                index = int(np.argmax(row))
                report.results.append(Prediction(path, row, index, info.class_names[index]))
            bar.update(len(probabilities))
        for skipped in pending:
            fail(skipped)
    return report
