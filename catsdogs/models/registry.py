"""The model registry: a model is a name; ``create_model(name, ...)`` builds it.

Every classifier has the same shape, so that prediction, Grad-CAM and feature caching can rely on it:

    image (raw RGB, 0-255) -> [RandomAffine, training only] -> Preprocess(mode) -> features -> head -> output

A ``ModelSpec`` says how: its preprocessing mode, smallest input, a ``features`` builder (the
report's convolutions for ``small_cnn``, a nested ``keras.applications`` base for the others), a
``head`` builder (``catsdogs.models.heads``), a ``BlockMatcher`` for ``--unfreeze blockK``, its
training recipes (``catsdogs.models.recipes``: the settings ``train`` starts from for this model) and
its own options (``ModelOptions``, declared in the model's file: a width multiplier, hidden sizes, a
depth...), which ``create_model(name, **options)`` validates and the ``train`` flags are generated from.
The built-in entries register themselves in ``small_cnn`` and ``applications``; ``register_model``
adds more. Each base's ImageNet preprocessing is a layer inside the model (no ``Lambda``, so models
load in Keras safe mode), so every saved model takes raw 0-255 RGB.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
from keras import KerasTensor
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from catsdogs.config import DEFAULT_IMAGE_SIZE, LEGACY_MODEL_OPTIONS, AugmentParams
from catsdogs.errors import UserError, parameter
from catsdogs.models.heads import Head, output_layer
from catsdogs.models.layers import Preprocess, RandomAffine
from catsdogs.models.recipes import DEFAULT_RECIPE, Recipe
from catsdogs.models.unfreeze import BlockMatcher, chosen_layers, unfreeze_layers


class ModelOptions(BaseModel):
    """A model's own options, declared in its file as a subclass: each field's type, default, bounds
    (``Field(gt=...)``) and help (``description``). This base declares none: a model without options."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass(frozen=True)
class BuildContext:
    """What every ``features`` builder may use besides the images and its own options."""

    image_size: int
    weights: str | None


@dataclass(frozen=True)
class PretrainedBase:
    """A ``keras.applications`` base: its constructor and where its ImageNet no-top weights come from."""

    constructor: str  # the keras.applications attribute, e.g. "VGG19"
    weights_file: Callable[[int, float], str]  # (image size, alpha) -> the file name Keras caches
    weights_url: str
    trained_sizes: tuple[int, ...] = ()  # sizes with their own checkpoint; any of them loads at any input size

    def weights_files(self, image_size: int, alpha: float) -> list[str]:
        """The file for this size first, then those trained at the other sizes, nearest first."""
        files = [self.weights_file(image_size, alpha)]
        for size in sorted(self.trained_sizes, key=lambda s: (abs(s - image_size), -s)):
            if self.weights_file(size, alpha) not in files:
                files.append(self.weights_file(size, alpha))
        return files


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name."""

    name: str
    description: str
    preprocessing: str  # a catsdogs.models.layers.Preprocess mode
    min_size: int
    # (spec, images, context, options) -> features
    features: Callable[[ModelSpec, KerasTensor, BuildContext, Any], KerasTensor]
    head: Head
    blocks: BlockMatcher | None = None  # for --unfreeze blockK
    pretrained: PretrainedBase | None = None
    recipes: Mapping[str, Recipe] = field(default_factory=dict)  # name -> settings (catsdogs.models.recipes)
    options: type[ModelOptions] = ModelOptions  # its own options; the base: none

    @property
    def is_pretrained_base(self) -> bool:
        return self.pretrained is not None

    def recipe(self, name: str = DEFAULT_RECIPE) -> dict[str, Any]:
        """The settings of recipe ``name`` (none for a model without recipes); unknown names are a UserError."""
        if not self.recipes:
            if name != DEFAULT_RECIPE:
                raise UserError(f"{self.name} has no recipes; leave out {parameter('recipe')}")
            return {}
        if name not in self.recipes:
            raise UserError(f"unknown recipe {name!r} for {self.name}; choose {', '.join(self.recipes)}")
        return dict(self.recipes[name])


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def describe(name: str) -> str:
    spec = get_spec(name)
    recipes = f", recipes: {', '.join(spec.recipes)}" if spec.recipes else ""
    options = f", options: {', '.join(spec.options.model_fields)}" if spec.options.model_fields else ""
    return (f"{spec.name:16s} {spec.description} (min {spec.min_size} px, preprocessing: {spec.preprocessing}"
            f"{recipes}{options})")


@dataclass(frozen=True)
class OptionField:
    """One option name across the models that declare it: its type and help (from the first), and who takes it."""

    name: str
    annotation: Any
    info: FieldInfo
    models: tuple[str, ...]


def option_fields() -> dict[str, OptionField]:
    """Every model option by name, its models in the order they registered: what the ``train`` flags are
    generated from."""
    found: dict[str, OptionField] = {}
    for model, spec in _REGISTRY.items():
        for name, info in spec.options.model_fields.items():
            known = found.get(name)
            found[name] = OptionField(name, known.annotation, known.info, (*known.models, model)) if known else (
                OptionField(name, info.annotation, info, (model,)))
    return found


def model_options(spec: ModelSpec, values: Mapping[str, Any]) -> ModelOptions:
    """``values`` as ``spec``'s options, validated; a one-line UserError names the option and the fix.

    An option of before at the value that meant "the model's own" (``config.LEGACY_MODEL_OPTIONS``: alpha 1.0,
    units [], ...) is left out, so a run's old ``config.json`` builds the model it built."""
    given = {key: value for key, value in values.items()
             if not (key in LEGACY_MODEL_OPTIONS and value == LEGACY_MODEL_OPTIONS[key])}
    try:
        return spec.options.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "options"
        if error["type"] == "extra_forbidden":
            takers = option_fields().get(name)
            if takers is None:
                raise UserError(f"{parameter(name)} is no model's option; the options are "
                                f"{', '.join(option_fields()) or 'none'}") from None
            raise UserError(f"{parameter(name)} applies to {', '.join(takers.models)} only, not {spec.name}") from None
        raise UserError(f"{parameter(name)} of {spec.name}: {error['msg'].lower()}, not {error['input']!r}") from None


