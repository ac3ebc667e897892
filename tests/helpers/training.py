"""Tiny training runs: a config that trains in seconds, a simulated kill, a confident saved model."""

from __future__ import annotations

from pathlib import Path

import keras

from catsdogs.config import AugmentParams, TrainConfig
from catsdogs.data.files import read_image_folder
from catsdogs.exports.exporter import decode_folder
from catsdogs.metadata import ModelInfo
from catsdogs.models import create_model
from catsdogs.models.heads import class_probabilities
from catsdogs.models.saving import save_model
from helpers.images import make_split_folder


def tiny_config(data_dir: Path, tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(data_dir=str(data_dir), image_size=48, model="small_cnn", weights=None, epochs=2, batch_size=8,
                  output=str(tmp_path / "runs"), saved_models_dir=str(tmp_path / "saved_models"), verbose=0)
    values.update(overrides)
    return TrainConfig(**values)


class StopAfter(keras.callbacks.Callback):
    """Simulates a kill: raises once ``epochs`` epochs have finished (after the backup is written)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt("simulated kill")


def train_tiny(root: Path, name: str, size: int, classes: tuple[str, ...], batchnorm: bool) -> tuple[Path, Path]:
    """A confident model (colour tells the classes apart), saved with its data recorded."""
    data = make_split_folder(root / "data", {"train": 8, "validation": 3, "test": 6}, size=size, classes=classes)
    augmentation = AugmentParams(rotation_range=10, horizontal_flip=True) if len(classes) == 2 else None
    model = create_model(name, image_size=size, num_classes=len(classes), weights=None, augmentation=augmentation,
                         batchnorm=batchnorm)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5  # the moving statistics settle within the few steps of this fit
    train = read_image_folder(data / "train")
    images, labels, _ = decode_folder(train, size, 100)
    binary = len(classes) == 2
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy" if binary else "sparse_categorical_crossentropy")
    keras.utils.set_random_seed(0)
    model.fit(images, labels.astype("float32") if binary else labels, epochs=40, batch_size=8, verbose=0)
    probabilities = class_probabilities(model.predict(images, verbose=0), len(classes))
    assert (probabilities.argmax(1) == labels).all() and probabilities.max(1).mean() > 0.9  # confident, so parity means something
    info = ModelInfo(list(classes), size, name, extra={"data": {"dir": str(data)}})
    return save_model(model, root / f"{name}.keras", info), data
