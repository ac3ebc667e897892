"""Filter patterns: the input image that maximises one filter's mean activation, found by gradient ascent.

Two methods, both in the model's own input space (raw RGB 0-255, before the ``Preprocess`` layer), both
starting from grey with a little uniform noise (``128 + 20 * U[0, 1)``, the report's start), both
optimising a batch of images at once, image ``i`` for filter ``filters[i]`` (the filters do not
interact: BatchNormalization runs in inference mode, so the batch is N independent problems):

``report`` (Chollet, *Deep Learning with Python*, 5.4.2): loss = the filter's mean activation over the
whole map; the gradient divided by its root mean square; 40 steps of size 1.

``improved``: the same loss and normalised gradient, plus what the feature-visualisation literature
(Mordvintsev et al., "Inceptionism", 2015; Yosinski et al., "Understanding neural networks through
deep visualization", 2015; Olah et al., "Feature visualization", Distill 2017) found necessary for deep
units:

- **border excluded**: the objective is the mean over the centre of the map (``border`` of it cut on
  each side). Border units see the convolutions' zero padding, which is cheap to exploit.
- **jitter**: every step the image is shifted at random by up to 4 % of its size (9 px at 224; rolled, so
  nothing is lost) before the network sees it. A pattern must work at every offset, which starves the
  pixel-aligned high-frequency patterns that a strided network alone would happily amplify.
- **coarse to fine** (octaves): the pattern starts at a quarter of the final resolution, upsampled
  bilinearly to the model's input, and is refined at 1/2 and then full resolution. Large structures
  form first; fine detail is added on top.
- **light blur** every few steps (Gaussian, sigma 0.5 px, reflected borders): a weak prior towards
  natural images, which have little power at the highest frequencies.
- **more steps and a schedule**: 128 steps split over the octaves, with a step size that falls from 6
  to 1 (cosine) inside each octave: large moves while the pattern forms, small ones to settle it.
- pixels are kept in 0-255, the range real inputs live in.

**Why the report's version leaves deep filters as noise.** The gradient of a deep unit with respect to
the pixels is dominated by high spatial frequencies: a stack of strided convolutions responds strongly
to pixel-aligned checkerboard-like patterns that no photograph contains (adversarial directions), and
the gradient step adds exactly those. With 40 steps of size 1 from a noisy start, the pattern becomes
that high-frequency texture: the activation rises, the image stays noise to the eye. Early layers have
small receptive fields and simple (colour, edge) filters whose gradients are already smooth, which is
why the report's early-layer patterns look clean and its deep ones do not. The changes above remove the
cheap high-frequency route (jitter, blur, octaves), keep the objective off the padded border, and give
the optimisation the steps it needs to form large structures.

What mattered, measured (``benchmarks/filters.py --ablation``: MobileNet 0.25, ImageNet weights,
``conv_pw_13``, 16 filters): more steps alone do not help (the report's recipe with 128 steps: 0 of 16
tiles structured); a low-pass ingredient does, and either one is enough (no octaves: 16/16; no blur:
16/16; neither: 0/16, the large-scale layout visible but buried under fine texture). The border crop
and the jitter are refinements (16/16 without either), and 40 improved steps already give 16/16.

**Structure measure** (``low_frequency_share``): the share of the power of the change from the start
(``pattern - start``, each colour channel's mean removed) at spatial frequencies below
``LOW_FREQUENCY_CUTOFF`` = 1/8 cycle per pixel (wavelengths longer than 8 px). For white noise it is
the disc's share of the frequency square, pi / 64 = 0.049; a tile counts as *structured* when most of
its change is at those long wavelengths, a share above ``STRUCTURE_THRESHOLD`` = 0.5. (On MobileNet
0.25's ``conv_pw_13`` with ImageNet weights, the report's tiles score about 0.3, texture at 3-8 px that
looks like noise; the improved ones about 0.9.) Caveat: blur and octaves favour low frequencies by
construction, so the measure tells patterns from noise; it does not by itself show that the structure
means anything: look at the grids, and at the activation each method reaches.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from catsdogs.config import DEFAULT_VISUALIZATIONS_DIR
from catsdogs.errors import UserError, parameter
from catsdogs.explanations.backend import require_gradients_backend
from catsdogs.models.introspection import check_feature_map_layer, feature_extractor, feature_map_layers, layers_by_name
from catsdogs.outputs import save_array, write_json
from catsdogs.plots import save_mosaic

METHODS = ("report", "improved")
START_GREY, START_NOISE = 128.0, 20.0  # the report's start: 128 + 20 * U[0, 1), in 0-255 pixel units
LOW_FREQUENCY_CUTOFF = 1 / 8  # cycles per pixel
STRUCTURE_THRESHOLD = 0.5  # low-frequency share above which a tile has structure (white noise: 0.049)


@dataclass(frozen=True)
class AscentSettings:
    """How a method climbs; step sizes are in 0-255 pixel units per RMS-normalised gradient."""

    steps: int
    step_size: float  # first step of each octave
    final_step_size: float  # last step of each octave (cosine schedule in between)
    border: float = 0.0  # fraction of the activation map's height and width left out on each side
    jitter: float = 0.0  # largest random shift each step, as a fraction of the image size
    octaves: int = 1  # resolutions 1/2**(octaves-1) ... 1 of the final one, equal shares of the steps
    blur_every: int = 0  # steps between light blurs (0: never)
    blur_sigma: float = 0.5
    clip: bool = False  # keep pixels in 0-255


SETTINGS = {
    "report": AscentSettings(steps=40, step_size=1.0, final_step_size=1.0),
    "improved": AscentSettings(steps=128, step_size=6.0, final_step_size=1.0, border=0.15, jitter=0.04, octaves=3,
                               blur_every=4, blur_sigma=0.5, clip=True),
}


@dataclass
class FilterAscent:
    """What a gradient ascent found: one pattern per filter, and how far each filter's activation rose."""

    layer_name: str
    method: str  # "report", "improved" or "custom"
    filters: list[int]
    patterns: np.ndarray  # (N, S, S, 3) float32, 0-255 input space (the report's method may leave the range)
    starts: np.ndarray  # (N, S, S, 3) float32, where each ascent began
    objective_before: np.ndarray  # (N,) the method's objective at the start
    objective_after: np.ndarray  # (N,) and at the end
    settings: AscentSettings

    @property
    def structure(self) -> np.ndarray:
        """``low_frequency_share`` of each tile's change from its start."""
        return low_frequency_share(self.patterns - self.starts)

    @property
    def structured_fraction(self) -> float:
        return float(np.mean(self.structure > STRUCTURE_THRESHOLD))


