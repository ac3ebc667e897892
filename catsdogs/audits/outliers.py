"""Images that do not belong: far from every image in feature space, or odd as pictures.

- **Outliers**: cleanlab's ``OutOfDistribution`` score on the pooled features (the mean distance to the
  nearest neighbours, mapped to 0-1; low: far from everything). The lowest ``OUTLIER_SHARE`` of the set, at
  least one image, are reported: an audit asks a person to look, so a fixed share beats a threshold that
  means something else on every data set.
- **Odd images**, from the pictures alone (no model): too dark or too bright (mean grey level), blurred (the
  variance of the Laplacian of the grey image at 256 px), tiny (short side), or of an extreme shape.

cleanvision (from cleanlab's authors) checks these and more; the five measures here are a few lines of NumPy on the
image the audit already opens for its hash, where cleanvision would read every image again through its own loader
and bring its own dependencies for the same five numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catsdogs.data.images import ImageCheck, open_upright
from catsdogs.data.near_duplicates import AUDIT_EXTRA
from catsdogs.errors import require_optional

OUTLIER_SHARE = 0.01
DARK, BRIGHT = 25.0, 230.0  # mean grey level (0-255): a photo at night, an overexposed sky
BLURRED = 30.0  # variance of the Laplacian at 256 px: sharp photos score hundreds
TINY = 64  # pixels on the short side: less than a quarter of the default input
EXTREME_SHAPE = 3.0  # long side over short side: panoramas, banners, strips
SIDE = 256


@dataclass(frozen=True)
class Oddity:
    """One odd picture: ``kind`` (dark, bright, blurred, tiny, shape) and the measured ``value``."""

    index: int
    kind: str
    value: float


def outlier_scores(features: np.ndarray) -> np.ndarray:
    """cleanlab's out-of-distribution score per image (0-1; low: far from its nearest neighbours)."""
    outlier = require_optional("cleanlab.outlier", "cleanlab", "the outlier check", AUDIT_EXTRA)
    neighbours = max(1, min(10, len(features) - 1))
    return np.asarray(outlier.OutOfDistribution({"k": neighbours}).fit_score(features=features, verbose=False),
                      np.float64)


def outliers(scores: np.ndarray) -> np.ndarray:
    """The indices of the lowest ``OUTLIER_SHARE`` of ``scores`` (at least one), lowest first."""
    count = max(1, round(OUTLIER_SHARE * len(scores))) if len(scores) else 0
    return np.argsort(scores, kind="stable")[:count]


def laplacian_variance(grey: np.ndarray) -> float:
    """How sharp a grey image is: the variance of its 4-neighbour Laplacian."""
    g = grey.astype(np.float32)
    laplacian = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(laplacian.var())


def oddities(index: int, check: ImageCheck) -> list[Oddity]:
    """What is odd about one checked, usable image (nothing: an empty list)."""
    found = []
    short, long = sorted((check.width, check.height))
    if short and short < TINY:
        found.append(Oddity(index, "tiny", float(short)))
    if short and long / short > EXTREME_SHAPE:
        found.append(Oddity(index, "shape", long / short))
    grey = open_upright(check.path, SIDE).astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    brightness = float(grey.mean())
    if brightness < DARK:
        found.append(Oddity(index, "dark", brightness))
    elif brightness > BRIGHT:
        found.append(Oddity(index, "bright", brightness))
    elif min(grey.shape) > 2 and (sharpness := laplacian_variance(grey)) < BLURRED:
        found.append(Oddity(index, "blurred", sharpness))
    return found
