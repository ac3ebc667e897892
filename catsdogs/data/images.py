"""Image files through Pillow: is a file usable (answered before TensorFlow decodes anything), and bounded decoding.

One rule for every command (train, evaluate, predict, visualize), so a bad file is named and skipped
wherever it turns up, and training and serving never disagree about an image:

- **Header first.** Pillow reads the format, the size and the EXIF orientation without decoding pixels.
- **A pixel limit from the header.** The pixels a file decodes to (a JPEG at the reduced scale the
  pipeline decodes it at, see ``jpeg_scale``; other formats in full) above ``max_pixels()`` are refused
  before any decoding: a decompression bomb never allocates its gigabytes.
- **JPEG data decoded at 1/8 scale** (libjpeg's DCT scaling, Pillow's draft mode): a truncated or
  corrupt file is found for a fraction of a full decode. Other formats get Pillow's ``verify`` (PNG:
  chunk structure and checksums), again without decoding pixels.
- **EXIF orientation** (tag 274) is kept with the result; ``catsdogs.data.decode`` applies it, so a
  phone photo is upright in training, evaluation, prediction and Grad-CAM alike.

``check_folder`` remembers results per file by path, size and modification time in a JSON file under
the user's cache folder (never in the data folder), so a second run on the same data checks only what
changed. ``open_upright`` decodes a file for display at a bounded size (Grad-CAM overlays), under the
same rules. This module imports no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from catsdogs.config import user_cache_dir
from catsdogs.data.files import Failure, ImageFolder, is_text_name, read_image_folder
from catsdogs.outputs import write_json

DECODABLE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")  # Pillow's names for what TensorFlow decodes
JPEG_SCALES = (1, 2, 4, 8)  # the reduced scales libjpeg decodes at
MAX_PIXELS_ENV = "CATSDOGS_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 25_000_000  # decoded; 25 M RGB pixels are 75 MB, 300 MB as floats while resizing
DISPLAY_MAX_SIDE = 1024  # pictures drawn over an image (overlays) are at most this wide and high
EXIF_ORIENTATION = 274
_CHECK_CACHE_FORMAT = 3  # 2: each file's decode scale too; 3: and its decoded pixels


@dataclass(frozen=True)
class ImageCheck:
    """What a file turned out to be: usable (``problem`` None) or not, and how to turn it upright."""

    path: str
    problem: str | None = None
    orientation: int = 1  # EXIF: 1 upright, 2-8 mirrored and/or rotated
    width: int = 0
    height: int = 0
    format: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None

    def failure(self) -> Failure:
        return Failure(self.path, self.problem or "")


def max_pixels() -> int:
    """The decoded-pixel limit: ``$CATSDOGS_MAX_PIXELS`` or ``DEFAULT_MAX_PIXELS``."""
    value = os.environ.get(MAX_PIXELS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PIXELS


def jpeg_scale(width: int, height: int, image_size: int) -> int:
    """The largest libjpeg scale (1, 2, 4, 8) that keeps the short side at least ``image_size``."""
    short_side = min(width, height)
    return max(scale for scale in JPEG_SCALES if scale == 1 or short_side >= scale * image_size)


def decode_scale(check: ImageCheck, image_size: int) -> int:
    """The libjpeg scale the pipeline decodes a checked JPEG at for ``image_size``; 0 for any other format."""
    return jpeg_scale(check.width, check.height, image_size) if check.format == "JPEG" else 0


def decoded_pixels(width: int, height: int, image_format: str, image_size: int) -> int:
    """Pixels the pipeline decodes this file to: a JPEG at its reduced scale, anything else in full."""
    if image_format == "JPEG":
        scale = jpeg_scale(width, height, image_size)
        return -(-width // scale) * -(-height // scale)
    return width * height


@contextmanager
def pillow_limits_off() -> Iterator[None]:
    """Pillow's own bomb check would refuse a 20000 x 20000 JPEG that decodes to 2500 x 2500 at 1/8:
    the pixel limit here replaces it. Truncated images are refused whatever other code set globally."""
    previous_pixels, previous_truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Possibly corrupt EXIF data" and the like
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = previous_pixels, previous_truncated


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 upright, 2-8 mirrored and/or rotated); 1 when absent or unreadable."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 (broken EXIF must not make a good image unusable)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _starts_like_jpeg(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\xff\xd8"  # the SOI marker


def check_image_file(path: str | Path, image_size: int) -> ImageCheck:
    """Whether ``path`` can be decoded for a model of ``image_size`` px, and its EXIF orientation."""
    path = str(path)
    if not is_text_name(path):
        return ImageCheck(path, "its name is not valid UTF-8, which TensorFlow and the reports need; rename the file")
    try:
        if os.path.getsize(path) == 0:
            return ImageCheck(path, "empty file (0 bytes)")
        with pillow_limits_off(), Image.open(path) as image:
            width, height, image_format = image.width, image.height, image.format or "unknown"
            found = ImageCheck(path, None, 1, width, height, image_format)
            if image_format not in DECODABLE_FORMATS:
                return replace(found, problem=f"{image_format} images are not read here; convert it to JPEG "
                                              "(python -m data_prep does)")
            # TensorFlow decodes every frame of a GIF, even when only the first is kept.
            frames = getattr(image, "n_frames", 1) if image_format == "GIF" else 1
            pixels = decoded_pixels(width, height, image_format, image_size) * frames
            if pixels > max_pixels():
                size = f"{width}x{height}" + (f" x {frames} frames" if frames > 1 else "")
                return replace(found, problem=f"too large: {size} {image_format} decodes to "
                                              f"{pixels / 1e6:.0f} million pixels, over the limit of "
                                              f"{max_pixels() / 1e6:.0f} million (${MAX_PIXELS_ENV})")
            if image_format == "JPEG":
                found = replace(found, orientation=exif_orientation(image))
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
            else:
                image.verify()  # must come straight after opening, and leaves the image unusable
        if image_format != "JPEG":
            with pillow_limits_off(), Image.open(path) as image:
                found = replace(found, orientation=exif_orientation(image))  # PNG and WebP may carry EXIF too
        return found
    except UnidentifiedImageError:
        return ImageCheck(path, "not an image (the bytes are not JPEG, PNG, GIF, BMP or WebP)")
    except OSError as exc:
        if exc.strerror:  # a file-system error: unreadable, a broken or looping symbolic link
            return ImageCheck(path, f"cannot be read ({exc.strerror})")
        return ImageCheck(path, f"corrupt or truncated {'JPEG' if _starts_like_jpeg(path) else 'image'} data")
    except Exception as exc:  # noqa: BLE001 (Pillow raises SyntaxError, ValueError, struct.error, ... on bad data)
        return ImageCheck(path, f"cannot be decoded ({type(exc).__name__}: {str(exc)[:80]})")


def check_files(paths: Sequence[str], image_size: int, progress: bool = False) -> list[ImageCheck]:
    """``check_image_file`` for each path, in order."""
    return [check_image_file(path, image_size)
            for path in tqdm(paths, unit="file", desc="checking images", leave=False,
                             disable=None if progress else True)]  # None: a bar on a terminal only


def _cache_file(folder: ImageFolder, image_size: int) -> Path:
    identity = f"{folder.root.resolve()}|{image_size}|{max_pixels()}".encode("utf-8", "surrogateescape")
    return user_cache_dir() / "file-checks" / f"{hashlib.sha256(identity).hexdigest()[:20]}.json"


def _stamp(path: str) -> list[int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def check_folder(folder: ImageFolder, image_size: int, progress: bool = False) -> tuple[ImageFolder, list[Failure]]:
    """The split with its unusable files left out (orientations, decode scales and decoded pixels filled in), and
    those files as failures.

    Results are remembered in the user's cache folder by path, size and modification time.
    """
    cache_path = _cache_file(folder, image_size)
    remembered: dict[str, list[Any]]  # path -> [size, mtime_ns, problem, orientation, decode scale, pixels]
    try:
        cached = json.loads(cache_path.read_text())
        remembered = cached["files"] if cached.get("format") == _CHECK_CACHE_FORMAT else {}
    except (OSError, ValueError, KeyError, TypeError):
        remembered = {}
    stamps = {path: _stamp(path) for path in folder.paths}
    fresh = [path for path in folder.paths
             if not (path in remembered and stamps[path] is not None and remembered[path][:2] == stamps[path])]
    for check in check_files(fresh, image_size, progress):
        stamp: list[Any] = stamps[check.path] or [None, None]
        remembered[check.path] = [*stamp, check.problem, check.orientation,
                                  decode_scale(check, image_size),
                                  decoded_pixels(check.width, check.height, check.format, image_size)]
    keep, orientations, scales, pixels, failures = [], [], [], [], []
    for index, path in enumerate(folder.paths):
        problem, orientation, scale, count = remembered[path][2:6]
        if problem is None:
            keep.append(index)
            orientations.append(orientation)
            scales.append(scale)
            pixels.append(count)
        else:
            failures.append(Failure(path, problem))
    if fresh:
        try:
            write_json(cache_path, {"format": _CHECK_CACHE_FORMAT, "files": {p: remembered[p] for p in folder.paths}})
        except OSError:
            pass  # a read-only cache folder costs the next run a re-check, nothing more
    checked = ImageFolder(folder.root, folder.class_names, tuple(folder.paths[i] for i in keep),
                          tuple(folder.labels[i] for i in keep), tuple(orientations), tuple(scales), tuple(pixels))
    return checked, failures


def open_upright(path: str | Path | IO[bytes], max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """A file (a path, or an open binary file) as uint8 RGB, upright (EXIF), at most ``max_side`` on its long
    side: memory bounded by the size.

    JPEGs decode straight at a reduced scale (draft mode); other formats must be under the pixel limit
    (call ``check_image_file`` first) and are shrunk after decoding.
    """
    with pillow_limits_off(), Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", (max_side, max_side))
        image = ImageOps.exif_transpose(image)
        image.thumbnail((max_side, max_side))
        return np.asarray(image.convert("RGB"))


def checked_folder(folder: ImageFolder | str | Path, image_size: int) -> ImageFolder:
    """``folder`` with its files checked (``images.check_folder``); unusable files left out, with a warning.

    A folder that was checked already (it carries orientations, scales and pixels) is returned as it is.
    """
    if not isinstance(folder, ImageFolder):
        folder = read_image_folder(folder)
    if len(folder.orientations) == len(folder.scales) == len(folder.pixels) == len(folder.paths) and folder.paths:
        return folder
    folder, failures = check_folder(folder, image_size)
    if failures:
        warnings.warn(f"{len(failures)} unusable file(s) left out of {folder.root}, e.g. {failures[0]}", stacklevel=3)
    return folder
