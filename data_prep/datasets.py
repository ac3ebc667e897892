"""Ready-made N-class sets written as class folders, so they go through the same checks and split as any source.

- ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, about 180 per class, 17
  grey levels), upscaled to 32 px: a real 10-class set that needs no download (``pip install
  'catsdogs[datasets]'``). 32 px is LeNet-5's input size.
- ``mnist``, ``fashion_mnist`` (28 px grey), ``cifar10`` (32 px colour): ``keras.datasets``, which downloads
  each once into ``~/.keras/datasets`` (``KERAS_HOME``); offline, a one-line message says how to provide
  the file. Their own train and test parts are pooled and split like any folder.

Images are written as PNGs named ``<class>/<name>-<index>.png`` (the index in the dataset's order, so
``--split by-id`` is reproducible); data_prep then re-encodes them as RGB JPEGs like every non-JPEG.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from catsdogs.errors import UserError, parameter, require_optional

DIGIT_NAMES = tuple(str(digit) for digit in range(10))
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "digits": DIGIT_NAMES,
    "mnist": DIGIT_NAMES,
    "fashion_mnist": ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "ankle_boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
DATASETS = tuple(CLASS_NAMES)
DIGITS_SIZE = 32  # px: LeNet-5's input, and the smallest of the classic networks' minimum sizes
DIGITS_LEVELS = 16  # scikit-learn's digits count ink in 0..16
DATASETS_EXTRA = "pip install 'catsdogs[datasets]'"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 ``(1797, 32, 32)`` images (white ink on black, like MNIST) and labels."""
    sklearn_datasets = require_optional("sklearn.datasets", "scikit-learn", parameter("source", "digits"),
                                        DATASETS_EXTRA)
    digits = sklearn_datasets.load_digits()
    small = np.round(digits.images * (255 / DIGITS_LEVELS)).astype(np.uint8)
    # Bicubic keeps the strokes' shape through a 4x upscale better than bilinear's soft blocks.
    images = np.stack([np.asarray(Image.fromarray(image).resize((DIGITS_SIZE, DIGITS_SIZE), Image.Resampling.BICUBIC))
                       for image in small])
    return images, digits.target.astype(np.int64)


def load_keras_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A ``keras.datasets`` set, its train and test parts pooled; a UserError when it cannot be downloaded."""
    # Imported when asked for: keras brings TensorFlow, which the other sources need not wait for.
    module = require_optional(f"keras.datasets.{name}", "Keras", parameter("source", name), "pip install -e .")
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as exc:  # noqa: BLE001 - any failure of the download (URL, SSL, HTTP, hash) means the same
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot get {name} through keras.datasets ({reason}): it is downloaded once into "
                        f"~/.keras/datasets (or $KERAS_HOME/datasets); connect to the internet or copy the file "
                        f"there, or use {parameter('source', 'digits')}, which needs no download") from None
    return np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test]).reshape(-1).astype(np.int64)


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``name``'s images (uint8, ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB) and integer labels."""
    if name not in CLASS_NAMES:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return load_digits() if name == "digits" else load_keras_dataset(name)


def write_class_folders(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], directory: str | Path,
                        prefix: str, progress: bool = False) -> Path:
    """Each image as ``directory/<class>/<prefix>-<index>.png``; ``directory`` must be new or empty."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"{directory} is not empty; give a new or empty folder")
    if len(images) != len(labels) or (len(labels) and not 0 <= labels.min() <= labels.max() < len(class_names)):
        raise ValueError(f"{len(images)} images, {len(labels)} labels in 0..{len(class_names) - 1} expected")
    for name in class_names:
        (directory / name).mkdir(parents=True, exist_ok=True)
    width = len(str(len(images) - 1))
    for index, (image, label) in enumerate(tqdm(zip(images, labels), total=len(images), unit="img",
                                                desc="writing", file=sys.stderr, disable=None if progress else True,
                                                leave=False)):
        Image.fromarray(image).save(directory / class_names[label] / f"{prefix}-{index:0{width}d}.png")
    return directory


def make_dataset_source(name: str, directory: str | Path, progress: bool = False) -> Path:
    """``name`` written as class folders in ``directory`` (new or empty): a source for ``prepare_split``."""
    images, labels = load_dataset(name)
    return write_class_folders(images, labels, CLASS_NAMES[name], directory, name, progress)
