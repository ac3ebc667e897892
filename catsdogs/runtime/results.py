"""A prediction run's results: per-file class probabilities, and the files that failed.

Shared by every prediction run (``runtime.prediction``: any classifier, a .keras model or an export),
and free of TensorFlow so that the runtime stays so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catsdogs.data.files import Failure

UNSURE = "unsure"  # the answer below --min-confidence


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

    def answer(self, min_confidence: float | None = None) -> str:
        """The predicted class, or ``unsure`` when its probability is below ``min_confidence``."""
        return UNSURE if min_confidence is not None and self.confidence < min_confidence else self.class_name

    def top(self, k: int, class_names: list[str]) -> list[tuple[str, float]]:
        """The ``k`` most probable classes, most probable first (ties in class order)."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(class_names[index], float(self.probabilities[index])) for index in order]


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
