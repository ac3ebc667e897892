"""Decode every image fully and turn anything that is not a plain RGB JPEG into one.

Real sources hold 0-byte files, truncated JPEGs, other formats named ``.jpg``, CMYK and grayscale JPEGs,
palette images with transparency and 16-bit PNGs (Microsoft's PetImages has most of these). The training
pipeline wants RGB JPEGs it can always decode, so: what cannot be decoded is rejected with a reason, and
what decodes but is not a plain RGB JPEG is re-encoded (RGB, quality 95) with a reason. A photo with an
EXIF orientation (a phone held sideways) is re-encoded upright, so the written split needs no EXIF
reading; only those are re-encoded, and ``summary.json`` says so.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from catsdogs.data.images import JPEG_SCALES, MAX_PIXELS_ENV, exif_orientation, max_pixels, pillow_limits_off

JPEG_QUALITY = 95
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_MODE_WORDS = {
    "1": "1-bit", "L": "grayscale", "P": "palette", "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV",
    "RGBA": "RGB with alpha", "RGBa": "RGB with alpha", "LA": "grayscale with alpha", "La": "grayscale with alpha",
    "PA": "palette with alpha", "I": "32-bit integer", "F": "32-bit float", "RGB": "RGB",
    **{mode: "16-bit grayscale" for mode in _SIXTEEN_BIT_MODES},
}


class UndecodableImage(Exception):
    """The bytes are not an image Pillow can decode completely; ``str(exc)`` is the reason."""


@dataclass(frozen=True)
class CheckedImage:
    """A fully decoded image: the hash of its source bytes, its size, and a re-encoded JPEG if it needs one."""

    sha256: str  # of the source bytes (what duplicates are detected by)
    width: int
    height: int
    reencoded: bytes | None = None  # an RGB JPEG when the source is not a plain RGB JPEG
    reason: str | None = None  # why it was re-encoded


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def _describe(image: Image.Image, file_name: str) -> str:
    """Why ``image`` is re-encoded, e.g. ``PNG named .jpg, palette (P) with transparency``."""
    fmt = image.format or "unknown format"
    extension = os.path.splitext(file_name)[1].lower()
    what = fmt
    if fmt != "JPEG" and extension in (".jpg", ".jpeg"):
        what += f" named {extension}"
    word = _MODE_WORDS.get(image.mode, image.mode)
    words = [what, word if word == image.mode else f"{word} ({image.mode})"]
    if "transparency" in image.info and image.mode not in _ALPHA_MODES:
        words[-1] += " with transparency"
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        words.append(f"first of {frames} frames")
    if _has_transparency(image):
        words.append("alpha composited on white")
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        words.append("scaled to 8 bits")
    return ", ".join(words)


def _to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit / 32-bit / float single-channel image as 8-bit grayscale, scaled by its range (never clipped)."""
    values = np.asarray(image).astype(np.float64)
    if image.mode in _SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG"):
        full_scale = 65535.0  # PNG's only "I" images are 16-bit grayscale
    elif image.mode == "F":
        full_scale = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
    else:  # 32-bit integers from TIFF/PGM: the smallest usual bit depth that holds the values
        peak = values.max(initial=0.0)
        full_scale = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    scaled = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded Pillow image as 8-bit RGB: high bit depths scaled down, transparency on white."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        image = _to_8bit(image)
    if _has_transparency(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", image.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def encode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _decode_within_limit(image: Image.Image) -> int:
    """Decode ``image`` without passing ``max_pixels``: in full, or a JPEG at 1/2, 1/4 or 1/8 scale (the
    scale is returned; 0 for full size). Decoding still reads all the data, so truncation is found.

    The size comes from the header, before any pixel is decoded: a decompression bomb is refused
    without allocating its gigabytes.
    """
    width, height = image.size
    scale = next((s for s in JPEG_SCALES if -(-width // s) * -(-height // s) <= max_pixels()), None)
    if scale is None or (scale > 1 and image.format != "JPEG"):
        raise UndecodableImage(f"too large: {width}x{height} {image.format or 'image'} is over the limit of "
                               f"{max_pixels() / 1e6:.0f} million decoded pixels (${MAX_PIXELS_ENV}); shrink it")
    if scale > 1:
        image.draft(image.mode, (-(-width // scale), -(-height // scale)))
    image.load()
    return 0 if scale == 1 else scale


def check_image(data: bytes, file_name: str) -> CheckedImage:
    """Decode ``data`` completely; re-encode it unless it is a plain RGB JPEG.

    ``file_name`` only serves the reason text (``PNG named .jpg``). Raises UndecodableImage for empty,
    truncated or non-image bytes.
    """
    if not data:
        raise UndecodableImage("empty file (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    with pillow_limits_off():
        try:
            image: Image.Image = Image.open(io.BytesIO(data))
            width, height = image.size
            shrunk = _decode_within_limit(image)
            orientation = exif_orientation(image)
            if image.format == "JPEG" and image.mode == "RGB" and orientation == 1:
                return CheckedImage(digest, width, height)  # copied as it is, at its full size
            reason = _describe(image, file_name)
            if shrunk:
                reason += f", {width}x{height} decoded at 1/{shrunk} (over the pixel limit)"
            if orientation != 1:
                reason = f"EXIF orientation {orientation}, turned upright" if reason == "JPEG, RGB" else (
                    f"{reason}, EXIF orientation {orientation} turned upright")
                image = ImageOps.exif_transpose(image)
            rgb = to_rgb(image)
        except UndecodableImage:
            raise
        except UnidentifiedImageError:
            # Pillow's own message names a BytesIO object by address; keep the summary reproducible.
            raise UndecodableImage("not an image Pillow can identify") from None
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
            raise UndecodableImage(f"cannot be decoded ({type(exc).__name__}: {exc})") from None
    return CheckedImage(digest, rgb.width, rgb.height, encode_jpeg(rgb), reason)
