"""Models: the registry and its built-in entries, custom layers, introspection, saving and loading.

- ``registry``: ``create_model``, ``ModelSpec``, ``register_model``, ``list_models``, ``set_trainable``.
- ``small_cnn``: the report's CNN (a built-in entry; importing this package registers them all).
- ``applications``: the ``keras.applications`` bases (VGG, MobileNet, ResNet, ...) with a head.
- ``classic``: LeNet-5, the MLPs and a small ResNet, from scratch.
- ``mini_xception``: the book's second-edition network and its strided-stem variant.
- ``recipes``: each family's training settings, as data.
- ``heads``: the heads and the output layer.
- ``layers``: ``Preprocess`` and ``RandomAffine``, the custom layers every saved model may hold.
- ``unfreeze``: ``BlockMatcher`` and which base layers train.
- ``weights``: ImageNet files: the cache, downloads, another training size as fallback, offline errors.
- ``introspection``: the nested base, feature-map layers, cuts through a classifier.
- ``calibration``: logits from the output layer's weights; temperature scaling fitted, stored and applied.
- ``saving``: ``.keras`` files with their metadata, safe loading. Loading must know the custom layers, so it
  lives with them; training and inference both reach it from above.
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
