"""A small, learnable, clearly synthetic stand-in for Dogs vs Cats, for offline demos and tests.

Written as a Kaggle-style flat source (``cat.0.jpg`` ... ``dog.N.jpg``), so it goes through the same
detection, checking and splitting as real data. The two classes differ in colour AND shape:
- ``cats``: one warm-coloured (red/orange/yellow) filled disc or ellipse;
- ``dogs``: one cool-coloured (cyan/blue) filled square or triangle;
each at a random position, size (30-60 % of the short side) and angle, on a noisy background of random
low-saturation colour with a gradient and a few thin lines, the same for both classes. Neither the image
size, the background nor the file format tells the classes apart, so a model trained on shuffled labels
stays at chance, while a small CNN learns the real labels in a few epochs at 64 px, through rotations,
shifts, zooms and flips (all of which keep colour and shape). Every JPEG carries a comment saying it is
synthetic.
"""

from __future__ import annotations

import colorsys
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from catsdogs.errors import UserError, parameter

SIZE_RANGE = (96, 160)  # width and height drawn independently per image, like real photos' varied shapes
OBJECT_FRACTION = (0.3, 0.6)  # the object's extent as a fraction of the image's short side
WARM_HUES = (-15.0, 50.0)  # degrees: red through yellow (cats)
COOL_HUES = (175.0, 255.0)  # degrees: cyan through blue (dogs)
JPEG_COMMENT = b"catsdogs synthetic stand-in (data_prep.synthetic), not a photograph"
_PREFIXES = ("cat", "dog")


def _hsv(hue_degrees: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue_degrees % 360.0) / 360.0, saturation, value)) * 255.0


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Low-saturation colour of any hue, a linear gradient and thin lines: identical odds for both classes."""
    base = _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.25), rng.uniform(0.25, 0.85))
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)) / max(width, height)
    pixels = base[None, None, :] + rng.uniform(-40, 40) * ramp[..., None]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 5))):
        colour = tuple(int(v) for v in _hsv(rng.uniform(0, 360), rng.uniform(0, 0.2), rng.uniform(0.1, 0.95)))
        points = [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(2)]
        draw.line(points, fill=colour, width=int(rng.integers(1, 4)))
    return image


def _object_outline(rng: np.random.Generator, is_dog: bool, centre: tuple[float, float],
                    radius: float) -> list[tuple[float, float]]:
    """Cats: a disc or ellipse; dogs: a square or triangle; at a random angle, within ``radius`` of ``centre``."""
    rotation = rng.uniform(0, 2 * math.pi)
    if is_dog:
        corners = 4 if rng.random() < 0.5 else 3
        angles = [rotation + 2 * math.pi * k / corners for k in range(corners)]
        radii = [radius] * corners
    else:
        squash = rng.uniform(0.65, 1.0)  # 1.0 is a disc
        angles = [2 * math.pi * k / 72 for k in range(72)]
        radii = [radius * squash / math.hypot(squash * math.cos(a), math.sin(a)) for a in angles]
        angles = [a + rotation for a in angles]
    return [(centre[0] + r * math.cos(a), centre[1] + r * math.sin(a)) for a, r in zip(angles, radii)]


def draw_synthetic_image(rng: np.random.Generator, is_dog: bool, size: tuple[int, int]) -> Image.Image:
    """One synthetic RGB image of the given class and (width, height)."""
    width, height = size
    image = _background(rng, width, height)
    radius = rng.uniform(*OBJECT_FRACTION) * min(width, height) / 2
    centre = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
    hue = rng.uniform(*(COOL_HUES if is_dog else WARM_HUES))
    colour = tuple(int(v) for v in _hsv(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)))
    ImageDraw.Draw(image).polygon(_object_outline(rng, is_dog, centre, radius), fill=colour)
    noise = rng.normal(0.0, rng.uniform(4.0, 14.0), (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, np.float64) + noise, 0, 255).astype(np.uint8), "RGB")


def _image_size(rng: np.random.Generator, image_size: int | tuple[int, int] | None) -> tuple[int, int]:
    if image_size is None:
        low, high = SIZE_RANGE
        return int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))
    if isinstance(image_size, int):
        return image_size, image_size
    return int(image_size[0]), int(image_size[1])


def make_synthetic_source(directory: str | Path, n_per_class: int,
                          image_size: int | tuple[int, int] | None = None, seed: int = 0) -> Path:
    """Write ``cat.0.jpg`` ... ``cat.{n-1}.jpg`` and ``dog.0.jpg`` ... into ``directory`` (new or empty).

    ``image_size``: None for a random width and height in 96..160 per image, an int for squares, or
    (width, height). Image ``i`` of a class depends only on (seed, class, i), not on ``n_per_class``.
    Returns the directory, which ``prepare_split`` detects as a ``kaggle-folder`` source.
    """
    if n_per_class < 1:
        raise UserError(f"{parameter('n_per_class')} needs at least 1 image per class, got {n_per_class}")
    directory = Path(directory).expanduser()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UserError(f"{directory} is not an empty folder; choose a new or empty {parameter('directory')}")
    directory.mkdir(parents=True, exist_ok=True)
    for class_index, prefix in enumerate(_PREFIXES):
        for index in range(n_per_class):
            rng = np.random.default_rng([seed, class_index, index])
            image = draw_synthetic_image(rng, is_dog=class_index == 1, size=_image_size(rng, image_size))
            image.save(directory / f"{prefix}.{index}.jpg", "JPEG", quality=90, comment=JPEG_COMMENT)
    return directory
