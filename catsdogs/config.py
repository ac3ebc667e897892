"""Settings: the constants every layer shares, ``AugmentParams`` and ``TrainConfig``.

One dataclass describes a training run. Each field carries its own documentation in its metadata
(help text, flag group, choices, bounds), so that the ``train`` command generates its flags from the
fields (``catsdogs.cli.add_settings_arguments``), validation lives in one place (``__post_init__``,
one-line ``ConfigError``s), and ``config.json`` in a run directory can be fed back as it is.

How a value is resolved, lowest to highest precedence::

    field default  <-  model recipe  <-  config file  <-  command-line flag

``TrainConfig.resolve(*layers)`` merges the layers in that order (each a mapping of field names to
values; ``augment_params`` merges key by key), then validates the result.

A config file (``read_settings_file``) is JSON, YAML (PyYAML) or TOML (``tomllib``; ``tomli`` on
Python 3.10) holding such a mapping; a run's ``config.json`` is one. This module imports no
TensorFlow, so command-line help and flag errors answer at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from catsdogs.errors import UserError, parameter
from catsdogs.outputs import write_json

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (Python 3.10: the tomli backport, a dependency there)
    import tomli as tomllib
yaml_load: Callable[[str], Any] | None
try:
    import yaml

    yaml_load = yaml.safe_load
except ImportError:  # PyYAML is optional: YAML config files need it
    yaml_load = None

# ------------------------------------------------------------------------------------------ constants
DEFAULT_IMAGE_SIZE = 150  # the report's input size
# A model's input size: 8 px is the least any model takes (the MLPs; each model states its own minimum, 32 for
# most Keras applications); 2048 px squared is 50 MB per image as floats, already a batch of gigabytes.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 2048
DEFAULT_SEED = 1337
SPLITS = ("train", "validation", "test")  # data_prep writes them; training reads them
DEFAULT_DATA_DIR = "data/cats_vs_dogs_small"  # what data_prep's examples write and every command reads
DEFAULT_RUNS_DIR = "runs"
DEFAULT_SAVED_MODELS_DIR = "saved_models"
EXPORT_FORMATS = ("saved_model", "litert", "onnx")  # python -m catsdogs.export --format
EXPORT_SUFFIXES = {"litert": ".tflite", "onnx": ".onnx"}  # the file formats; a SavedModel is a folder
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")  # --quantize (litert and onnx)
DEFAULT_EXPORT_CHECK_IMAGES = 1000  # held-out images an export's parity check compares on
COMPARE_SORT_KEYS = ("run", "model", "test_accuracy", "epochs", "minutes")  # experiments compare --sort
LADDER_BUDGETS = ("smoke", "quick", "standard", "report")  # experiments ladder --budget (epochs in its module)
TTA_MODES = ("none", "flip", "crops")  # test-time augmentation (catsdogs.runtime.tta): 1, 2 and 12 views
DEFAULT_VISUALIZATIONS_DIR = "visualizations"
CACHE_ENV = "CATSDOGS_CACHE"  # where downloads and file checks are kept (default ~/.cache/catsdogs)
# What TensorFlow's own decoders read (decode_jpeg, decode_image: PNG, GIF, BMP, WebP): what training and
# prediction accept.
# data_prep accepts more (``data_prep.sources.PREPARABLE_EXTENSIONS``) because it re-encodes them to JPEG.
DECODABLE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

FILL_MODES = ("nearest", "reflect", "wrap", "constant")
INTERPOLATIONS = ("bilinear", "nearest")
OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")  # --schedule: the learning rate within a phase
CLASS_WEIGHTS = ("none", "balanced")  # --class-weight: balanced weighs class c by N / (classes * N_c)
# data-parallel: keras.distribution on the JAX backend, over every device of every process; multi-worker is asked for
# only to be told why not (TensorFlow's MultiWorkerMirroredStrategy fails with Keras 3's fit).
STRATEGIES = ("auto", "mirrored", "one-device", "default", "data-parallel", "multi-worker")
AUGMENT_PLACES = ("auto", "pipeline", "model")
# Where training batches come from: tf.data (TensorFlow, the default and fastest) or keras.utils.PyDataset over
# Pillow and NumPy (no TensorFlow: the JAX backend trains where TensorFlow is not installed).
PIPELINES = ("tf.data", "pydataset")
JIT_CHOICES = ("auto", "on", "off")
# --precision: Keras's dtype policies. mixed_float16 is for GPUs; mixed_bfloat16 for CPUs with AVX-512 BF16 or AMX
# (oneDNN's bfloat16 kernels) and for recent GPUs. Weights, the output layer and the loss stay float32 in each.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
RECORD_KEY = "run"  # config.json's record of what the settings resolved to; not a setting itself
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """A config file's settings: ``.json``, ``.yaml`` / ``.yml`` or ``.toml``; any problem is a one-line ConfigError."""
    path = Path(path)
    suffix = path.suffix.lower()
    readers: dict[str, tuple[str, Callable[[str], Any] | None]] = {
        ".json": ("JSON", json.loads), ".toml": ("TOML", tomllib.loads), ".yaml": ("YAML", yaml_load),
        ".yml": ("YAML", yaml_load)}
    if suffix not in readers:
        raise ConfigError(f"{parameter('config', path)}: give a .json, .yaml or .toml file")
    language, parse = readers[suffix]
    if parse is None:
        raise ConfigError(f"{parameter('config', path)}: reading {language} needs PyYAML (pip install PyYAML)")
    try:
        values = parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{parameter('config', path)} cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 (each parser has its own error class)
        raise ConfigError(f"{parameter('config', path)} is not valid {language}: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, Mapping):
        raise ConfigError(f"{parameter('config', path)} must hold a mapping of settings, not {type(values).__name__}")
    return dict(values)


def user_cache_dir() -> Path:
    """``$CATSDOGS_CACHE`` if set, else ``~/.cache/catsdogs``: downloads, file checks; never the data folder."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "catsdogs").expanduser()


class ConfigError(UserError, ValueError):
    """A setting with a wrong type or out of range; the message names the setting and its flag."""


def setting(default: Any = dataclasses.MISSING, *, help: str, group: str, choices: tuple | None = None,
            minimum: float | None = None, maximum: float | None = None, above: float | None = None,
            below: float | None = None, metavar: str | None = None, factory: Any = None) -> Any:
    """A dataclass field that documents itself: help text, flag group, choices and bounds.

    ``minimum``/``maximum`` are inclusive, ``above``/``below`` exclusive bounds.
    """
    metadata = {"help": help, "group": group, "choices": choices, "minimum": minimum, "maximum": maximum,
                "above": above, "below": below, "metavar": metavar}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# --------------------------------------------------------------------------------------- validation
_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _describe_type(hint: Any) -> str:
    if hint in _TYPE_WORDS:
        return _TYPE_WORDS[hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join("none" if arg is type(None) else _describe_type(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) in (list, tuple):
        return f"a list of {_describe_type(typing.get_args(hint)[0])}"
    if typing.get_origin(hint) is dict:
        return "a mapping of names to values"
    return getattr(hint, "__name__", str(hint))


def _conform(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` where that loses nothing (an int where a float goes); else TypeError."""
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is type(None):
        if value is None:
            return None
    elif typing.get_origin(hint) in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _conform(value, option)
            except TypeError:
                continue
    elif typing.get_origin(hint) is list:
        if isinstance(value, (list, tuple)):
            return [_conform(item, typing.get_args(hint)[0]) for item in value]
    elif typing.get_origin(hint) is dict:
        if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
            return dict(value)
    elif typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(typing.get_args(hint)):
            return tuple(_conform(item, arg) for item, arg in zip(value, typing.get_args(hint)))
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return typing.cast(Any, hint).from_dict(value)  # the settings dataclasses each have one
    raise TypeError(_describe_type(hint))


def _check_bounds(name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{parameter(name)} must be one of {', '.join(map(str, choices))}, not {value!r} "
                          f"(setting {name!r})")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if not math.isfinite(value):  # nan passes every comparison below, and inf trains a model of NaNs
        raise ConfigError(f"{parameter(name)} must be a finite number, not {value!r} (setting {name!r})")
    for key, fails, words in (("minimum", lambda v, b: v < b, "at least"), ("maximum", lambda v, b: v > b, "at most"),
                              ("above", lambda v, b: v <= b, "above"), ("below", lambda v, b: v >= b, "below")):
        bound = metadata.get(key)
        if bound is not None and fails(value, bound):
            raise ConfigError(f"{parameter(name)} must be {words} {bound:g}, not {value:g} (setting {name!r})")


def validate_fields(instance: Any) -> None:
    """Conform every field of a settings dataclass to its type and check its bounds, in place."""
    hints = typing.get_type_hints(type(instance))
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        try:
            value = _conform(value, hints[item.name])
        except TypeError as exc:
            raise ConfigError(f"{parameter(item.name)} must be {exc}, not {value!r} (setting {item.name!r})") from None
        _check_bounds(item.name, value, item.metadata)
        object.__setattr__(instance, item.name, value)  # works for frozen dataclasses too


def _known(cls: type, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``values`` without the record key; an unknown key is an error that suggests the nearest name."""
    names = [item.name for item in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in names and key != RECORD_KEY]
    if unknown:
        near = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; known settings: {', '.join(names)}"
        raise ConfigError(f"unknown setting {unknown[0]!r} in {source}{hint}")
    return {key: value for key, value in values.items() if key in names}


# -------------------------------------------------------------------------------------- augmentation
AUGMENTATION = "augmentation (ImageDataGenerator's parameters and meaning)"


@dataclass(frozen=True)
class AugmentParams:
    """ImageDataGenerator's geometric parameters; defaults are the report's (Deep Learning with Python, 5.2)."""

    rotation_range: float = setting(40.0, help="degrees", group=AUGMENTATION, minimum=0)
    width_shift_range: float = setting(0.2, help="fraction of the width (< 1) or pixels", group=AUGMENTATION,
                                       minimum=0)
    height_shift_range: float = setting(0.2, help="fraction of the height (< 1) or pixels", group=AUGMENTATION,
                                        minimum=0)
    shear_range: float = setting(0.2, help="degrees", group=AUGMENTATION, minimum=0)
    zoom_range: float | tuple[float, float] = setting(
        0.2, help="x and y zoom drawn independently from [1 - z, 1 + z]", group=AUGMENTATION)
    horizontal_flip: bool = setting(True, help="flip left-right half of the time", group=AUGMENTATION)
    vertical_flip: bool = setting(False, help="flip upside down half of the time", group=AUGMENTATION)
    fill_mode: str = setting("nearest", help="how points outside the image are filled", group=AUGMENTATION,
                             choices=FILL_MODES)
    cval: float = setting(0.0, help="the value outside the image with --fill-mode constant", group=AUGMENTATION)
    interpolation: str = setting("bilinear", help="resampling", group=AUGMENTATION, choices=INTERPOLATIONS)

    def __post_init__(self) -> None:
        if isinstance(self.zoom_range, list):
            object.__setattr__(self, "zoom_range", tuple(self.zoom_range))
        validate_fields(self)
        low, high = self.zoom_bounds
        if not 0 < low <= high:
            raise ConfigError(f"{parameter('zoom_range')} must give 0 < low <= high, not {self.zoom_range!r} "
                              "(setting 'zoom_range')")

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        if isinstance(self.zoom_range, tuple):
            low, high = self.zoom_range
            return float(low), float(high)
        return 1.0 - float(self.zoom_range), 1.0 + float(self.zoom_range)

    @property
    def is_identity(self) -> bool:
        """True when no parameter moves a pixel, so the resampling can be skipped altogether."""
        return (
            self.rotation_range == 0
            and self.width_shift_range == 0
            and self.height_shift_range == 0
            and self.shear_range == 0
            and self.zoom_bounds == (1.0, 1.0)
            and not self.horizontal_flip
            and not self.vertical_flip
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "augment_params") -> AugmentParams:
        return cls(**_known(cls, values, source))


NO_AUGMENTATION = AugmentParams(
    rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0, zoom_range=0, horizontal_flip=False
)


# ----------------------------------------------------------------------------------------- training
# Model options that were settings of their own before each model declared its options, and the values that
# meant "the model's own" (each model's default): a config.json from before says alpha 1.0 for every model.
LEGACY_MODEL_OPTIONS: dict[str, Any] = {"alpha": 1.0, "batchnorm": False, "units": [], "depth": 0}


def with_current_names(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` in today's settings: the options of before (``alpha``, ``batchnorm``, ``units``, ``depth`` at the
    top level) moved into ``model_options`` (``models.registry.model_options`` leaves out those at their neutral
    value), and ``mixed_precision: true`` (before ``precision``) as ``precision: mixed_float16``."""
    if "mixed_precision" in values:
        legacy = bool(values["mixed_precision"])
        values = {key: value for key, value in values.items() if key != "mixed_precision"}
        if legacy:
            values.setdefault("precision", "mixed_float16")
    moved = {key: value for key, value in values.items() if key in LEGACY_MODEL_OPTIONS}
    if not moved:
        return dict(values)
    kept = {key: value for key, value in values.items() if key not in LEGACY_MODEL_OPTIONS}
    kept["model_options"] = {**moved, **dict(values.get("model_options") or {})}
    return kept

DATA, MODEL, OPTIMISATION, PERFORMANCE, DISTRIBUTION, OUTPUT = (
    "data", "model", "optimisation", "performance", "distribution", "output")


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults follow the report where it gave one."""

    GROUPS: ClassVar[tuple[str, ...]] = (DATA, MODEL, OPTIMISATION, AUGMENTATION, PERFORMANCE, DISTRIBUTION, OUTPUT)

    # data
    data_dir: str = setting(DEFAULT_DATA_DIR, help="split folder written by python -m data_prep", group=DATA,
                            metavar="DIR")
    image_size: int = setting(DEFAULT_IMAGE_SIZE, help="square input size in pixels", group=DATA,
                              minimum=MIN_IMAGE_SIZE, maximum=MAX_IMAGE_SIZE, metavar="PX")
    cache: str = setting("auto", help="decoded-image cache: auto (memory when it fits), memory, none, or a file path",
                         group=DATA)
    pipeline: str = setting("tf.data", help="where batches come from: tf.data (TensorFlow), or pydataset (Pillow "
                                            "and NumPy through keras.utils.PyDataset: no TensorFlow needed)",
                            group=DATA, choices=PIPELINES)
    # model
    model: str = setting("small_cnn", help="registered model name (see --list-models)", group=MODEL, metavar="NAME")
    weights: str | None = setting("imagenet", help="imagenet (Keras cache, KERAS_HOME), a local weights file, "
                                                   "or none (ignored by models trained from scratch)", group=MODEL)
    unfreeze: str = setting("none", help="base layers to fine-tune: none, all, blockK (K and above), a fraction, "
                                         "or a layer name", group=MODEL)
    dropout: float = setting(0.5, help="dropout rate before the output", group=MODEL, minimum=0, below=1)
    model_options: dict[str, Any] = setting(help="the model's own options, e.g. {\"alpha\": 0.25}: each model "
                                                 "declares its own (models.registry.ModelOptions); a flag each, "
                                                 "e.g. --alpha", group=MODEL, factory=dict)
    # optimisation
    recipe: str = setting("default", help="the model's preset optimisation settings, below a --config file and the "
                                          "flags; e.g. report (small_cnn, VGG), modern (small_cnn) or frozen "
                                          "(see --list-models)",
                          group=OPTIMISATION)
    epochs: int = setting(30, help="epochs (after the warm-up when fine-tuning)", group=OPTIMISATION, minimum=1)
    warmup_epochs: int = setting(5, help="head-only epochs with the base frozen before --unfreeze takes effect",
                                 group=OPTIMISATION, minimum=0)
    batch_size: int = setting(32, help="batch size per replica", group=OPTIMISATION, minimum=1)
    optimizer: str = setting("rmsprop", help="the optimizer", group=OPTIMISATION, choices=OPTIMIZERS)
    lr: float = setting(1e-4, help="learning rate from scratch and for the head (report: 1e-4)", group=OPTIMISATION,
                        above=0)
    fine_tune_lr: float = setting(1e-5, help="learning rate once layers are unfrozen (report: 1e-5)",
                                  group=OPTIMISATION, above=0)
    weight_decay: float = setting(0.0, help="decoupled weight decay (AdamW's; any optimizer), e.g. 0.05 (0: off)",
                                  group=OPTIMISATION, minimum=0)
    momentum: float = setting(0.9, help="momentum of sgd", group=OPTIMISATION, minimum=0, below=1)
    schedule: str = setting("constant", help="the learning rate within each phase: constant, or cosine (a linear "
                                             "warm-up of --lr-warmup epochs, then a cosine decay to 0)",
                            group=OPTIMISATION, choices=SCHEDULES)
    lr_warmup: int = setting(0, help="epochs of linear learning-rate warm-up at each phase's start (--schedule cosine)",
                             group=OPTIMISATION, minimum=0, metavar="EPOCHS")
    label_smoothing: float = setting(0.0, help="soften the targets: 1 - S for the true class, S shared by all "
                                               "(e.g. 0.1)", group=OPTIMISATION, minimum=0, below=1)
    class_weight: str = setting("none", help="balanced: weigh each training image's loss by N / (classes x its "
                                             "class's count), so a small class counts as much as a large one "
                                             "(blended like the labels under mixup and CutMix)",
                                group=OPTIMISATION, choices=CLASS_WEIGHTS)
    ema: float = setting(0.0, help="validate and keep a moving average of the weights with this momentum, "
                                   "e.g. 0.99 (0: off)", group=OPTIMISATION, minimum=0, below=1, metavar="MOMENTUM")
    early_stopping: int = setting(0, help="stop after PATIENCE epochs without a better validation accuracy (0: off)",
                                  group=OPTIMISATION, minimum=0, metavar="PATIENCE")
    reduce_lr: int = setting(0, help="halve the learning rate after PATIENCE flat epochs (0: off)",
                             group=OPTIMISATION, minimum=0, metavar="PATIENCE")
    seed: int = setting(DEFAULT_SEED, help="seed of the weights, the order and the augmentation", group=OPTIMISATION)
    calibrate: bool = setting(False, help="fit a temperature on the validation split at the end (temperature "
                                          "scaling): honest probabilities, the same classes; predict, evaluate, "
                                          "serve and export apply it", group=OPTIMISATION)
    # augmentation (ImageDataGenerator's names and meaning)
    augment: bool = setting(True, help="augment the training images", group=AUGMENTATION)
    augment_params: AugmentParams = setting(help="ImageDataGenerator's parameters", group=AUGMENTATION,
                                            factory=AugmentParams)
    mixup: float = setting(0.0, help="mixup: blend pairs of training images and their labels with a Beta(A, A) "
                                     "weight, e.g. 0.2 (0: off)", group=AUGMENTATION, minimum=0, metavar="A")
    cutmix: float = setting(0.0, help="CutMix: paste a box of another training image, the labels weighted by its "
                                      "area, Beta(A, A), e.g. 1.0 (0: off; with --mixup, one of the two per batch)",
                            group=AUGMENTATION, minimum=0, metavar="A")
    augment_in: str = setting("auto", help="where augmentation runs: auto = the input pipeline on CPU, inside the "
                                           "model on GPU or with --pipeline pydataset",
                              group=AUGMENTATION, choices=AUGMENT_PLACES)
    # performance
    cache_features: bool = setting(False, help="run the frozen layers once and train on their stored outputs",
                                   group=PERFORMANCE)
    augment_copies: int = setting(0, help="with --cache-features: also cache K augmented copies of the training set",
                                  group=PERFORMANCE, minimum=0, metavar="K")
    feature_cache: str = setting("cache/features", help="where --cache-features keeps features (keyed by model, "
                                                        "weights, data, augmentation)", group=PERFORMANCE,
                                 metavar="DIR")
    precision: str = setting("float32", help="compute precision: float32, mixed_float16 (GPUs) or mixed_bfloat16 "
                                             "(CPUs with bfloat16 instructions, recent GPUs); weights stay float32",
                             group=PERFORMANCE, choices=PRECISIONS)
    jit_compile: str = setting("auto", help="XLA: auto lets Keras decide (on for GPU, off for CPU, where it is "
                                            "slower)", group=PERFORMANCE, choices=JIT_CHOICES)
    # distribution
    strategy: str = setting("auto", help="auto: on TensorFlow MirroredStrategy over all GPUs when there are 2+, else "
                                         "the default; on JAX data-parallel (keras.distribution over every device of "
                                         "every process)",
                            group=DISTRIBUTION, choices=STRATEGIES)
    devices: list[str] = setting(help="comma-separated devices for mirrored/one-device, e.g. /gpu:0,/gpu:1 or "
                                      "/cpu:0,/cpu:1 (CPU devices are created as needed)", group=DISTRIBUTION,
                                 factory=list)
    # output
    output: str = setting(DEFAULT_RUNS_DIR, help="where run directories go", group=OUTPUT, metavar="DIR")
    name: str = setting("", help="the saved model's name, saved_models/NAME.keras (default: model and --unfreeze, "
                                 "e.g. vgg19-block5)", group=OUTPUT)
    saved_models_dir: str = setting(DEFAULT_SAVED_MODELS_DIR, help="where trained models are collected",
                                    group=OUTPUT, metavar="DIR")
    verbose: int = setting(1, help="0: silent, 1: progress bars (one line per epoch when the output is not a "
                                   "terminal), 2: one line per epoch", group=OUTPUT,
                           choices=(0, 1, 2))

    def __post_init__(self) -> None:
        if isinstance(self.weights, str) and self.weights.lower() == "none":
            self.weights = None
        if isinstance(self.devices, str):
            self.devices = [d.strip() for d in self.devices.split(",") if d.strip()]
        validate_fields(self)
        if self.schedule == "cosine" and self.reduce_lr:
            raise ConfigError(f"{parameter('schedule', 'cosine')} sets the learning rate every epoch, so "
                              f"{parameter('reduce_lr')} cannot also "
                              "change it; use one of them (setting 'reduce_lr')")
        if (self.mixup or self.cutmix) and self.cache_features:
            raise ConfigError(f"{parameter('mixup')} and {parameter('cutmix')} blend images, and "
                              f"{parameter('cache_features')} trains on stored features of "
                              "unblended ones; use one or the other (setting 'cache_features')")
        if self.name and (not _PLAIN_NAME.fullmatch(self.name) or ".." in self.name):
            raise ConfigError(f"{parameter('name')} must be a plain name (letters, digits, '.', '_', '-'), not "
                              f"{self.name!r}: it names a file in {parameter('saved_models_dir')} (setting 'name')")

    @property
    def run_label(self) -> str:
        label = self.model
        alpha = self.model_options.get("alpha", 1.0)
        if alpha != 1.0:
            label += f"-{alpha:g}"
        if self.unfreeze != "none":
            label += f"-{self.unfreeze}"
        return label

    @property
    def model_name(self) -> str:
        return self.name or self.run_label

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["augment_params"] = self.augment_params.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "the settings") -> TrainConfig:
        return cls(**_known(cls, with_current_names(values), source))

    @classmethod
    def resolve(cls, *layers: Mapping[str, Any], source: str = "the settings") -> TrainConfig:
        """The config from layers of settings, later layers winning (defaults <- recipe <- file <- flags)."""
        merged: dict[str, Any] = {}
        for layer in layers:
            for key, value in with_current_names(layer).items():
                if key in ("augment_params", "model_options"):  # nested: a layer changes only what it names
                    value = value.to_dict() if isinstance(value, AugmentParams) else dict(value)
                    merged[key] = {**merged.get(key, {}), **value}
                else:
                    merged[key] = value
        return cls.from_dict(merged, source)

    def save(self, path: str | Path, **extra: Any) -> None:
        write_json(path, {**self.to_dict(), **extra})

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """A config file (``read_settings_file``) as a whole config: a run's ``config.json`` gives that run's."""
        values = read_settings_file(path)
        try:
            return cls.from_dict(values, str(path))
        except ConfigError as exc:  # name the file, which the user must fix, not only the setting
            message = exc.args[0]  # as raised: its parameters still name the flags on the command line
            raise ConfigError(message if str(path) in str(exc) else f"{path}: {message}") from None
