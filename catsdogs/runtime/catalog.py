"""The saved-models folder: which models are there, and which one a command uses when none is named.

``train`` publishes every trained model in ``saved_models/`` (``--saved-models-dir``) under a name no
other model has. ``predict``, ``evaluate`` and ``visualize`` take ``--model PATH`` or the default:

    the best validation accuracy among the models for the same classes (``evaluate`` knows the
    classes from its data; ``predict`` and ``visualize`` consider every model); models without a
    recorded validation accuracy come after those with one; ties go to the one published last. A model whose
    recorded scores are not finite (a diverged run) is listed last and never the default.

Listing reads only each archive's metadata (``catsdogs.json``), never the weights, and imports no Keras:
``runtime.classifier.open_classifier`` chooses the default here before it knows whether Keras is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catsdogs.errors import UserError, parameter
from catsdogs.metadata import ModelInfo, read_archive_info
from catsdogs.outputs import TEMP_PREFIX


@dataclass(frozen=True)
class SavedModel:
    """A model file and what its metadata says about it."""

    path: Path
    info: ModelInfo | None  # None: a Keras file without catsdogs metadata
    modified_ns: int

    @property
    def val_accuracy(self) -> float | None:
        return self.info.val_accuracy if self.info else None

    @property
    def test_accuracy(self) -> float | None:
        return self.info.test_accuracy if self.info else None

    @property
    def diverged(self) -> bool:
        """Its recorded scores are not finite numbers: a run that diverged, which earlier releases published."""
        test = self.info.metrics.test if self.info else None
        scores = [self.val_accuracy, *((test.accuracy, test.loss) if test else ())]
        return any(score is not None and not math.isfinite(score) for score in scores)

    def rank(self) -> tuple[bool, bool, float, int, str]:
        """The default model has the highest rank: finite scores, a validation accuracy, the best one, the latest,
        the name."""
        return (not self.diverged, self.val_accuracy is not None, self.val_accuracy or 0.0, self.modified_ns,
                self.path.name)

    def record(self, default: bool = False) -> dict[str, Any]:
        """What ``python -m catsdogs.saved`` lists about it (JSON-ready)."""
        info = self.info
        return {"default": default, "file": self.path.name, "path": str(self.path),
                "model": (info.model_name if info else "") or "", "classes": list(info.class_names) if info else [],
                "image_size": info.image_size if info else None,
                "data_fingerprint": info.data_fingerprint if info else None,
                "val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
                "trained": info.extra.trained if info else None}

    def describe(self) -> str:
        """``saved_models/x.keras (mobilenet, 224 px, cats/dogs, validation 0.966, test 0.958)``."""
        if self.info is None:
            return f"{self.path} (no catsdogs metadata)"
        parts = [self.info.model_name or "model", f"{self.info.image_size} px", "/".join(self.info.class_names)]
        parts += [f"{name} {value:.3f}" for name, value in (("validation", self.val_accuracy),
                                                            ("test", self.test_accuracy)) if value is not None]
        return f"{self.path} ({', '.join(parts)})"


def saved_model_files(directory: str | Path) -> list[Path]:
    """The finished ``.keras`` files in ``directory`` (one being written has a hidden temporary name)."""
    return [p for p in Path(directory).glob("*.keras") if p.is_file() and not p.name.startswith(TEMP_PREFIX)]


def read_saved_model(path: Path) -> SavedModel:
    try:
        info = read_archive_info(path)
    except UserError:  # a plain Keras file, or one whose metadata does not read: listed, never the default
        info = None
    return SavedModel(path, info, path.stat().st_mtime_ns)


def list_saved_models(directory: str | Path) -> list[SavedModel]:
    """Every model in ``directory``, the default first, then by rank."""
    return sorted((read_saved_model(path) for path in saved_model_files(directory)), key=SavedModel.rank,
                  reverse=True)


def choose_model(directory: str | Path, class_names: Sequence[str] | None = None) -> Path:
    """The default model in ``directory`` (see the module's docstring); ``class_names`` narrows the choice."""
    directory = Path(directory)
    models = [m for m in list_saved_models(directory) if m.info is not None and not m.diverged and (
        class_names is None or list(m.info.class_names) == list(class_names))]
    if not models:
        for_classes = f" for the classes {list(class_names)}" if class_names is not None else ""
        raise UserError(f"no .keras model{for_classes} in {directory}/; train one with `python -m catsdogs.train` "
                        f"or pass {parameter('model', 'PATH')}")
    return models[0].path


def model_line(path: Path, info: ModelInfo, by_default: bool) -> str:
    """``model: PATH (name, size, classes, accuracies)[, the default]``: the first line of every reading command's
    output (on stderr, since stdout may be CSV or JSON), so that each result says which model made it."""
    return f"model: {SavedModel(path, info, path.stat().st_mtime_ns).describe()}{', the default' if by_default else ''}"
