"""Temperature scaling: one number, fitted on validation images, that makes a classifier's confidence honest.

Guo et al. (2017): dividing the logits by a temperature ``T > 0`` chosen to minimise the negative
log-likelihood on held-out images leaves every predicted class as it was and removes most of a network's
overconfidence (``T > 1`` softens, ``T < 1`` sharpens). The logits are the output layer's pre-activation,
computed from its kernel and bias, never recovered by inverting a sigmoid that float32 has saturated to 1.0.

The temperature lives in the model's metadata (``ModelExtra.temperature``); ``calibrated`` gives
the model that applies it, which prediction, evaluation, the server and the exports use. Grad-CAM and
the other explanations keep the raw model: a temperature changes no class and no gradient's direction.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from catsdogs.errors import UserError
from catsdogs.metadata import ModelInfo, TemperatureFit
from catsdogs.models.introspection import chain, dense_logits, inference_body

TEMPERATURE_RANGE = (0.05, 20.0)  # searched on a log scale; a fit at either end means something is wrong
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def temperature_of(info: ModelInfo) -> float | None:
    """The model's fitted temperature, or None when it has none."""
    return info.extra.temperature


def _output_layer(model: keras.Model) -> keras.layers.Dense:
    output = chain(model)[-1]
    if not (isinstance(output, keras.layers.Dense)
            and output.activation in (keras.activations.sigmoid, keras.activations.softmax)):
        raise UserError(f"{model.name} does not end in a sigmoid or softmax Dense layer, so it has no logits to "
                        "calibrate; calibrate models built by catsdogs")
    return output


def scaled_output(output: keras.layers.Dense, x: Any, temperature: float | None) -> Any:
    """``output`` applied to ``x`` with its logits divided by ``temperature`` (as it is when None)."""
    if temperature is None:
        return output(x)
    return output.activation(keras.ops.cast(dense_logits(output, x) / temperature, "float32"))


def _rebuilt(model: keras.Model, temperature: float | None, logits: bool = False) -> keras.Model:
    """The classifier without augmentation (``inference_body``, weights shared), ending in logits or in the
    output activation at ``temperature``."""
    output = _output_layer(model)
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inference_body(model)(inputs)
    x = keras.ops.cast(dense_logits(output, x), "float32") if logits else scaled_output(output, x, temperature)
    return keras.Model(inputs, x, name=model.name)


def logits_model(model: keras.Model) -> keras.Model:
    """Image -> the output layer's logits, ``(N, 1)`` for a sigmoid model, ``(N, classes)`` for a softmax one."""
    return _rebuilt(model, None, logits=True)


def calibrated(model: keras.Model, info: ModelInfo) -> keras.Model:
    """``model`` with its metadata's temperature applied; ``model`` itself when it has none."""
    temperature = temperature_of(info)
    return model if temperature is None else _rebuilt(model, temperature)


def log_probabilities(logits: np.ndarray) -> np.ndarray:
    """``(N, classes)`` log-probabilities from logits: a binary model's one logit ``z`` gives
    ``[log sigmoid(-z), log sigmoid(z)]``; several give the log-softmax. Computed stably in float64."""
    logits = np.asarray(logits, np.float64)
    if logits.shape[1] == 1:
        z = logits[:, 0]
        return np.stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)], axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean ``-log p(true class)`` at ``temperature``, unclipped.

    ``logits``: ``(N, classes)``, or ``(N, views, classes)`` for test-time augmentation, where ``p`` is the mean
    of the views' probabilities (what ``runtime.tta`` answers), computed in log space.
    """
    labels = np.asarray(labels, int)
    scaled = np.asarray(logits, np.float64) / temperature
    if scaled.ndim == 2:
        scaled = scaled[:, None]
    count, views, classes = scaled.shape
    per_view = log_probabilities(scaled.reshape(count * views, classes)).reshape(count, views, -1)
    averaged = np.logaddexp.reduce(per_view, axis=1) - np.log(views)
    return float(-np.mean(averaged[np.arange(count), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, tolerance: float = 1e-4) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels``.

    A golden-section search over ``log T`` in ``TEMPERATURE_RANGE``: the likelihood is convex in ``1/T``
    (the logits scale linearly), so it has one minimum there, and a one-dimensional search needs neither
    SciPy nor gradients. With views (``(N, views, classes)``) the fit is for their averaged probabilities:
    averaging softens, so the temperature that suits one view falls short there.
    """
    if len(labels) == 0:
        raise UserError("fitting a temperature needs labelled validation images; the split is empty")
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])

    def loss(log_t: float) -> float:
        return negative_log_likelihood(logits, labels, float(np.exp(log_t)))

    a, b = high - _GOLDEN * (high - low), low + _GOLDEN * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    while high - low > tolerance:
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - _GOLDEN * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + _GOLDEN * (high - low)
            loss_b = loss(b)
    return float(np.exp((low + high) / 2))


def calibration_record(logits: np.ndarray, labels: np.ndarray, split: str, tta: str = "none") -> TemperatureFit:
    """The fitted temperature and what it did to ``split``'s likelihood (seen as ``tta``'s views): what metadata
    and metrics record."""
    temperature = fit_temperature(logits, labels)
    return TemperatureFit(temperature=temperature, split=split, images=int(len(labels)), tta=tta,
                          nll_before=negative_log_likelihood(logits, labels),
                          nll_after=negative_log_likelihood(logits, labels, temperature))


def with_temperature(info: ModelInfo, fit: TemperatureFit) -> ModelInfo:
    """``info`` with the fitted temperature and its record."""
    return info.with_extra(temperature=fit.temperature, calibration_fit=fit)
