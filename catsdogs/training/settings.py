"""A run's settings resolved in layers: field defaults <- the model's recipe <- a config file <- the flags.

The recipe depends on the model (and ``recipe``) the upper layers choose, so the layers are merged
once to find them, then again with the recipe beneath. A run's ``config.json`` holds every setting,
so given back as a config file it reproduces the run's settings exactly, whatever the recipe says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from catsdogs.config import TrainConfig
from catsdogs.models.recipes import FROZEN_RECIPE
from catsdogs.models.registry import create_model, get_spec, model_options


def resolve_config(*layers: Mapping[str, Any], source: str = "the settings") -> TrainConfig:
    """``TrainConfig`` from ``layers`` (lowest first) over the chosen model's recipe.

    With ``cache_features`` and no recipe named, a model with a ``frozen`` recipe starts from it: the
    default recipes fine-tune the whole base, which stored features cannot serve.
    """
    chosen = TrainConfig.resolve(*layers, source=source)
    spec = get_spec(chosen.model)
    name = chosen.recipe
    if chosen.cache_features and not any("recipe" in layer for layer in layers) and FROZEN_RECIPE in spec.recipes:
        name = FROZEN_RECIPE
    config = TrainConfig.resolve({**spec.recipe(name), "recipe": name}, *layers, source=source)
    model_options(spec, config.model_options)  # the model's own options, checked before any work
    return config


def describe_recipe(config: TrainConfig) -> str:
    """One line: the recipe's settings as this run has them, and which the config file or flags changed."""
    recipe = get_spec(config.model).recipe(config.recipe)
    if not recipe:
        return f"recipe: none for {config.model} (the settings' defaults)"
    values = ", ".join(f"{key} {getattr(config, key)}" for key in recipe)
    changed = [key for key, value in recipe.items() if getattr(config, key) != value]
    return (f"recipe {config.recipe} for {config.model}: {values}"
            + (f" (changed by the config file or flags: {', '.join(changed)})" if changed else ""))


def model_from_config(config: TrainConfig, num_classes: int, unfreeze: str,
                      augment_in_model: bool = False) -> keras.Model:
    """``create_model`` with every model setting of ``config``: the one place a run's settings become a model."""
    return create_model(config.model, image_size=config.image_size, num_classes=num_classes, weights=config.weights,
                        unfreeze=unfreeze, dropout=config.dropout,
                        augmentation=config.augment_params if augment_in_model else None, seed=config.seed,
                        **config.model_options)
