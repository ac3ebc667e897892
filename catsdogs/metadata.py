"""What a classifier carries besides its weights, in every form it leaves the app: one typed, versioned schema.

A ``.keras`` file holds it as a zip entry (``catsdogs.models.saving``); an exported model (SavedModel
folder, ``.tflite``, ``.onnx``) has it beside it as a sidecar ``catsdogs.json`` plus ``labels.txt``
(one class name per line, in output order), since neither LiteRT nor ONNX has a maintained place
for labels. No TensorFlow here: the exported-model runtime reads it too.

The schema is pydantic's: each record says its fields' types, and a file is checked as it is read. Every
record keeps the keys it does not know (``extra="allow"``), so a file written by a later version of the
same format loses nothing when re-saved. ``format_version`` says which format a file is in: files
without it (before the schema) are version 1, which is today's shape; a higher version than this
code reads is a one-line error that says to upgrade. This module is the only one that reads the
metadata by key; everything else uses the records' attributes.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from catsdogs.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from catsdogs.errors import UserError, parameter
from catsdogs.outputs import write_text

METADATA_ENTRY = "catsdogs.json"  # the zip entry of a .keras file, and the sidecar's name
LABELS_FILE = "labels.txt"
FORMAT_VERSION = 1  # the metadata format this code writes and the newest it reads
UPGRADE = "pip install --upgrade catsdogs"


class Record(BaseModel):
    """A part of the metadata: typed fields, and whatever else the file holds, kept as it was."""

    model_config = ConfigDict(extra="allow")


class DataRecord(Record):
    """The data a model was trained on: the folder, its manifest's hash, and data_prep's summary."""

    dir: str | None = None
    fingerprint: str | None = None
    source: str | None = None
    kind: str | None = None
    split: str | None = None
    seed: int | None = None


class TemperatureFit(Record):
    """A temperature fitted on a split (``models.calibration``), and what it did to the likelihood."""

    temperature: float
    split: str
    images: int
    tta: str = "none"  # the views it was fitted through
    nll_before: float
    nll_after: float


class TTAChoice(Record):
    """The test-time augmentation chosen on validation, and every mode's scores there."""

    mode: str
    split: str
    images: int
    accuracy: dict[str, float]
    loss: dict[str, float]


class ThresholdChoice(Record):
    """A two-class model's decision threshold on its second class's probability, chosen on validation for the
    best balanced accuracy (``evaluate --choose-threshold``), and that score beside the plain 0.5's."""

    threshold: float
    second_class: str
    split: str
    images: int
    balanced_accuracy: float
    balanced_accuracy_at_half: float


class ClassScores(Record):
    precision: float
    recall: float
    f1: float
    support: int


class CalibrationScores(Record):
    ece: float
    ece_interval_95: tuple[float, float]
    brier: float


class SplitScores(Record):
    """A model's scores on the test split (``metrics.compute_metrics``)."""

    images: int = 0
    accuracy: float
    balanced_accuracy: float | None = None
    loss: float | None = None
    roc_auc: float | None = None
    calibration: CalibrationScores | None = None
    per_class: dict[str, ClassScores] = {}


class TrainingMetrics(Record):
    """What training measured: epochs, images per split, the best validation accuracy, the test scores."""

    epochs: int | None = None
    images: dict[str, int] = {}
    skipped: int = 0
    parameters: dict[str, int] | None = None
    seconds_per_epoch: float | None = None
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    test: SplitScores | None = None
    calibration_fit: TemperatureFit | None = None


class Parity(Record):
    """An export's parity check against its Keras model (``exports.parity``)."""

    images: int
    quantize: str
    agreement: float
    max_abs_difference: float
    mean_abs_difference: float
    accuracy: float | None = None
    keras_accuracy: float | None = None
    criteria: dict[str, float | None] = {}
    passed: bool
    problems: list[str] = []
    data: str | None = None


class ExportRecord(Record):
    """How an export was made: format, quantization, the source file and its hash, the parity check."""

    format: str
    quantize: str = "none"
    source: str | None = None
    source_sha256: str | None = None
    input: str = "image"
    output: str = "probabilities"
    exported: str | None = None
    input_description: str | None = None
    signatures: dict[str, str] | None = None
    representative_data: dict[str, Any] | None = None
    parity: Parity | None = None
    parity_skipped: bool = False  # export --check-images 0: unchecked by choice, not interrupted

    @property
    def checked(self) -> bool:
        """Whether the export finished: its parity check ran (or was skipped on purpose). One interrupted before it
        (by releases that wrote in place) has neither."""
        return self.parity is not None or self.parity_skipped


