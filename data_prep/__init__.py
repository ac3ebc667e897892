"""data_prep: turn a raw Dogs-vs-Cats source into checked ``train`` / ``validation`` / ``test`` folders.

The one entry point that the CLI (``python -m data_prep``, ``catsdogs-prep``), notebooks and tests share is
:func:`prepare_split`; :func:`make_synthetic_source` writes a small learnable stand-in for offline work.
Nothing here imports TensorFlow or Keras, so the command starts instantly (the keras.datasets sources
import Keras when asked for).

Modules: ``sources`` (detect a source's layout, list its candidate images), ``checking`` (decode fully,
re-encode odd formats), ``output`` (staging folder, atomic publish, ``--force`` rules, manifest and summary),
``split`` (order, dedupe, select, write), ``changes`` (``--exclude`` / ``--relabel``: acting on an audit),
``download`` (the Microsoft PetImages archive, resumable),
``synthetic`` (generated stand-in data), ``datasets`` (scikit-learn's digits, keras.datasets' MNIST,
Fashion-MNIST and CIFAR-10 as class folders), ``cli`` (flags -> :func:`prepare_split`).
"""

from catsdogs import __version__
from data_prep.datasets import DATASETS, make_dataset_source
from data_prep.split import DEFAULT_SEED, SPLIT_MODES, PrepSummary, SplitCounts, SplitFractions, prepare_split
from data_prep.synthetic import make_synthetic_source

__all__ = [
    "DATASETS",
    "DEFAULT_SEED",
    "SPLIT_MODES",
    "PrepSummary",
    "SplitCounts",
    "SplitFractions",
    "__version__",
    "make_dataset_source",
    "make_synthetic_source",
    "prepare_split",
]
