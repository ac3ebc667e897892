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


def photo_like(path: Path, seed: int) -> Path:
    """A 320x240 drawing at ``path``, shapes in shades of its class's colour: its hash moves as a photo's does under
    the planted changes (2-8 bits), where a hash of pure noise is noise itself."""
    from PIL import Image, ImageDraw

    with Image.open(path) as image:
        colour = np.asarray(image.convert("RGB"), np.float32).mean((0, 1))
    rng = np.random.default_rng(seed)

    def shade() -> tuple[int, ...]:
        return tuple(int(v) for v in np.clip(colour + rng.uniform(-50, 50, 3), 0, 255))

    drawing = Image.new("RGB", (320, 240), shade())
    draw = ImageDraw.Draw(drawing)
    for _ in range(12):
        x, y = int(rng.integers(0, 280)), int(rng.integers(0, 200))
        draw.ellipse((x, y, x + int(rng.integers(30, 120)), y + int(rng.integers(30, 120))), fill=shade())
    drawing.save(path, quality=95)
    return path


def plant_near_copy(source: Path, target: Path) -> Path:
    """``source`` made photo-like, then cropped by 5 %, resized to 90 % and re-encoded as JPEG at quality 60 (the
    issue's planted leak) as ``target``."""
    from PIL import Image

    with Image.open(photo_like(source, 0)) as image:
        width, height = image.size
        dx, dy = round(0.025 * width), round(0.025 * height)
        copy = image.convert("RGB").crop((dx, dy, width - dx, height - dy))
        copy.resize((round(0.9 * copy.width), round(0.9 * copy.height))).save(target, quality=60)
    return target
