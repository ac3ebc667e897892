"""Which images are most likely labelled wrong: confident learning (cleanlab) on out-of-sample probabilities.

cleanlab's ``find_label_issues`` needs, for every image, class probabilities from a model that did not see that
image's label. By default they come from k-fold cross-validation of a head on the images'
pretrained features (``audits.features``): every image of every split is predicted by the head fitted on the
other folds, seconds on a CPU once the features exist. The head is an RBF support-vector machine with Platt's
probabilities: on MobileNet 0.25's features of the 4,000 Kaggle originals with 5 % of the training labels flipped,
it put 78 % of the flipped images in the top k (85 % within the training split), where logistic regression put
71-76 % at any regularisation (BENCHMARKS.md, "Auditing the data"). Platt's probabilities come from a cross-validation
of their own, which a class of a few dozen images cannot feed: below ``SVM_MIN_PER_CLASS`` images in a class,
the head is logistic regression. With ``--model``, a trained model's own
probabilities are used instead (on its training split they are in-sample, so its suspects there are the ones it
could not even fit). The ranking is cleanlab's label quality score (``self_confidence``: the probability of the given
label; lowest first); ``is_issue`` is cleanlab's own verdict (``prune_by_noise_rate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catsdogs.data.near_duplicates import AUDIT_EXTRA
from catsdogs.errors import UserError, require_optional

DEFAULT_FOLDS = 5
SVM_MIN_PER_CLASS = 100


@dataclass(frozen=True)
class LabelCheck:
    """Per image: the label quality score (0-1, low: suspect), the suggested class, and cleanlab's verdict."""

    scores: np.ndarray
    suggested: np.ndarray
    is_issue: np.ndarray
    probabilities: np.ndarray

    def ranked(self) -> np.ndarray:
        """Image indices, most suspicious first (lowest score; ties by index)."""
        return np.lexsort((np.arange(len(self.scores)), self.scores))


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, folds: int = DEFAULT_FOLDS,
                                seed: int = 0) -> np.ndarray:
    """``(N, classes)`` probabilities, each image's from a head fitted without it (stratified k-fold)."""
    svm = require_optional("sklearn.svm", "scikit-learn", "the label check", AUDIT_EXTRA)
    linear = require_optional("sklearn.linear_model", "scikit-learn", "the label check", AUDIT_EXTRA)
    calibration = require_optional("sklearn.calibration", "scikit-learn", "the label check", AUDIT_EXTRA)
    selection = require_optional("sklearn.model_selection", "scikit-learn", "the label check", AUDIT_EXTRA)
    pipeline = require_optional("sklearn.pipeline", "scikit-learn", "the label check", AUDIT_EXTRA)
    preprocessing = require_optional("sklearn.preprocessing", "scikit-learn", "the label check", AUDIT_EXTRA)
    smallest = int(np.bincount(labels).min()) if len(labels) else 0
    if smallest < 2:
        raise UserError("the label check needs at least 2 images of every class")
    # Standardised features, a smooth kernel and the default C: a more flexible head (C=10) fits the wrong labels too.
    if smallest >= SVM_MIN_PER_CLASS:
        # Platt's sigmoid on the SVM's margins, fitted by cross-validation (what SVC(probability=True) did before
        # scikit-learn 1.9 deprecated it)
        classifier = calibration.CalibratedClassifierCV(svm.SVC(C=1.0), method="sigmoid", ensemble=False)
    else:
        classifier = linear.LogisticRegression(C=0.1, max_iter=2000)
    head = pipeline.make_pipeline(preprocessing.StandardScaler(), classifier)
    split = selection.StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
    return np.asarray(selection.cross_val_predict(head, features, labels, cv=split, method="predict_proba"),
                      np.float64)


def check_labels(labels: np.ndarray, probabilities: np.ndarray) -> LabelCheck:
    """cleanlab's scores and verdicts for ``labels`` given out-of-sample ``probabilities``."""
    rank = require_optional("cleanlab.rank", "cleanlab", "the label check", AUDIT_EXTRA)
    filtering = require_optional("cleanlab.filter", "cleanlab", "the label check", AUDIT_EXTRA)
    probabilities = np.clip(probabilities, 1e-6, 1.0)
    probabilities = probabilities / probabilities.sum(1, keepdims=True)
    scores = rank.get_label_quality_scores(labels, probabilities, method="self_confidence")
    issues = filtering.find_label_issues(labels, probabilities, filter_by="prune_by_noise_rate")
    return LabelCheck(np.asarray(scores, np.float64), probabilities.argmax(1), np.asarray(issues, bool),
                      probabilities)
