"""Scores from predicted probabilities and true labels, in NumPy: what ``metrics.json`` holds.

Kept free of TensorFlow and of scikit-learn on purpose: these few formulas are short, tested against
their definitions, and training, evaluation, the exported-model runtime and the model cards share them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_EPSILON = 1e-7  # Keras's: probabilities are clipped to [eps, 1 - eps] in the cross-entropy
Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile: two-sided 95 %


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default).

    Chosen over the normal approximation ``p +- z sqrt(p(1-p)/n)`` because that one collapses to a
    single point at 0 or 100 % and leaves [0, 1] near them, which small test splits hit.
    """
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half_width = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (float(max(0.0, centre - half_width)), float(min(1.0, centre + half_width)))


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float | int]:
    """McNemar's exact test of two classifiers on the same images: do they err on different images more
    often one way than the other?

    ``b``: images only A gets right, ``c``: only B. Under the null hypothesis (equal accuracy) each
    discordant image is a fair coin, so the two-sided p-value is the binomial tail of ``min(b, c)``
    in ``b + c`` tosses, doubled (capped at 1). Exact rather than the chi-squared approximation, which
    is poor below about 25 discordant images, what small test splits give.
    """
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError("McNemar's test compares two classifiers on the same images")
    b, c = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n if n else 1.0
    return {"only_first_right": b, "only_second_right": c, "p_value": min(1.0, 2 * tail)}


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predicted, int)), 1)
    return matrix


def roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank (Mann-Whitney) formula; tied scores share their average rank.

    The probability that a random positive scores above a random negative (ties count half).
    None when only one kind is present.
    """
    is_positive = np.asarray(is_positive, bool)
    positives, negatives = int(is_positive.sum()), int((~is_positive).sum())
    if positives == 0 or negatives == 0:
        return None
    _, tie_group, tie_counts = np.unique(np.asarray(scores, np.float64), return_inverse=True, return_counts=True)
    # Ranks 1..N in score order; a group of tied scores shares the mean of the ranks it spans.
    group_last_rank = np.cumsum(tie_counts)
    average_ranks = (group_last_rank - (tie_counts - 1) / 2.0)[tie_group]
    positive_rank_sum = average_ranks[is_positive].sum()
    return float((positive_rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class, clipped as Keras clips it."""
    true_class = np.asarray(probabilities, np.float64)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(true_class, _EPSILON, 1.0 - _EPSILON))))


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the ``k`` most probable."""
    top_k = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top_k == np.asarray(labels)[:, None], axis=1)))


def decide(probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The class each row answers: the most probable one, or, for two classes with a chosen ``threshold``, the
    second class wherever its probability reaches the threshold (``evaluate --choose-threshold``). Every command,
    the server and the exported-model runtime decide through this."""
    probabilities = np.asarray(probabilities)
    if threshold is None:
        return probabilities.argmax(axis=1)
    if probabilities.shape[1] != 2:
        raise ValueError(f"a decision threshold needs two classes, not {probabilities.shape[1]}")
    return (probabilities[:, 1] >= threshold).astype(np.int64)


def balanced_accuracy(matrix: np.ndarray) -> float:
    """The mean of the classes' recalls (those with images): what accuracy is when every class counts the same."""
    actual = matrix.sum(axis=1)
    present = actual > 0
    return float(np.mean(np.diag(matrix)[present] / actual[present])) if present.any() else 0.0


def choose_threshold(second_class: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold on the second class's probability with the highest balanced accuracy on labelled images
    (Youden's J, which is ``2 * balanced accuracy - 1``), and that balanced accuracy.

    The candidates are 0.5 and the midpoints between neighbouring distinct probabilities, so a threshold sits
    between images rather than on one; ties go to the candidate nearest 0.5, the plain decision. Written here
    rather than taken from scikit-learn (``TunedThresholdClassifierCV`` refits an estimator, and scikit-learn is
    not a dependency of the runtimes that apply the threshold): a sort and two searches.
    """
    scores, labels = np.asarray(second_class, np.float64), np.asarray(labels, int)
    positives, negatives = np.sort(scores[labels == 1]), np.sort(scores[labels == 0])
    if not len(positives) or not len(negatives):
        raise ValueError("choosing a threshold needs images of both classes")
    distinct = np.unique(scores)
    candidates = np.concatenate([[0.5], (distinct[:-1] + distinct[1:]) / 2])
    recall_second = (len(positives) - np.searchsorted(positives, candidates, "left")) / len(positives)
    recall_first = np.searchsorted(negatives, candidates, "left") / len(negatives)
    balanced = (recall_second + recall_first) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    chosen = best[np.argmin(np.abs(candidates[best] - 0.5))]
    return float(candidates[chosen]), float(balanced[chosen])


def per_class_scores(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support per class from the confusion matrix (0 where undefined)."""
    true_positives = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(actual[i])} for i, name in enumerate(class_names)}


ECE_BINS = 15  # equal-width confidence bins: the usual choice since Guo et al. (2017)
BOOTSTRAP_RESAMPLES = 1000


