"""catsdogs: small-data image classification with Keras 3.

The public Python API, what notebooks and users call (each name is imported on first use, so
``import catsdogs`` stays instant and TensorFlow loads only when a name that needs it is touched)::

    import catsdogs
    config = catsdogs.resolve_config({"model": "mobilenet", "alpha": 0.25})   # the model's recipe beneath
    run = catsdogs.train_model(config)
    classifier = catsdogs.open_classifier(run.saved_model_path)   # any model: .keras, .tflite, .onnx, SavedModel
    report = catsdogs.predict_files(classifier, ["cat.jpg", "dog.jpg"], tta="flip")  # files; expand folders first
    catsdogs.save_gradcam(classifier.keras_model(), classifier.info, ["cat.jpg"], "heatmaps/")
    export = catsdogs.export_model(run.saved_model_path, "litert")     # checked against the Keras model
    report = catsdogs.predict_files(catsdogs.open_classifier(export.model_path), ["cat.jpg"])  # no TensorFlow

``train_model`` and ``evaluate_folder`` are the library's ``train`` and ``evaluate``: the plain names
belong to the command modules (``python -m catsdogs.train``), and Python binds a package attribute to
its submodule whenever that submodule is imported, so one name cannot be both.

The layout (see ARCHITECTURE.md): commands at the top (``train``, ``predict``, ``evaluate``,
``visualize``, ``saved``, ``export``, ``serve``, ``experiments``, ``audit``) and what they share (``cli``); the
library in sub-packages named for what they hold (``server``, ``studies``, ``audits``, ``explanations``,
``inference``, ``training``, ``exports``, ``runtime``, ``models``, ``data``); and below them ``modelcard``,
``plots``, ``affine``, ``affine_ops``, ``metrics``, ``metadata``, ``config``, ``outputs`` and ``errors``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> (module, attribute in it)
_API = {
    "TrainConfig": ("catsdogs.config", "TrainConfig"),
    "AugmentParams": ("catsdogs.config", "AugmentParams"),
    "UserError": ("catsdogs.errors", "UserError"),
    "read_splits": ("catsdogs.data.files", "read_splits"),
    "make_dataset": ("catsdogs.data.pipeline", "make_dataset"),
    "load_image": ("catsdogs.data.decode", "load_image"),
    "create_model": ("catsdogs.models.registry", "create_model"),
    "list_models": ("catsdogs.models.registry", "list_models"),
    "register_model": ("catsdogs.models.registry", "register_model"),
    "save_model": ("catsdogs.models.saving", "save_model"),
    "load_model": ("catsdogs.models.saving", "load_model"),
    "ModelInfo": ("catsdogs.metadata", "ModelInfo"),
    "train_model": ("catsdogs.training.trainer", "train"),
    "resolve_config": ("catsdogs.training.settings", "resolve_config"),
    "find_learning_rate": ("catsdogs.training.lr_finder", "find_learning_rate"),
    "list_saved_models": ("catsdogs.runtime.catalog", "list_saved_models"),
    "open_classifier": ("catsdogs.runtime.opening", "open_classifier"),
    "predict_files": ("catsdogs.runtime.prediction", "predict_files"),
    "evaluate_folder": ("catsdogs.inference.evaluation", "evaluate_folder"),
    "compute_metrics": ("catsdogs.metrics", "compute_metrics"),
    "grad_cam": ("catsdogs.explanations.gradcam", "grad_cam"),
    "save_gradcam": ("catsdogs.explanations.gradcam", "save_gradcam"),
    "save_activation_grids": ("catsdogs.explanations.activations", "save_activation_grids"),
    "save_filter_grid": ("catsdogs.explanations.filters", "save_filter_grid"),
    "export_model": ("catsdogs.exports.exporter", "export_model"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562); later look-ups find it in the namespace."""
    if name not in _API:
        raise AttributeError(f"module 'catsdogs' has no attribute {name!r}")
    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
