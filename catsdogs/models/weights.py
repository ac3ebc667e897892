"""Where a base's ImageNet weights come from: a local file, Keras's cache, or a download into it.

Keras reads ``KERAS_HOME`` once, when it is imported, so asking it for ``weights="imagenet"`` would
ignore a ``KERAS_HOME`` set later and could find a file in another cache. Here the cache folder is
read at call time, a cached file is loaded by path, and a download goes into that folder. Offline,
or with ``CATSDOGS_OFFLINE=1``, a missing file is a one-line error that names the file, where it
comes from and where to put it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import keras

from catsdogs.errors import UserError, parameter

log = logging.getLogger(__name__)

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
OFFLINE_ENV = "CATSDOGS_OFFLINE"


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def offline() -> bool:
    """``CATSDOGS_OFFLINE=1`` promises no network: fail at once instead of trying a download."""
    return os.environ.get(OFFLINE_ENV, "").lower() not in ("", "0", "false", "no")


def missing_weights_message(model_name: str, file_name: str, url: str, reason: str) -> str:
    return (f"ImageNet weights for {model_name} are not cached and cannot be downloaded ({reason}): "
            f"put {file_name} (from {url}{file_name}) in {keras_cache_dir()}/ "
            f"or pass {parameter('weights', 'PATH')} (or {parameter('weights', 'none')} to train from scratch)")


def resolve_weights(model_name: str, weights: str | None, file_names: Sequence[str], url: str) -> str | None:
    """A weights file path (``imagenet``: Keras's cache, else a download) or None; fail early with a fix.

    ``file_names``: the checkpoint for the model's input size first, then checkpoints of the same base
    trained at other sizes. When the first is not cached but another is, that one is used (each loads
    at any input size; they differ only in the images they were trained on), and a line says so: a
    download is not worth failing over, and offline it is the only way.
    """
    if weights in (None, "none", "None"):
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"weights file {path} does not exist")
        return str(path)
    file_name = file_names[0]
    for candidate in file_names:
        cached = keras_cache_dir() / candidate
        if cached.is_file():
            if candidate != file_name:
                size = re.search(r"_(\d{2,3})(?:_tf)?_no_?top", candidate)
                trained = f"trained at {size.group(1)} px" if size else "of another training size"
                log.warning("%s: using the ImageNet weights %s (%s); %s is not cached", model_name, trained,
                            candidate, file_name)
            return str(cached)
    if offline():
        raise UserError(missing_weights_message(model_name, file_name, url, f"offline mode ({OFFLINE_ENV}) is set"))
    try:
        return keras.utils.get_file(file_name, origin=url + file_name, cache_dir=str(keras_cache_dir().parent),
                                    cache_subdir="models")
    except Exception as exc:  # Keras raises a bare Exception("URL fetch failure ...") when offline
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = "no network" if "URL fetch failure" in first_line else f"download failed: {first_line[:100]}"
        raise UserError(missing_weights_message(model_name, file_name, url, reason)) from None
