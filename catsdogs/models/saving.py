"""Saving and loading classifiers together with what prediction needs to know about them.

A ``.keras`` file is a zip; next to Keras's own entries we store ``catsdogs.json``: class names,
image size, preprocessing, the model name and how it was trained. Keras ignores the extra entry, so
the file stays an ordinary Keras model, and ``predict`` / ``evaluate`` / ``visualize`` need no flags.
Loading uses Keras safe mode: a file that needs arbitrary Python (a ``Lambda`` layer) is refused
unless the caller says it trusts the file.

A file from elsewhere is checked before Keras reads it: every zip entry's size and compression ratio
(Keras stores entries uncompressed, so a highly compressed entry is a zip bomb, refused before it
allocates its gigabytes), then the metadata against the model (at least two distinct class names,
as many as the model has outputs; an image size within bounds that fits the model's input).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
import numpy as np

import catsdogs.models.layers  # noqa: F401  (registers Preprocess and RandomAffine for deserialisation)
from catsdogs.errors import UserError, parameter
from catsdogs.metadata import METADATA_ENTRY, ModelInfo, check_info_values, read_archive_info
from catsdogs.modelcard import write_card
from catsdogs.outputs import atomic_path

MAX_ENTRY_BYTES = 8 * 2**30  # the largest Keras application (ConvNeXt XLarge) is 1.4 GB of weights
MAX_COMPRESSION_RATIO = 20  # Keras stores entries uncompressed (ratio 1); zeros deflate about 1000:1
_RATIO_FROM_BYTES = 1 << 20  # small entries (JSON) may compress well


def save_model(model: keras.Model, path: str | Path, info: ModelInfo) -> Path:
    """Save ``model`` as a ``.keras`` file with ``info`` inside it, and its model card beside it (``x.md``).

    Written and fsynced under a temporary name, then renamed, so ``path`` is the previous whole model
    or the new one, even after a kill or a crash."""
    path = Path(path)
    if path.suffix != ".keras":
        raise UserError(f"{path}: models are saved as .keras files")
    with atomic_path(path, fsync=True) as temporary:
        model.save(temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(METADATA_ENTRY, info.to_json())
    write_card(path, info)
    return path


def update_model_info(path: str | Path, info: ModelInfo) -> Path:
    """Replace the metadata of a saved model (test scores known after saving), atomically; and its card.

    A zip entry cannot be rewritten in place: the other entries are copied into a new archive.
    """
    path = Path(path)
    with atomic_path(path, fsync=True) as temporary:
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(temporary, "w") as target:
            for entry in source.infolist():
                if entry.filename != METADATA_ENTRY:
                    with source.open(entry) as reader, target.open(entry, "w") as writer:
                        while chunk := reader.read(1 << 20):
                            writer.write(chunk)
            target.writestr(METADATA_ENTRY, info.to_json())
    write_card(path, info)
    return path


def check_archive(path: Path) -> None:
    """Refuse a ``.keras`` zip whose entries would unpack to more than a model could be (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path} is not a .keras model file (a zip archive saved by Keras 3): {exc}") from None
    for entry in entries:
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > MAX_ENTRY_BYTES or (entry.file_size > _RATIO_FROM_BYTES and ratio > MAX_COMPRESSION_RATIO):
            raise UserError(f"{path} is refused: its entry {entry.filename} unpacks to {entry.file_size / 1e9:.1f} GB "
                            f"from {entry.compress_size / 1e6:.1f} MB (ratio {ratio:.0f}); Keras stores models "
                            "uncompressed, so this file was not saved by Keras")


def check_model_info(info: ModelInfo, model: keras.Model, path: Path) -> ModelInfo:
    """The metadata, checked against sense and against the model; a UserError names the wrong value."""
    fix = "re-save the model with catsdogs (or fix catsdogs.json inside the archive)"
    check_info_values(info.class_names, info.image_size, path)
    names = info.class_names
    input_size = model.input_shape[1] if len(model.input_shape) == 4 else None
    if input_size is not None and input_size != info.image_size:
        raise UserError(f"{path}: image_size {info.image_size} does not match the model's input ({input_size} px); "
                        f"{fix}")
    outputs = model.output_shape[-1]
    if outputs != len(names) and not (outputs == 1 and len(names) == 2):
        raise UserError(f"{path}: {len(names)} class names {names} for a model with {outputs} outputs; {fix}")
    return info


def read_model_info(path: str | Path, model: keras.Model | None = None) -> ModelInfo:
    """The stored ``ModelInfo``; for a plain Keras file, what can be inferred from the model itself."""
    info = read_archive_info(path)
    if info is not None:
        return check_model_info(info, model, Path(path)) if model is not None else info
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
    check_archive(path)
    try:
        model = keras.models.load_model(path, safe_mode=not unsafe, compile=False)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise UserError(f"{path} contains Python code (a Lambda layer), which safe mode does not load; "
                            f"pass {parameter('unsafe')} only if you trust where the file came from") from None
        raise UserError(f"{path} could not be loaded: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 (a zip that is not a Keras model fails in many ways in Keras)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} could not be loaded as a Keras model: {first_line}") from None
    if not all(np.isfinite(keras.ops.convert_to_numpy(weight)).all() for weight in model.weights):
        raise UserError(f"{path} holds weights that are not finite numbers (NaN or infinity): its training diverged; "
                        "train it again with a lower learning rate")
    return model, read_model_info(path, model)