# ----------------------------------------------------------------------------------------- choosing
def default_filter_layer(model: keras.Model) -> str:
    """The deepest convolution layer: ``conv_pw_13``, ``block5_conv4``, ``conv4`` for small_cnn.

    In the ImageNet bases its output comes before BatchNormalization and the ReLU, so the objective
    is not clipped at zero (or at 6) where the gradient would vanish.
    """
    layers = layers_by_name(model)
    convolutions = [name for name in feature_map_layers(model)
                    if isinstance(layers[name], (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    if not convolutions:
        raise UserError(f"{model.name} has no convolution layer whose filters could be shown")
    return convolutions[-1]


def check_filter_layer(model: keras.Model, layer_name: str | None) -> str:
    """``layer_name`` (default: ``default_filter_layer``) if it has a 2-D feature map; else a UserError with a fix."""
    if layer_name is None:
        return default_filter_layer(model)
    suggestion = f"{default_filter_layer(model)!r} (layers with feature maps: {_some(feature_map_layers(model))})"
    return check_feature_map_layer(model, layer_name, "show", suggestion)


def _some(names: Sequence[str], count: int = 6) -> str:
    names = list(names)
    return ", ".join(names[:count // 2] + ["..."] + names[-count // 2:]) if len(names) > count else ", ".join(names)


def _filter_indices(filters: int | Sequence[int], channels: int) -> list[int]:
    indices = list(range(min(filters, channels))) if isinstance(filters, int) else [int(f) for f in filters]
    if not indices or min(indices) < 0 or max(indices) >= channels:
        raise UserError(f"the layer has filters 0..{channels - 1}; cannot show {filters!r}")
    return indices


# ---------------------------------------------------------------------------------------- objective
def start_images(count: int, image_size: int, seed: int = 0) -> np.ndarray:
    """The report's start: grey with a little uniform noise, ``128 + 20 * U[0, 1)``, float32 (N, S, S, 3)."""
    rng = np.random.default_rng(seed)
    return (START_GREY + START_NOISE * rng.random((count, image_size, image_size, 3))).astype(np.float32)


def _centre(activations: tf.Tensor, border: float) -> tf.Tensor:
    height, width = activations.shape[1], activations.shape[2]
    top, left = int(height * border), int(width * border)
    if height - 2 * top < 1 or width - 2 * left < 1:
        top, left = (height - 1) // 2, (width - 1) // 2  # a map too small to crop: keep its centre
    return activations[:, top:height - top, left:width - left, :]


def _objective(activations: tf.Tensor, one_hot: tf.Tensor, border: float) -> tf.Tensor:
    """Per image, the mean activation of its filter (the map's centre when ``border`` > 0)."""
    centre = tf.cast(_centre(activations, border), tf.float32)
    return tf.reduce_mean(tf.reduce_sum(centre * one_hot[:, None, None, :], axis=-1), axis=(1, 2))


def filter_objective(model: keras.Model, layer_name: str, images: np.ndarray, filters: Sequence[int],
                     border: float = 0.0) -> np.ndarray:
    """Image ``i``'s mean activation of filter ``filters[i]`` in ``layer_name`` (centre only with ``border``)."""
    extract = feature_extractor(model, [layer_name])
    images = _resized(tf.convert_to_tensor(images, tf.float32), int(model.input_shape[1]))
    activations = extract(images)[0]
    one_hot = tf.one_hot(list(filters), activations.shape[-1])
    return _objective(activations, one_hot, border).numpy()


def _resized(images: tf.Tensor, size: int, method: str = "bilinear") -> tf.Tensor:
    if images.shape[1] == size and images.shape[2] == size:
        return images
    return tf.image.resize(images, (size, size), method=method)


# ------------------------------------------------------------------------------------------- ascent
def _gaussian_blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    if min(images.shape[1], images.shape[2]) <= radius:  # too small to reflect: nothing to smooth
        return images
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = np.outer(taps, taps) / np.outer(taps, taps).sum()
    kernel = tf.constant(np.tile(kernel[:, :, None, None], (1, 1, 3, 1)), tf.float32)
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def _step_sizes(settings: AscentSettings) -> list[float]:
    """Per step: cosine from ``step_size`` to ``final_step_size`` within each octave."""
    per_octave = np.array_split(np.arange(settings.steps), settings.octaves)
    sizes = []
    for chunk in per_octave:
        for position in range(len(chunk)):
            progress = position / max(1, len(chunk) - 1)
            sizes.append(settings.final_step_size + (settings.step_size - settings.final_step_size)
                         * 0.5 * (1 + math.cos(math.pi * progress)))
    return sizes


def filter_ascent(model: keras.Model, layer_name: str | None, filters: int | Sequence[int] = 64,
                  method: str | AscentSettings = "improved", steps: int | None = None,
                  image_size: int | None = None, seed: int = 0, batch_size: int = 32) -> FilterAscent:
    """Gradient ascent in input space for each chosen filter of ``layer_name`` (see the module's notes).

    ``filters``: the first N filters, or their indices. ``method``: "report", "improved" or your own
    ``AscentSettings`` (e.g. ``replace(SETTINGS["improved"], jitter=0)``). ``steps``: the method's if None.
    ``image_size``: the patterns' resolution (default: the model's input size; a pattern of another
    size is resized to the model's input before the network sees it).
    """
    require_gradients_backend("Filter ascent")
    if isinstance(method, AscentSettings):
        settings, method = method, "custom"
    elif method in METHODS:
        settings = SETTINGS[method]
    else:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    layer_name = check_filter_layer(model, layer_name)
    settings = settings if steps is None else replace(settings, steps=steps)
    if settings.steps < 1:
        raise UserError(f"gradient ascent needs at least 1 step, not {settings.steps}")
    input_size = int(model.input_shape[1])
    image_size = image_size or input_size
    extract = feature_extractor(model, [layer_name])
    channels = int(layers_by_name(model)[layer_name].output.shape[-1])
    indices = _filter_indices(filters, channels)
    starts = start_images(len(indices), image_size, seed)
    patterns = np.empty_like(starts)
    rng = np.random.default_rng(seed)
    jitter = round(settings.jitter * image_size)

    @tf.function(reduce_retracing=True)
    def ascend(start: tf.Tensor, change: tf.Tensor, one_hot: tf.Tensor, step_size: tf.Tensor,
               shift: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(change)
            images = _resized(start + _resized(change, image_size), input_size)
            images = tf.roll(images, shift, axis=(1, 2))
            loss = tf.reduce_sum(_objective(extract(images)[0], one_hot, settings.border))
        gradient = tape.gradient(loss, change)
        rms = tf.sqrt(tf.reduce_mean(tf.square(gradient), axis=(1, 2, 3), keepdims=True))
        return change + step_size * gradient / (rms + 1e-5)

    sizes = _step_sizes(settings)
    octave_steps = [len(chunk) for chunk in np.array_split(np.arange(settings.steps), settings.octaves)]
    batches = -(-len(indices) // batch_size)
    # A bar over every step of every batch (on a terminal): 64 VGG19 filters take minutes on a CPU.
    bar = tqdm(total=settings.steps * batches, unit="step", desc=f"gradient ascent, {layer_name}", leave=False,
               file=sys.stderr, disable=None)
    for first in range(0, len(indices), batch_size):
        batch = indices[first:first + batch_size]
        one_hot = tf.one_hot(batch, channels)
        start = tf.constant(starts[first:first + batch_size])
        # The pattern is start + change, the change drawn at 1/4, then 1/2, then full resolution (octaves).
        change = tf.zeros((len(batch), 1, 1, 3))
        step = 0
        for octave, count in enumerate(octave_steps):
            size = max(1, round(image_size / 2 ** (settings.octaves - 1 - octave)))
            change = _resized(change, size)
            coarse_start = _resized(start, size, method="area")
            for _ in range(count):
                shift = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
                change = ascend(start, change, one_hot, tf.constant(sizes[step], tf.float32),
                                tf.constant(shift, tf.int32))
                step += 1
                bar.update(1)
                if settings.blur_every and step % settings.blur_every == 0:
                    change = _gaussian_blur(change, settings.blur_sigma)
                if settings.clip:  # keep start + change (nearly) inside 0-255
                    change = tf.clip_by_value(change, -coarse_start, 255.0 - coarse_start)
        pattern = start + _resized(change, image_size)
        patterns[first:first + len(batch)] = tf.clip_by_value(pattern, 0.0, 255.0) if settings.clip else pattern

    bar.close()
    before = _batched_objective(model, layer_name, starts, indices, settings.border, batch_size)
    after = _batched_objective(model, layer_name, patterns, indices, settings.border, batch_size)
    return FilterAscent(layer_name, method, indices, patterns, starts, before, after, settings)


def _batched_objective(model: keras.Model, layer_name: str, images: np.ndarray, filters: Sequence[int],
                       border: float, batch_size: int) -> np.ndarray:
    return np.concatenate([filter_objective(model, layer_name, images[i:i + batch_size], filters[i:i + batch_size],
                                            border) for i in range(0, len(filters), batch_size)])


def filter_patterns(model: keras.Model, layer_name: str | None, filters: int | Sequence[int] = 64,
                    method: str = "improved", steps: int | None = None, image_size: int | None = None,
                    seed: int = 0) -> np.ndarray:
    """The patterns alone, float32 (N, S, S, 3) in 0-255 input space: ``filter_ascent(...).patterns``."""
    return filter_ascent(model, layer_name, filters, method, steps, image_size, seed).patterns


# ------------------------------------------------------------------------------------ measure, display
def low_frequency_share(changes: np.ndarray, cutoff: float = LOW_FREQUENCY_CUTOFF) -> np.ndarray:
    """Per image, the share of its power (each channel's mean removed) below ``cutoff`` cycles per pixel.

    ``changes``: (N, H, W, C). White noise gives about pi * cutoff**2 (0.049 at 1/8); smooth
    structure gives values near 1. A constant image (no power) gives 0.
    """
    changes = np.asarray(changes, np.float64)
    changes = changes - changes.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(changes, axes=(1, 2))) ** 2
    fy = np.fft.fftfreq(changes.shape[1])[:, None]
    fx = np.fft.fftfreq(changes.shape[2])[None, :]
    low = (np.hypot(fy, fx) < cutoff)[None, :, :, None]
    total = power.sum(axis=(1, 2, 3))
    return np.where(total > 0, (power * low).sum(axis=(1, 2, 3)) / np.maximum(total, 1e-30), 0.0)


def to_display(patterns: np.ndarray) -> np.ndarray:
    """Patterns -> uint8 tiles, each standardised as in the report (mean 0.5, std 0.1 of the range)."""
    patterns = np.asarray(patterns, np.float64)
    mean = patterns.mean(axis=(1, 2, 3), keepdims=True)
    std = patterns.std(axis=(1, 2, 3), keepdims=True)
    tiles = (patterns - mean) / (std + 1e-5) * 0.1 + 0.5
    return np.clip(tiles * 255, 0, 255).astype(np.uint8)


def save_filter_grid(model: keras.Model, layer_name: str | None = None,
                     output_dir: str | Path = DEFAULT_VISUALIZATIONS_DIR,
                     filters: int = 64, method: str = "improved", steps: int | None = None,
                     seed: int = 0) -> tuple[Path, FilterAscent]:
    """``filters-<layer>-<method>.png`` (a ``save_mosaic``, filters in row order) with ``.npy`` and ``.json``.

    The ``.npy`` holds the patterns in 0-255 input space; the ``.json`` the settings, each filter's
    objective before and after and its structure score (``low_frequency_share``).
    """
    if filters < 1:
        raise UserError(f"{parameter('filters')} must be at least 1, not {filters}")
    ascent = filter_ascent(model, layer_name, filters, method=method, steps=steps, seed=seed)
    structure = ascent.structure
    stem = f"filters-{ascent.layer_name}-{method}"
    title = (f"{model.name} {ascent.layer_name}: the input each filter responds to most ({method} ascent, "
             f"{ascent.structured_fraction:.0%} structured)")
    path = save_mosaic(list(to_display(ascent.patterns)), Path(output_dir) / f"{stem}.png", title,
                       [f"filter {index}" for index in ascent.filters])
    save_array(path.with_suffix(".npy"), ascent.patterns)
    write_json(path.with_suffix(".json"), {
        "model": model.name, "layer": ascent.layer_name, "method": method,
        "settings": ascent.settings.__dict__, "seed": seed, "filters": ascent.filters,
        "objective_before": ascent.objective_before.tolist(), "objective_after": ascent.objective_after.tolist(),
        "structure": structure.tolist(), "structure_threshold": STRUCTURE_THRESHOLD,
        "structured_fraction": ascent.structured_fraction})
    return path, ascent
