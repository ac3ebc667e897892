"""data_prep.checking: full decoding, and re-encoding of everything that is not a plain RGB JPEG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers.data_prep import BAD_KINDS, encode, jpeg, noise_image
from PIL import Image, ImageFile

from data_prep.checking import UndecodableImage, check_image


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_plain_rgb_jpeg_is_kept_as_is():
    data = jpeg(1)
    checked = check_image(data, "cat.1.jpg")
    assert checked.reencoded is None and checked.reason is None
    assert (checked.width, checked.height) == decoded(data).size


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_every_bad_kind_is_skipped_or_reencoded_with_a_reason(kind):
    make, outcome, word = BAD_KINDS[kind]
    if outcome == "skipped":
        with pytest.raises(UndecodableImage, match=word):
            check_image(make(1), f"{kind}.jpg")
        return
    checked = check_image(make(1), f"{kind}.jpg")
    assert word in checked.reason
    image = decoded(checked.reencoded)
    assert (image.format, image.mode) == ("JPEG", "RGB")
    assert image.size == (checked.width, checked.height)


def test_truncated_jpeg_is_rejected_even_if_pillow_was_told_to_tolerate_it(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    make, _, _ = BAD_KINDS["truncated_jpeg"]
    with pytest.raises(UndecodableImage, match="truncated"):
        check_image(make(2), "cat.2.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 257 * 64, 257 * 128, 65535]] * 8, dtype=np.uint16).repeat(8, axis=1)
    checked = check_image(encode(Image.fromarray(values), "PNG"), "deep.png")
    gray = np.asarray(decoded(checked.reencoded).convert("L"), dtype=int)
    # columns 0-7, 8-15, 16-23, 24-31 hold 0, 64, 128, 255 (JPEG may move them by a few levels)
    assert [int(round(gray[:, c * 8 + 2: c * 8 + 6].mean())) for c in range(4)] == pytest.approx([0, 64, 128, 255], abs=3)


def test_alpha_is_composited_on_white():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (200, 0, 0, 255)  # opaque red on the left, fully transparent black on the right
    checked = check_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), "a.png")
    rgb = np.asarray(decoded(checked.reencoded), dtype=int)
    assert rgb[:, 12:].min() >= 245  # transparent -> white, not black
    assert rgb[:, :4, 0].mean() > 180 and rgb[:, :4, 1].mean() < 40


def test_palette_transparency_becomes_white():
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0] + [0, 0, 255] * 255)
    image.paste(1, (0, 0, 8, 16))  # left half palette index 1 (blue); right half index 0, transparent
    checked = check_image(encode(image, "PNG", transparency=0), "p.jpg")
    rgb = np.asarray(decoded(checked.reencoded), dtype=int)
    assert rgb[:, 12:].min() >= 245
    assert rgb[:, :4, 2].mean() > 200


def test_cmyk_and_grayscale_become_rgb_with_the_same_size():
    for image in (noise_image(3, "CMYK", (30, 10)), noise_image(4, "L", (30, 10))):
        checked = check_image(encode(image, "JPEG"), "x.jpg")
        assert decoded(checked.reencoded).mode == "RGB" and (checked.width, checked.height) == (30, 10)


def test_sha256_is_of_the_source_bytes():
    import hashlib

    data = encode(noise_image(5), "PNG")
    assert check_image(data, "x.png").sha256 == hashlib.sha256(data).hexdigest()
