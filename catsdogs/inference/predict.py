"""Batched prediction over image files: each file gets class probabilities or a ``Failure`` that says why not.

Every file is checked first (``catsdogs.data.images``: empty, truncated, not an image, over the pixel
limit), then the usable ones go upright through one tf.data pipeline
(``catsdogs.data.pipeline.make_path_dataset``). A file that still fails to decode there is dropped by
the pipeline, noticed by comparing paths, and described on its own. The others are still predicted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
from tqdm import tqdm

from catsdogs.data.decode import describe_decode_failure
from catsdogs.data.files import Failure
from catsdogs.data.images import check_files
from catsdogs.data.pipeline import make_path_dataset
from catsdogs.models.heads import class_probabilities
from catsdogs.models.saving import ModelInfo

PROGRESS_MIN_IMAGES = 200  # fewer finish before a progress bar would tell anything


@dataclass(frozen=True)
class Prediction:
    """One image's class probabilities (in ``class_names`` order) and the most probable class."""

    path: str
    probabilities: np.ndarray
    class_index: int
    class_name: str

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.class_index])


@dataclass
class PredictionReport:
    """The predictions in input order, and the inputs that failed."""

    class_names: list[str]
    results: list[Prediction] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def probabilities(self) -> np.ndarray:
        """``(N, classes)`` float32, one row per result."""
        return np.array([r.probabilities for r in self.results], np.float32).reshape(-1, len(self.class_names))


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

    if progress is None:  # automatic: large inputs only, and only on a terminal (tqdm's disable=None)
        disable = True if len(paths) < PROGRESS_MIN_IMAGES else None
    else:
        disable = not progress
    pending = iter(paths)  # the pipeline keeps the order and only drops files, so in and out align
    with tqdm(total=len(paths), unit="image", file=sys.stderr, disable=disable, leave=False) as bar:
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
