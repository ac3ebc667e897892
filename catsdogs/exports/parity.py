"""The parity check every export ends with: the exported model against the Keras model, on the same arrays.

Both models get the same decoded held-out images, so the check measures the format and its
quantization, not decoding. What must hold depends on the quantization:

| quantization | must hold |
|---|---|
| none (float32) | every label the same, max abs difference of the probabilities <= 1e-4 |
| float16 | at least 99.8 % of the labels the same |
| dynamic, int8 | test accuracy at most 1 point below the Keras model's |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from catsdogs.metadata import Parity


@dataclass(frozen=True)
class Criteria:
    min_agreement: float | None = None
    max_abs_difference: float | None = None
    max_accuracy_drop: float | None = None


CRITERIA = {"none": Criteria(min_agreement=1.0, max_abs_difference=1e-4),
            "float16": Criteria(min_agreement=0.998),
            "dynamic": Criteria(max_accuracy_drop=0.01),
            "int8": Criteria(max_accuracy_drop=0.01)}


def compare(reference: np.ndarray, exported: np.ndarray, labels: np.ndarray, quantize: str,
            data: str | None = None) -> Parity:
    """Label agreement, max and mean |dp|, both accuracies, the criteria and whether they hold (``passed``), on
    the images of ``data``."""
    reference, exported = np.asarray(reference, np.float64), np.asarray(exported, np.float64)
    criteria = CRITERIA[quantize]
    difference = np.abs(reference - exported)
    agreement = float(np.mean(reference.argmax(1) == exported.argmax(1)))
    keras_accuracy = float(np.mean(reference.argmax(1) == labels))
    accuracy = float(np.mean(exported.argmax(1) == labels))
    problems = []
    for name, outputs in (("the Keras model", reference), ("the export", exported)):
        if not np.isfinite(outputs).all():  # every comparison with NaN is false: it would pass the criteria below
            problems.append(f"{name} answers with numbers that are not finite (NaN or infinity)")
    if criteria.min_agreement is not None and agreement < criteria.min_agreement:
        problems.append(f"label agreement {agreement:.2%} is under {criteria.min_agreement:.1%}")
    if criteria.max_abs_difference is not None and difference.max() > criteria.max_abs_difference:
        problems.append(f"max |dp| {difference.max():.2e} is over {criteria.max_abs_difference:.0e}")
    if criteria.max_accuracy_drop is not None and keras_accuracy - accuracy > criteria.max_accuracy_drop:
        problems.append(f"accuracy {accuracy:.4f} is more than {criteria.max_accuracy_drop:.0%} under the Keras "
                        f"model's {keras_accuracy:.4f}")
    return Parity(images=len(labels), quantize=quantize, agreement=agreement,
                  max_abs_difference=float(difference.max()), mean_abs_difference=float(difference.mean()),
                  accuracy=accuracy, keras_accuracy=keras_accuracy, criteria=asdict(criteria), passed=not problems,
                  problems=problems, data=data)


def describe(parity: Parity) -> str:
    """One line: ``parity on 1000 images: passed; labels 100.00 % the same, max |dp| 3.1e-06, accuracy ...``."""
    verdict = "passed" if parity.passed else "FAILED (" + "; ".join(parity.problems) + ")"
    return (f"parity on {parity.images} held-out images: {verdict}; labels {parity.agreement:.2%} the same, "
            f"max |dp| {parity.max_abs_difference:.1e}, accuracy {parity.accuracy:.4f} "
            f"(Keras {parity.keras_accuracy:.4f})")
