"""Batched prediction over image files with any ``Classifier``: each file gets class probabilities or a
``Failure`` that says why not.

Every file is checked first (``catsdogs.data.images``: empty, truncated, not an image, over the pixel
limit), then the usable ones are decoded upright in batches by the classifier's decoder
(``Classifier.decoded_batches``: the tf.data pipeline training used for a ``.keras`` model where TensorFlow is
installed, Pillow's copy of it otherwise). A file that still fails to decode is described on its own; the
others are still predicted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from catsdogs.data.files import Failure
from catsdogs.data.images import ImageCheck, check_files
from catsdogs.metrics import decide
from catsdogs.runtime.classifier import Classifier
from catsdogs.runtime.results import Prediction, PredictionReport

PROGRESS_MIN_IMAGES = 200  # fewer finish before a progress bar would tell anything


def progress_bar(total: int, progress: bool | None) -> tqdm:
    """A tqdm bar over images on stderr; ``progress`` None: only for large inputs, only on a terminal."""
    if progress is None:
        disable = True if total < PROGRESS_MIN_IMAGES else None  # tqdm's None: only on a terminal
    else:
        disable = not progress
    return tqdm(total=total, unit="image", file=sys.stderr, disable=disable, leave=False)


Decoder = Callable[[Sequence[ImageCheck], int, list[Failure]], Iterator[tuple[list[str], np.ndarray]]]


def run_batches(classifier: Classifier, forward: Callable[[np.ndarray], np.ndarray], paths: Sequence[str],
                batch_size: int = 32, progress: bool | None = False) -> tuple[list[str], np.ndarray, list[Failure]]:
    """``forward`` over ``paths`` decoded in batches for ``classifier``: the paths that decoded, their rows (in that
    order) and a ``Failure`` for each file that did not, whether the check or the decoder refused it."""
    return run_decoded(classifier.decoded_batches, classifier.info.image_size, forward, paths, batch_size, progress)


def run_decoded(decode: Decoder, image_size: int, forward: Callable[[np.ndarray], np.ndarray], paths: Sequence[str],
                batch_size: int = 32, progress: bool | None = False) -> tuple[list[str], np.ndarray, list[Failure]]:
    """``run_batches`` with any decoder (``checks, batch size, failures -> (paths, images)`` batches) at
    ``image_size``: what a feature extractor, which is no classifier, runs through (``audits.features``)."""
    checks = check_files(paths, image_size)
    failures = [check.failure() for check in checks if not check.ok]
    usable = [check for check in checks if check.ok]
    kept: list[str] = []
    rows: list[np.ndarray] = []
    with progress_bar(len(usable), progress) as bar:
        for batch, images in decode(usable, batch_size, failures):
            kept += batch
            rows.append(np.asarray(forward(images)))
            bar.update(len(batch))
    return kept, (np.concatenate(rows) if rows else np.zeros((0, 0))), failures


def predict_files(classifier: Classifier, paths: Sequence[str], batch_size: int = 32,
                  progress: bool | None = False, tta: str = "none") -> PredictionReport:
    """Predict ``paths`` in batches, averaged over ``tta``'s views; unusable files become failures.

    ``progress``: a tqdm bar on stderr (None: only for large inputs on a terminal).
    """
    info = classifier.info
    kept, probabilities, failures = run_batches(classifier, lambda images: classifier.predict(images, tta), paths,
                                                batch_size, progress)
    report = PredictionReport(list(info.class_names), failures=failures)
    decided = decide(probabilities, info.decision_threshold) if len(kept) else np.zeros(0, np.int64)
    for path, row, index in zip(kept, probabilities, decided):
        report.results.append(Prediction(path, row, int(index), info.class_names[index]))
    return report