def calibration_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Top-label reliability: per equal-width bin of the predicted class's probability, the images in it,
    their mean confidence and their accuracy (empty bins left out). What the reliability diagram draws."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, int)
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
    # Bin k holds confidences in (k/bins, (k+1)/bins]; a confidence of 0 joins the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return [{"low": k / bins, "high": (k + 1) / bins, "images": int(np.sum(index == k)),
             "confidence": float(confidence[index == k].mean()), "accuracy": float(correct[index == k].mean())}
            for k in range(bins) if np.any(index == k)]


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the bins' |accuracy - confidence| gaps, weighted by their share of the images."""
    table = calibration_bins(probabilities, labels, bins)
    total = sum(row["images"] for row in table)
    return float(sum(row["images"] * abs(row["accuracy"] - row["confidence"]) for row in table) / max(total, 1))


def bootstrap_interval(statistic: Callable[[np.ndarray], float], count: int, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of ``statistic(indices)`` over resamples of ``count`` items with
    replacement (the percentile bootstrap): for figures such as the ECE that no formula gives an interval for."""
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, count, count)) for _ in range(resamples)]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean over images of the squared distance between the probabilities and the one-hot truth, summed over
    classes (Brier's own definition; for two classes it is twice the often-quoted ``(p - y)^2`` of one class)."""
    probabilities = np.asarray(probabilities, np.float64)
    truth = np.eye(probabilities.shape[1])[np.asarray(labels, int)]
    return float(np.mean(np.sum((probabilities - truth) ** 2, axis=1)))


def calibration_metrics(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """ECE (with a bootstrap 95 % interval), negative log-likelihood, Brier score, and the reliability bins."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, int)
    return {"ece": expected_calibration_error(probabilities, labels, bins),
            "ece_interval_95": list(bootstrap_interval(
                lambda rows: expected_calibration_error(probabilities[rows], labels[rows], bins), len(labels))),
            "nll": cross_entropy(probabilities, labels), "brier": brier_score(probabilities, labels),
            "bins": calibration_bins(probabilities, labels, bins)}


def risk_coverage(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Selective prediction: answering only above a confidence threshold, the error rate among the answered
    images (risk) against their share (coverage), most confident first; and the area under that curve.

    ``thresholds[i]`` is the confidence of the ``i+1``-th most confident image: answering at ``>=`` it covers
    ``coverage[i]`` of the images with ``risk[i]`` errors among them (ties may add a few more)."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, int)
    confidence = probabilities.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    wrong = (probabilities.argmax(axis=1) != labels)[order]
    answered = np.arange(1, len(labels) + 1)
    risk = np.cumsum(wrong) / answered
    return {"coverage": (answered / len(labels)).tolist(), "risk": risk.tolist(),
            "thresholds": confidence[order].tolist(), "area": float(np.mean(risk)) if len(risk) else 0.0}


def compute_metrics(probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                    top_k: int = 2, threshold: float | None = None) -> dict[str, Any]:
    """Every score of ``metrics.json`` from ``(N, classes)`` probabilities and true class indices; the labels
    decided as ``decide`` does (``threshold``: a two-class model's chosen one)."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, int)
    num_classes = len(class_names)
    predicted = decide(probabilities, threshold)
    matrix = confusion_matrix(labels, predicted, num_classes)
    per_class = per_class_scores(matrix, class_names)
    supported = [name for name in class_names if per_class[name]["support"]]
    worst = min(supported, key=lambda name: per_class[name]["recall"]) if supported else None
    metrics: dict[str, Any] = {
        "images": len(labels),
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "accuracy_interval_95": list(wilson_interval(int(np.trace(matrix)), int(matrix.sum()))),
        "balanced_accuracy": balanced_accuracy(matrix),
        "worst_class": {"name": worst, "recall": per_class[worst]["recall"]} if worst else None,
        "loss": cross_entropy(probabilities, labels),
        "per_class": per_class,
        "macro_f1": float(np.mean([scores["f1"] for scores in per_class.values()])),
    }
    if threshold is not None:
        metrics["threshold"] = threshold
    if num_classes == 2:  # the score is P(class 1), what the sigmoid gives
        metrics["roc_auc"] = roc_auc(labels == 1, probabilities[:, 1])
    else:
        one_vs_rest = {name: roc_auc(labels == i, probabilities[:, i]) for i, name in enumerate(class_names)}
        defined = [value for value in one_vs_rest.values() if value is not None]
        metrics["roc_auc"] = float(np.mean(defined)) if defined else None
        metrics["roc_auc_one_vs_rest"] = one_vs_rest
        metrics[f"top_{top_k}_accuracy"] = top_k_accuracy(probabilities, labels, top_k)
    metrics["calibration"] = calibration_metrics(probabilities, labels)
    metrics["confusion_matrix"] = {"class_names": list(class_names), "rows": "true class",
                                   "columns": "predicted class", "matrix": matrix.tolist()}
    return metrics
