"""``open_classifier``: any model a user can hand the app -> a ``runtime.classifier.Classifier``.

The only place that asks what kind of file a model is. The Keras implementation (``runtime.keras_classifier``)
is imported only when a ``.keras`` file is opened, so a LiteRT or ONNX export never imports TensorFlow or
Keras, whichever command opens it (the tests look in ``sys.modules``); a SavedModel imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from catsdogs.config import EXPORT_SUFFIXES
from catsdogs.errors import UserError, parameter
from catsdogs.outputs import quiet_tensorflow
from catsdogs.runtime.catalog import choose_model
from catsdogs.runtime.classifier import Classifier
from catsdogs.runtime.engines import SAVED_MODEL_FILE, open_engine


def model_format(path: Path) -> str:
    """``keras``, ``litert``, ``onnx`` or ``saved_model``, by the path's suffix or the folder's contents."""
    if path.is_dir():
        if (path / SAVED_MODEL_FILE).is_file() or any(
                p.name.isdigit() and (p / SAVED_MODEL_FILE).is_file() for p in path.iterdir()):
            return "saved_model"
        raise UserError(f"{path} is a folder without a SavedModel ({SAVED_MODEL_FILE}, or numbered version folders "
                        "with one); pass a .keras file, a .tflite or .onnx export, or a SavedModel folder")
    return next((name for name, suffix in EXPORT_SUFFIXES.items() if path.suffix.lower() == suffix), "keras")


def open_classifier(model: str | Path | None, saved_models_dir: str | Path | None = None, unsafe: bool = False,
                    class_names: Sequence[str] | None = None, threads: int | None = None,
                    being_checked: bool = False) -> Classifier:
    """The model at ``model``, or without one the default in ``saved_models_dir`` (``runtime.catalog``:
    ``class_names`` narrows the choice), as a ``Classifier``; a UserError names any problem.

    ``unsafe`` lets a ``.keras`` file with Python code (a ``Lambda`` layer) load; ``threads`` caps an export's
    runtime threads. ``being_checked``: an export that its parity check opens before it is recorded as checked.
    """
    by_default = not model
    if model:
        path = Path(model)
    elif saved_models_dir is None:
        raise UserError(f"pass {parameter('model', 'PATH')}, or a saved-models folder to choose the default from")
    else:
        path = choose_model(saved_models_dir, class_names)
    if not path.exists():
        raise UserError(f"model {path} does not exist")
    kind = model_format(path)
    if kind == "keras":
        quiet_tensorflow()  # Keras imports TensorFlow where it is installed: without its start-up chatter
        from catsdogs.runtime.keras_classifier import KerasClassifier  # deferred: Keras, only for a .keras file

        return KerasClassifier.load(path, unsafe, by_default)
    return open_engine(path, kind, threads, being_checked)
