"""Generated images and split folders, and weight files in Keras's legacy layout: nothing read from disk or network."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_image(path: Path, array: np.ndarray, format: str = "JPEG") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path, format=format, quality=95)
    return path


def make_split_folder(root: Path, per_class: dict[str, int], size: int = 40, seed: int = 0,
                      classes: tuple[str, ...] = ("cats", "dogs")) -> Path:
    """A split folder ``root/<split>/<class>/*.jpg`` whose classes differ in colour (easy to tell apart)."""
    rng = np.random.default_rng(seed)
    colours = {name: rng.integers(0, 256, 3) for name in classes}
    colours.update({"cats": np.array([220, 120, 40]), "dogs": np.array([40, 90, 220])})
    for split, count in per_class.items():
        for name in classes:
            for i in range(count):
                noise = rng.normal(0, 25, (size + i % 7, size, 3))
                write_image(root / split / name / f"{name}.{i}.jpg", np.clip(colours[name] + noise, 0, 255))
    return root


def write_legacy_h5_weights(model, path: Path) -> Path:
    """Write ``model``'s weights in the legacy Keras h5 layout that keras.applications files use."""
    import h5py

    layers = [layer for layer in model.layers if layer.weights]
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.15.0"
        for layer in layers:
            group = handle.create_group(layer.name)
            names = [f"{layer.name}/{variable.name}:0".encode() for variable in layer.weights]
            group.attrs["weight_names"] = names
            for name, variable in zip(names, layer.weights):
                group.create_dataset(name.decode(), data=np.asarray(variable.numpy()))
    return path
