"""Which base layers train: ``none``, ``all``, ``blockK``, a fraction, or a layer name.

A base's blocks are found by its registry entry's ``BlockMatcher`` (VGG: ``block5_conv1`` is in
block 5; MobileNet: ``conv_pw_13`` is in block 13). BatchNormalization layers stay frozen in a
partly or fully unfrozen base, and the classifier calls its base with ``training=False``, so their
statistics never move while fine-tuning (the Keras transfer-learning guide's advice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras

from catsdogs.errors import UserError, parameter
from catsdogs.models.introspection import find_base

_BLOCK_CHOICE = re.compile(r"block(\d+)")


@dataclass(frozen=True)
class BlockMatcher:
    """Which block a base layer belongs to, from its name: ``pattern``'s first group is the block number."""

    pattern: str

    def block_of(self, layer_name: str) -> int | None:
        match = re.match(self.pattern, layer_name)
        return int(match.group(1)) if match else None


def unfreeze_layers(model: keras.Model, unfreeze: str = "none", blocks: BlockMatcher | None = None) -> list[str]:
    """Freeze the base, then unfreeze its top part; return the names of the base layers left trainable.

    ``unfreeze``: ``none`` (train the head only), ``all``, ``blockK`` (blocks K and above, by
    ``blocks``), a fraction such as ``0.25`` (the top quarter of the base's layers with weights,
    BatchNormalization not counted), or a layer name (that layer and every layer above it). The head
    is always trainable. A model without a base (trained from scratch) accepts only none and all.
    """
    chosen = chosen_layers(model, unfreeze, blocks)
    model.trainable = True
    base = find_base(model)
    if base is None:
        return []
    base.trainable = True  # set per layer below
    for layer in base.layers:
        layer.trainable = layer.name in chosen and not isinstance(layer, keras.layers.BatchNormalization)
    if not any(layer.trainable for layer in base.layers):
        base.trainable = False
    return [layer.name for layer in base.layers if layer.trainable and layer.weights]


def chosen_layers(model: keras.Model, unfreeze: str = "none", blocks: BlockMatcher | None = None) -> set[str]:
    """The base layers ``unfreeze`` names, or its one-line error, without changing the model.

    Training checks every phase's choice with it before the first phase trains: a bad choice for the
    fine-tuning phase must not wait for the warm-up to finish.
    """
    base = find_base(model)
    unfreeze = str(unfreeze).strip()
    if base is None:
        if unfreeze not in ("none", "all"):
            raise UserError(f"{parameter('unfreeze')} applies to pretrained bases; {model.name} trains all its layers")
        return set()
    # The units that unfreezing counts: layers with weights, BatchNormalization aside (it stays frozen).
    layers = [layer for layer in base.layers
              if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    return _layers_to_unfreeze(base, layers, unfreeze.strip(), blocks)


def _layers_to_unfreeze(base: keras.Model, layers: list[keras.layers.Layer], unfreeze: str,
                        blocks: BlockMatcher | None) -> set[str]:
    names = [layer.name for layer in layers]
    if unfreeze == "none":
        return set()
    if unfreeze == "all":
        return set(names)
    match = _BLOCK_CHOICE.fullmatch(unfreeze)
    if match:
        numbers = {n: blocks.block_of(n) for n in names} if blocks else {}
        present = sorted({b for b in numbers.values() if b is not None})
        if int(match.group(1)) not in present:
            raise UserError(f"{base.name} has no {unfreeze}; choose from "
                            f"{', '.join(f'block{b}' for b in reversed(present)) or 'a fraction or a layer name'}")
        first = int(match.group(1))
        return {n for n, block in numbers.items() if block is not None and block >= first}
    try:
        fraction = float(unfreeze)
    except ValueError:
        fraction = None
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise UserError(f"{parameter('unfreeze', unfreeze)}: a fraction must be in (0, 1]")
        count = max(1, round(fraction * len(names)))
        return set(names[-count:])
    all_names = [layer.name for layer in base.layers]
    if unfreeze not in all_names:
        raise UserError(f"{base.name} has no layer {unfreeze!r}; use none, all, a fraction, a block name, "
                        f"or a layer name such as {names[-1]!r}")
    start = all_names.index(unfreeze)
    return {n for n in all_names[start:] if n in names}
