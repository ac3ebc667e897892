"""What a classifier carries besides its weights, in every form it leaves the app.

A ``.keras`` file holds it as a zip entry (``catsdogs.models.saving``); an exported model (SavedModel
folder, ``.tflite``, ``.onnx``) has it beside it as a sidecar ``catsdogs.json`` plus ``labels.txt``
(one class name per line, in output order), since neither LiteRT nor ONNX has a maintained place
for labels. No TensorFlow here: the exported-model runtime reads it too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catsdogs.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from catsdogs.errors import UserError, parameter
from catsdogs.outputs import write_text

METADATA_ENTRY = "catsdogs.json"  # the zip entry of a .keras file, and the sidecar's name
LABELS_FILE = "labels.txt"


@dataclass
class ModelInfo:
    """What a saved classifier carries besides its weights.

    ``extra`` holds how it was made: the run, the recipe, the data (folder, fingerprint, counts),
    the metrics (``metrics.test`` with per-class figures) and, for an exported model, ``export``.
    """

    class_names: list[str]
    image_size: int
    model_name: str = ""
    preprocessing: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @property
    def metrics(self) -> dict[str, Any]:
        return self.extra.get("metrics") or {}

    def class_index(self, name: str | None, parameter_name: str = "class_name") -> int | None:
        """The index of class ``name`` (None for None); a UserError listing the classes when it has none such."""
        if name is None:
            return None
        if name not in self.class_names:
            raise UserError(f"{parameter(parameter_name)} {name!r} is not a class of this model; choose one of "
                            f"{', '.join(self.class_names)}")
        return self.class_names.index(name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def check_info_values(info: ModelInfo, source: Path | str) -> ModelInfo:
    """The metadata's own sense: at least two distinct class names, an image size within bounds."""
    fix = "re-save or re-export the model with catsdogs"
    names = info.class_names
    if (not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        raise UserError(f"{source}: class_names must list at least 2 distinct names, not {names!r}; {fix}")
    if isinstance(info.image_size, bool) or not isinstance(info.image_size, int) or not (
            MIN_IMAGE_SIZE <= info.image_size <= MAX_IMAGE_SIZE):
        raise UserError(f"{source}: image_size must be a whole number of pixels from {MIN_IMAGE_SIZE} to "
                        f"{MAX_IMAGE_SIZE}, not {info.image_size!r}; {fix}")
    return info


def info_from_json(text: str | bytes, source: Path | str) -> ModelInfo:
    """``catsdogs.json``'s text -> ``ModelInfo`` (unknown keys ignored); a UserError names what is wrong."""
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source}: {METADATA_ENTRY} is not valid JSON ({exc}); re-save the model with "
                        "catsdogs") from None
    if not isinstance(values, dict) or not {"class_names", "image_size"} <= values.keys():
        raise UserError(f"{source}: {METADATA_ENTRY} must hold class_names and image_size; re-save the model with "
                        "catsdogs")
    known = {key: values[key] for key in ModelInfo.__dataclass_fields__ if key in values}
    return ModelInfo(**known)


def write_sidecar(folder: Path, info: ModelInfo) -> list[Path]:
    """``catsdogs.json`` and ``labels.txt`` in ``folder``."""
    return [write_text(folder / METADATA_ENTRY, info.to_json() + "\n"),
            write_text(folder / LABELS_FILE, "\n".join(info.class_names) + "\n")]


def sidecar_folder(model_path: Path) -> Path:
    """Where an exported model's sidecar is: beside a file; in a SavedModel version folder's parent
    (``<base>/<version>/`` is TF Serving's layout, and the sidecar describes every version) or in it."""
    if model_path.is_dir() and not (model_path / METADATA_ENTRY).is_file() and model_path.name.isdigit():
        return model_path.parent
    return model_path if model_path.is_dir() else model_path.parent


def read_sidecar(model_path: Path) -> ModelInfo:
    """The ``ModelInfo`` beside an exported model; a one-line UserError when it is missing or wrong."""
    path = sidecar_folder(model_path) / METADATA_ENTRY
    if not path.is_file():
        raise UserError(f"{model_path} has no {METADATA_ENTRY} beside it (class names, image size); export models "
                        "with `python -m catsdogs.export`, which writes it, or copy it along with the model")
    info = check_info_values(info_from_json(path.read_bytes(), path), path)
    labels = path.parent / LABELS_FILE
    if labels.is_file() and labels.read_text().split("\n")[:len(info.class_names)] != info.class_names:
        raise UserError(f"{labels} does not list the class names of {path} in order; re-export the model")
    return info
