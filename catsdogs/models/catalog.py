"""The saved-models folder: which models are there, and which one a command uses when none is named.

``train`` collects every trained model in ``saved_models/`` (``--saved-models-dir``); ``predict``,
``evaluate`` and ``visualize`` take ``--model PATH`` or fall back on ``choose_model``.
"""

from __future__ import annotations

from pathlib import Path

import keras

from catsdogs.errors import UserError
from catsdogs.models.saving import ModelInfo, load_model
from catsdogs.outputs import TEMP_PREFIX


def saved_model_files(directory: str | Path) -> list[Path]:
    """The finished ``.keras`` files in ``directory`` (one being written has a hidden temporary name)."""
    return [p for p in Path(directory).glob("*.keras") if p.is_file() and not p.name.startswith(TEMP_PREFIX)]


def find_newest_model(directory: str | Path) -> Path:
    """The model published last in ``directory``: newest modification time, then the later name.

    ``train`` never replaces a saved model (a second ``vgg19`` is ``vgg19-2.keras``), so the newest file
    is the last one trained; the name breaks ties between files written within one clock tick.
    """
    directory = Path(directory)
    models = saved_model_files(directory)
    if not models:
        raise UserError(f"no .keras model in {directory}/; train one with `python -m catsdogs.train` "
                        "or pass --model PATH")
    return max(models, key=lambda p: (p.stat().st_mtime_ns, p.name))


def load_chosen_model(model: str | Path | None, saved_models_dir: str | Path,
                      unsafe: bool = False) -> tuple[keras.Model, ModelInfo, Path]:
    """The model at ``model``, or the default one in ``saved_models_dir``; loaded in safe mode unless ``unsafe``."""
    path = Path(model) if model else find_newest_model(saved_models_dir)
    loaded, info = load_model(path, unsafe=unsafe)
    return loaded, info, path