class ModelExtra(Record):
    """How a model was made, and what was tuned and measured since."""

    run_dir: str | None = None
    unfreeze: str | None = None
    trained_layers: str | None = None
    alpha: float | None = None  # the width multiplier, for files from before model_options
    model_options: dict[str, Any] | None = None  # the model's own options (models.registry.ModelOptions)
    recipe: str | None = None
    data_fingerprint: str | None = None
    data: DataRecord | None = None
    temperature: float | None = None  # applied by every runtime (``models.calibration``; exports bake it in)
    calibration_fit: TemperatureFit | None = None
    tta: TTAChoice | None = None
    threshold: ThresholdChoice | None = None  # applied by every runtime (``metrics.decide``)
    metrics: TrainingMetrics | None = None
    trained: str | None = None
    export: ExportRecord | None = None


@dataclass
class ModelInfo:
    """What a saved classifier carries besides its weights: the class names in output order, the input
    size and preprocessing, and ``extra``, how it was made (``ModelExtra``)."""

    class_names: list[str]
    image_size: int
    model_name: str = ""
    preprocessing: str = ""
    extra: ModelExtra = field(default_factory=ModelExtra)
    format_version: int = FORMAT_VERSION

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @property
    def decision_threshold(self) -> float | None:
        """The chosen threshold on the second class's probability (``metrics.decide``); None: the most probable."""
        return self.extra.threshold.threshold if self.extra.threshold else None

    @property
    def metrics(self) -> TrainingMetrics:
        return self.extra.metrics or TrainingMetrics()

    @property
    def val_accuracy(self) -> float | None:
        return self.metrics.best_val_accuracy

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.test.accuracy if self.metrics.test else None

    @property
    def data_fingerprint(self) -> str | None:
        return (self.extra.data.fingerprint if self.extra.data else None) or self.extra.data_fingerprint

    def with_extra(self, **records: Any) -> ModelInfo:
        """A copy with these ``extra`` records replaced (``tta=TTAChoice(...)``, ``metrics=...``)."""
        return replace(self, extra=self.extra.model_copy(update=records))

    def class_index(self, name: str | None, parameter_name: str = "class_name") -> int | None:
        """The index of class ``name`` (None for None); a UserError listing the classes when it has none such."""
        if name is None:
            return None
        if name not in self.class_names:
            raise UserError(f"{parameter(parameter_name)} {name!r} is not a class of this model; choose one of "
                            f"{', '.join(self.class_names)}")
        return self.class_names.index(name)

    def to_json(self) -> str:
        return _ADAPTER.dump_json(self, indent=2, exclude_none=True).decode()


_ADAPTER: TypeAdapter[ModelInfo] = TypeAdapter(ModelInfo)


def check_info_values(class_names: object, image_size: object, source: Path | str) -> None:
    """The metadata's own sense, in words before the schema's: at least two distinct class names, an image size
    within bounds."""
    fix = "re-save or re-export the model with catsdogs"
    names = class_names
    if (not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        raise UserError(f"{source}: class_names must list at least 2 distinct names, not {names!r}; {fix}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not (
            MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE):
        raise UserError(f"{source}: image_size must be a whole number of pixels from {MIN_IMAGE_SIZE} to "
                        f"{MAX_IMAGE_SIZE}, not {image_size!r}; {fix}")


def info_from_json(text: str | bytes, source: Path | str) -> ModelInfo:
    """``catsdogs.json``'s text -> ``ModelInfo``, checked; a UserError names what is wrong."""
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source}: {METADATA_ENTRY} is not valid JSON ({exc}); re-save the model with "
                        "catsdogs") from None
    if not isinstance(values, dict) or not {"class_names", "image_size"} <= values.keys():
        raise UserError(f"{source}: {METADATA_ENTRY} must hold class_names and image_size; re-save the model with "
                        "catsdogs")
    version = values.get("format_version", 1)  # files from before the schema are version 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"{source}: {METADATA_ENTRY} has format_version {version!r}, not a version number; re-save "
                        "the model with catsdogs")
    if version > FORMAT_VERSION:
        raise UserError(f"{source} was written by a newer catsdogs (metadata format {version}; this one reads up to "
                        f"{FORMAT_VERSION}); upgrade it to read this model: {UPGRADE}")
    check_info_values(values["class_names"], values["image_size"], source)
    try:
        return _ADAPTER.validate_python(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise UserError(f"{source}: {METADATA_ENTRY} has a wrong {where} ({error['msg']}); re-save the model with "
                        "catsdogs") from None


def read_archive_info(path: str | Path) -> ModelInfo | None:
    """The ``ModelInfo`` inside a ``.keras`` archive, without Keras; None when the file is not a zip or has no
    entry (a plain Keras file). A UserError when the entry is there but wrong."""
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_ENTRY not in archive.namelist():
                return None
            text = archive.read(METADATA_ENTRY)
    except (zipfile.BadZipFile, OSError):
        return None
    return info_from_json(text, path)


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
    info = info_from_json(path.read_bytes(), path)
    labels = path.parent / LABELS_FILE
    if labels.is_file() and labels.read_text().split("\n")[:len(info.class_names)] != info.class_names:
        raise UserError(f"{labels} does not list the class names of {path} in order; re-export the model")
    return info
