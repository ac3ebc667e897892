"""Batched prediction over image files with an exported model, without TensorFlow.

The same rules as ``catsdogs.inference.predict``: every file is checked first (empty, truncated, not
an image, over the pixel limit) and a bad one becomes a ``Failure`` that says why, while the others
are still predicted; the decoding is ``runtime.images``' Pillow copy of the TensorFlow decoder.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from catsdogs.data.images import check_files
from catsdogs.data.pillow_decode import decoded_batches
from catsdogs.runtime.engines import Engine
from catsdogs.runtime.results import Prediction, PredictionReport
from catsdogs.runtime.tta import averaged

PROGRESS_MIN_IMAGES = 200  # fewer finish before a progress bar would tell anything


def progress_bar(total: int, progress: bool | None) -> tqdm:
    """A tqdm bar over images on stderr; ``progress`` None: only for large inputs, only on a terminal."""
    if progress is None:
        disable = True if total < PROGRESS_MIN_IMAGES else None  # tqdm's None: only on a terminal
    else:
        disable = not progress
    return tqdm(total=total, unit="image", file=sys.stderr, disable=disable, leave=False)


def predict_images(engine: Engine, paths: Sequence[str], batch_size: int = 32,
                   progress: bool | None = False, tta: str = "none") -> PredictionReport:
    """Predict ``paths`` with ``engine`` (averaged over the ``tta`` views); unusable files become failures, in
    input order among the results."""
    info = engine.info
    report = PredictionReport(list(info.class_names))
    checks = check_files(paths, info.image_size)
    report.failures.extend(check.failure() for check in checks if not check.ok)
    usable = [check for check in checks if check.ok]
    with progress_bar(len(usable), progress) as bar:
        for batch_paths, images in decoded_batches(usable, info.image_size, batch_size, report.failures):
            for path, row in zip(batch_paths, averaged(engine.predict, images, tta)):
                index = int(np.argmax(row))
                report.results.append(Prediction(path, row, index, info.class_names[index]))
            bar.update(len(batch_paths))
    return report