def create_model(
    name: str,
    *,
    image_size: int = DEFAULT_IMAGE_SIZE,
    num_classes: int = 2,
    weights: str | None = "imagenet",
    unfreeze: str = "none",
    dropout: float = 0.5,
    augmentation: AugmentParams | None = None,
    seed: int | None = None,
    **options: Any,
) -> keras.Model:
    """Build a registered classifier for square RGB images in 0-255.

    ``weights``: "imagenet" (Keras's cache, honouring KERAS_HOME), a path to a weights file, or
    None; ignored by models trained from scratch. ``unfreeze``: see ``set_trainable``.
    ``augmentation`` puts a ``RandomAffine`` layer inside the model (for augmenting on the accelerator).
    ``options`` are the model's own (``ModelSpec.options``: ``alpha`` for the MobileNets and mini_xception,
    ``units`` for the MLPs, ...); a model refuses another's.
    """
    spec = get_spec(name)
    if image_size < spec.min_size:
        raise UserError(f"{name} needs images of at least {spec.min_size} px, got "
                        f"{parameter('image_size', image_size)}")
    if num_classes < 2:
        raise UserError(f"a classifier needs at least 2 classes, got {num_classes}")
    own = model_options(spec, options)

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    if augmentation is not None and not augmentation.is_identity:
        x = RandomAffine(augmentation, seed=seed, name="augment")(x)
    x = Preprocess(spec.preprocessing, name="preprocess")(x)
    x = spec.features(spec, x, BuildContext(image_size, weights), own)
    x = spec.head(x, dropout)
    model = keras.Model(inputs, output_layer(num_classes)(x), name=name)
    set_trainable(model, unfreeze)
    return model


def set_trainable(model: keras.Model, unfreeze: str = "none") -> list[str]:
    """``unfreeze_layers`` with the blocks of the model's registry entry (found by the model's name)."""
    spec = _REGISTRY.get(model.name)
    return unfreeze_layers(model, unfreeze, spec.blocks if spec else None)


def check_trainable(model: keras.Model, unfreeze: str) -> None:
    """``set_trainable``'s one-line error for a bad ``unfreeze``, if any, leaving the model as it is."""
    spec = _REGISTRY.get(model.name)
    chosen_layers(model, unfreeze, spec.blocks if spec else None)

