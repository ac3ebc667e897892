"""Models: the registry and its built-in entries, custom layers, introspection, saving and loading.

- ``registry``: ``create_model``, ``ModelSpec``, ``register_model``, ``list_models``, ``set_trainable``.
- ``small_cnn``, ``applications``, ``classic`` (LeNet-5, MLPs, a small ResNet), ``mini_xception``: the built-in entries
  (importing this package registers them).
- ``heads``, ``layers`` (``Preprocess``, ``RandomAffine``), ``unfreeze`` (``BlockMatcher``),
  ``weights`` (ImageNet files: cache, download, offline errors).
- ``introspection``: the nested base, feature-map layers, cuts through a classifier.
- ``saving`` (``.keras`` files with their metadata; safe loading) and ``catalog`` (the saved-models
  folder and the default model). Loading must know the custom layers, so it lives with them; training
  and inference both reach it from above.
"""

from catsdogs.models import applications, classic, mini_xception, small_cnn  # noqa: F401  (the built-in entries register themselves)
from catsdogs.models.applications import build_base, register_application
from catsdogs.models.introspection import find_base
from catsdogs.models.layers import Preprocess, RandomAffine
from catsdogs.models.registry import (
           ModelSpec,
           create_model,
           describe,
           get_spec,
           list_models,
           register_model,
           set_trainable,
)

__all__ = ["ModelSpec", "Preprocess", "RandomAffine", "build_base", "create_model", "describe", "find_base",
           "get_spec", "list_models", "register_application", "register_model", "set_trainable"]
