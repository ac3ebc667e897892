"""Saving and loading classifiers together with what prediction needs to know about them.

A ``.keras`` file is a zip; next to Keras's own entries we store ``catsdogs.json``: class names,
image size, preprocessing, the model name and how it was trained. Keras ignores the extra entry, so
the file stays an ordinary Keras model, and ``predict`` / ``evaluate`` / ``visualize`` need no flags.
Loading uses Keras safe mode: a file that needs arbitrary Python (a ``Lambda`` layer) is refused
unless the caller says it trusts the file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras

import catsdogs.models.layers  # noqa: F401  (registers Preprocess and RandomAffine for deserialisation)
from catsdogs.errors import UserError

METADATA_ENTRY = "catsdogs.json"


@dataclass
class ModelInfo:
    """What a saved classifier carries besides its weights."""

    class_names: list[str]
    image_size: int
    model_name: str = ""
    preprocessing: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2


def save_model(model: keras.Model, path: str | Path, info: ModelInfo) -> Path:
    """Save ``model`` as a ``.keras`` file with ``info`` inside it; written beside, then renamed."""
    path = Path(path)
    if path.suffix != ".keras":
        raise UserError(f"{path}: models are saved as .keras files")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.keras")
    model.save(partial)
    with zipfile.ZipFile(partial, "a") as archive:
        archive.writestr(METADATA_ENTRY, json.dumps(asdict(info), indent=2))
    partial.replace(path)  # a crash never leaves a half-written model under the real name
    return path


def read_model_info(path: str | Path, model: keras.Model | None = None) -> ModelInfo:
    """The stored ``ModelInfo``; for a plain Keras file, what can be inferred from the model itself."""
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_ENTRY in archive.namelist():
                return ModelInfo(**json.loads(archive.read(METADATA_ENTRY)))
    except zipfile.BadZipFile:
        pass
    if model is None:
        raise UserError(f"{path} has no catsdogs metadata; load it with load_model()")
    size = model.input_shape[1]
    outputs = model.output_shape[-1]
    names = ["class_0", "class_1"] if outputs == 1 else [f"class_{i}" for i in range(outputs)]
    return ModelInfo(class_names=names, image_size=int(size), model_name=model.name)


def load_model(path: str | Path, unsafe: bool = False) -> tuple[keras.Model, ModelInfo]:
    """Load a classifier and its ``ModelInfo``. Safe mode is on unless ``unsafe``; any failure is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a .keras model file (a zip archive saved by Keras 3)")
    try:
        model = keras.models.load_model(path, safe_mode=not unsafe, compile=False)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise UserError(f"{path} contains Python code (a Lambda layer), which safe mode does not load; "
                            "pass --unsafe only if you trust where the file came from") from None
        raise UserError(f"{path} could not be loaded: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 (a zip that is not a Keras model fails in many ways in Keras)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} could not be loaded as a Keras model: {first_line}") from None
    return model, read_model_info(path, model)
