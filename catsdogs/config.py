"""The configuration objects: ``TrainConfig`` for a run, ``AugmentParams`` for augmentation.

One dataclass describes a training run; the CLI fills it, ``train(config)`` runs it, and it is saved
as ``config.json`` in the run directory so any result can be reproduced (``--resume`` reads it back).
This module imports no TensorFlow, so command-line help and flag errors answer at once.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILL_MODES = ("nearest", "reflect", "wrap", "constant")
INTERPOLATIONS = ("bilinear", "nearest")


@dataclass(frozen=True)
class AugmentParams:
    """ImageDataGenerator's geometric parameters; defaults are the report's (Deep Learning with Python, 5.2)."""

    rotation_range: float = 40.0
    width_shift_range: float = 0.2
    height_shift_range: float = 0.2
    shear_range: float = 0.2
    zoom_range: float | tuple[float, float] = 0.2
    horizontal_flip: bool = True
    vertical_flip: bool = False
    fill_mode: str = "nearest"
    cval: float = 0.0
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {FILL_MODES}, not {self.fill_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {self.interpolation!r}")
        for name in ("rotation_range", "width_shift_range", "height_shift_range", "shear_range"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        low, high = self.zoom_bounds
        if not 0 < low <= high:
            raise ValueError(f"zoom_range must give 0 < low <= high, not {self.zoom_range!r}")

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        if isinstance(self.zoom_range, (tuple, list)):
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
    def from_dict(cls, values: dict[str, Any]) -> AugmentParams:
        values = dict(values)
        if isinstance(values.get("zoom_range"), list):
            values["zoom_range"] = tuple(values["zoom_range"])
        return cls(**values)


NO_AUGMENTATION = AugmentParams(
    rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0, zoom_range=0, horizontal_flip=False
)


OPTIMIZERS = ("rmsprop", "adam", "sgd")
STRATEGIES = ("auto", "mirrored", "one-device", "default")
AUGMENT_PLACES = ("auto", "pipeline", "model")


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults follow the report where it gave one."""

    # data
    data_dir: str = "data/cats_vs_dogs_small"
    image_size: int = 150
    cache: str = "auto"  # auto (memory when it fits) | memory | none | a file path
    # model
    model: str = "small_cnn"
    weights: str | None = "imagenet"  # imagenet | a file | none (ignored by small_cnn)
    unfreeze: str = "none"
    alpha: float = 1.0
    dropout: float = 0.5
    batchnorm: bool = False
    # optimisation
    epochs: int = 30
    warmup_epochs: int = 5  # head-only epochs before unfreezing (only with --unfreeze)
    batch_size: int = 32  # per replica
    optimizer: str = "rmsprop"
    lr: float = 1e-4  # the report's rate from scratch; also the head's rate in the warm-up
    fine_tune_lr: float = 1e-5  # the report's fine-tuning rate
    ema: float = 0.0  # momentum of an exponential moving average of the weights (e.g. 0.99); 0 = off
    early_stopping: int = 0  # patience in epochs; 0 = off
    reduce_lr: int = 0  # ReduceLROnPlateau patience; 0 = off
    seed: int = 1337
    # augmentation (ImageDataGenerator's names and meaning)
    augment: bool = True
    augment_params: AugmentParams = field(default_factory=AugmentParams)
    augment_in: str = "auto"  # auto (pipeline on CPU, model on GPU) | pipeline | model
    # performance
    cache_features: bool = False  # frozen layers run once; see catsdogs.features
    augment_copies: int = 0  # with cache_features: K augmented copies of the training set
    feature_cache: str = "cache/features"  # where cached features are kept, keyed by what they depend on
    mixed_precision: bool = False
    jit_compile: str = "auto"  # auto (XLA on GPU, not on CPU, as Keras decides) | on | off
    # distribution
    strategy: str = "auto"
    devices: list[str] = field(default_factory=list)
    # output
    output: str = "runs"
    name: str = ""  # saved_models/<name>.keras; default from the model and --unfreeze
    saved_models_dir: str = "saved_models"
    verbose: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.augment_params, dict):
            self.augment_params = AugmentParams.from_dict(self.augment_params)
        if isinstance(self.weights, str) and self.weights.lower() == "none":
            self.weights = None

    @property
    def run_label(self) -> str:
        label = self.model
        if self.alpha != 1.0:
            label += f"-{self.alpha:g}"
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
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def save(self, path: str | Path, **extra: Any) -> None:
        Path(path).write_text(json.dumps({**self.to_dict(), **extra}, indent=2, default=str) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
