"""Builders for the data_prep tests: tiny generated images, each source layout, and every bad-file kind.

Used by ``tests/test_data_prep*.py`` (``from helpers.data_prep import ...``). Everything is
generated; nothing here reads ../shared or the network.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (20, 16)  # tiny images keep the whole data_prep run fast


def noise_image(seed: int, mode: str = "RGB", size: tuple[int, int] = SIZE) -> Image.Image:
    """A random image, different for every seed (so its bytes are unique)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "CMYK": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(seed: int, size: tuple[int, int] = SIZE) -> bytes:
    return encode(noise_image(seed, size=size), "JPEG", quality=90)


def palette_png_with_transparency(seed: int) -> bytes:
    image = noise_image(seed).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image, "PNG", transparency=0)


def sixteen_bit_png(seed: int) -> bytes:
    # A gradient that uses the full 16-bit range: 8-bit output must span 0..255 (clipping would saturate).
    values = (np.linspace(0, 65535, SIZE[0] * SIZE[1]).reshape(SIZE[1], SIZE[0]) + seed) % 65536
    return encode(Image.fromarray(values.astype(np.uint16)), "PNG")


# name -> (bytes for a seed, "skipped" | "reencoded", a word the summary's reason must contain)
BAD_KINDS: dict[str, tuple[Callable[[int], bytes], str, str]] = {
    "zero_byte": (lambda seed: b"", "skipped", "empty"),
    "truncated_jpeg": (lambda seed: jpeg(seed, (64, 48))[: len(jpeg(seed, (64, 48))) * 2 // 3], "skipped", "truncated"),
    "random_bytes": (lambda seed: random.Random(seed).randbytes(3000), "skipped", "identify"),
    "png_named_jpg": (lambda seed: encode(noise_image(seed), "PNG"), "reencoded", "PNG named .jpg"),
    "gif_named_jpg": (lambda seed: encode(noise_image(seed), "GIF"), "reencoded", "GIF named .jpg"),
    "bmp_named_jpg": (lambda seed: encode(noise_image(seed), "BMP"), "reencoded", "BMP named .jpg"),
    "cmyk_jpeg": (lambda seed: encode(noise_image(seed, "CMYK"), "JPEG"), "reencoded", "CMYK"),
    "grayscale_jpeg": (lambda seed: encode(noise_image(seed, "L"), "JPEG"), "reencoded", "grayscale (L)"),
    "palette_png_transparency": (palette_png_with_transparency, "reencoded", "with transparency"),
    "sixteen_bit_png": (sixteen_bit_png, "reencoded", "16-bit"),
    "rgba_png": (lambda seed: encode(noise_image(seed, "RGBA"), "PNG"), "reencoded", "with alpha"),
}


def kaggle_files(n_per_class: int, start: int = 0) -> dict[str, bytes]:
    """``cat.N.jpg`` / ``dog.N.jpg`` -> unique JPEG bytes."""
    return {f"{prefix}.{i}.jpg": jpeg(1000 * k + i)
            for k, prefix in enumerate(("cat", "dog")) for i in range(start, start + n_per_class)}


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def petimages_members(n_per_class: int) -> dict[str, bytes]:
    members = {"readme[1].txt": b"PetImages test archive", "PetImages/Cat/Thumbs.db": b"\x00thumbs",
               "PetImages/Dog/Thumbs.db": b"\x00thumbs"}
    for k, folder in enumerate(("Cat", "Dog")):
        members.update({f"PetImages/{folder}/{i}.jpg": jpeg(5000 + 1000 * k + i) for i in range(n_per_class)})
    return members


def build_source(kind: str, root: Path, n_per_class: int = 12) -> Path:
    """A tiny source of one layout under ``root``; returns the path to pass as --source."""
    root.mkdir(parents=True, exist_ok=True)
    kaggle = kaggle_files(n_per_class)
    if kaggle_zip := {"kaggle-competition-zip": "dogs-vs-cats.zip", "kaggle-train-zip": "train.zip"}.get(kind):
        train_zip = zip_bytes({f"train/{name}": data for name, data in kaggle.items()})
        if kind == "kaggle-train-zip":
            (root / kaggle_zip).write_bytes(train_zip)
        else:
            (root / kaggle_zip).write_bytes(zip_bytes({
                "train.zip": train_zip, "test1.zip": zip_bytes({"test1/1.jpg": jpeg(99)}),
                "sampleSubmission.csv": b"id,label\n1,0\n"}))
        return root / kaggle_zip
    if kind == "kaggle-folder":
        return write_files(root / "flat", kaggle)
    if kind == "kaggle-folder-train":
        return write_files(root / "extracted", {f"train/{n}": d for n, d in kaggle.items()} | {"test1/1.jpg": jpeg(99)})
    if kind == "petimages-zip":
        (root / "kagglecatsanddogs_5340.zip").write_bytes(zip_bytes(petimages_members(n_per_class)))
        return root / "kagglecatsanddogs_5340.zip"
    if kind == "petimages-folder":
        write_files(root / "extracted", petimages_members(n_per_class))
        return root / "extracted" / "PetImages"
    if kind == "class-folders":
        files = {}
        for k, name in enumerate(("bird", "fish", "lizard")):
            files.update({f"{name}/img_{i}.{'png' if i == 3 else 'jpg'}":
                          encode(noise_image(7000 + 100 * k + i), "PNG") if i == 3 else jpeg(7000 + 100 * k + i)
                          for i in range(n_per_class)})
        return write_files(root / "classes", files)
    raise ValueError(kind)


def tree_digest(path: Path) -> dict[str, str]:
    """relative path -> sha256 for every file under ``path`` (or of ``path`` itself), to prove nothing changed."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {p.relative_to(path.parent).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def read_manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())
