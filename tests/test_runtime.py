"""The TensorFlow-free runtime: its Pillow decoder against the TensorFlow one, TF Serving bodies, runtime errors."""

from __future__ import annotations

import base64
import sys

import numpy as np
import pytest
from helpers.images import write_image
from PIL import Image

from catsdogs.data.decode import load_image
from catsdogs.data.images import check_image_file
from catsdogs.data.pillow_decode import decode_checked, resize_bilinear
from catsdogs.errors import UserError
from catsdogs.runtime.opening import model_format, open_classifier
from catsdogs.runtime.tfserving import RequestError, request_values, response_body


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus noise: JPEG-compressed like a photo, unlike flat colours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1)
    return np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255)


def both_decoders(path, size):
    check = check_image_file(path, size)
    assert check.ok, check.problem
    return load_image(path, size).numpy().astype(int), decode_checked(check, size).astype(int)


def test_the_numpy_resize_is_tensorflows_bilinear_resize():
    import tensorflow as tf

    image = np.random.default_rng(1).integers(0, 256, (37, 53, 3)).astype(np.float32)
    for size in (16, 48, 90):  # shrink and enlarge
        np.testing.assert_allclose(resize_bilinear(image, size), tf.image.resize(image, [size, size]).numpy(), atol=1e-3)


@pytest.mark.parametrize("shape, size", [((375, 500), 64), ((900, 1200), 224), ((480, 640), 150)])
def test_jpegs_decode_within_the_pinned_difference_at_every_libjpeg_scale(tmp_path, shape, size):
    # Scales 4, 4 and 2: the reduced-scale decode must be the same scale on both sides (the shapes would
    # differ otherwise and the difference would be tens of levels). Only the IDCT variant differs.
    path = write_image(tmp_path / "photo.jpg", photo_like(*shape))
    tf_pixels, pillow_pixels = both_decoders(path, size)
    difference = np.abs(tf_pixels - pillow_pixels)
    assert difference.max() <= 6 and difference.mean() <= 1.5, (difference.max(), difference.mean())


def test_pngs_and_grayscale_images_decode_the_same(tmp_path):
    png = write_image(tmp_path / "photo.png", photo_like(120, 160), format="PNG")
    tf_pixels, pillow_pixels = both_decoders(png, 64)
    assert np.array_equal(tf_pixels, pillow_pixels)
    gray = tmp_path / "gray.png"
    Image.fromarray(photo_like(90, 70)[..., 0].astype(np.uint8), "L").save(gray)
    tf_pixels, pillow_pixels = both_decoders(gray, 48)
    assert np.array_equal(tf_pixels, pillow_pixels) and pillow_pixels.shape == (48, 48, 3)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_turns_the_image_upright_on_both_sides(tmp_path, orientation):
    pixels = photo_like(60, 100)
    pixels[:20, :30] = [255, 0, 0]  # a red corner shows which way is up
    exif = Image.Exif()
    exif[274] = orientation
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=95, exif=exif)
    tf_pixels, pillow_pixels = both_decoders(path, 40)
    assert np.abs(tf_pixels - pillow_pixels).mean() <= 1.5
    upright = np.asarray(Image.open(path).transpose({3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270,
                                                     8: Image.Transpose.ROTATE_90}[orientation]).convert("RGB"))
    reference = resize_bilinear(upright, 40)
    assert np.abs(pillow_pixels - reference).mean() < 2  # really turned, not just the same as TensorFlow


def test_tf_serving_row_and_columnar_bodies():
    image = [[[0.0, 1.0, 2.0]]]
    values, row = request_values({"instances": [image, image]}, "image")
    assert row and len(values) == 2 and values[0] == image
    values, row = request_values({"inputs": {"image": [image]}}, "image")
    assert not row and values == [image]
    encoded = base64.b64encode(b"\xff\xd8jpeg").decode()
    assert request_values({"instances": [{"b64": encoded}, {"image_bytes": {"b64": encoded}}]}, "image_bytes")[0] \
        == [b"\xff\xd8jpeg", b"\xff\xd8jpeg"]
    assert response_body(np.array([[0.25, 0.75]]), True) == {"predictions": [[0.25, 0.75]]}
    assert response_body(np.array([[0.25, 0.75]]), False) == {"outputs": [[0.25, 0.75]]}


@pytest.mark.parametrize("body, message", [
    ([1, 2], "JSON object"), ({"instances": [], "inputs": []}, "exactly one"), ({"instances": []}, "non-empty"),
    ({"instances": [{"b64": "not base64!"}]}, "not valid base64"), ({"instances": [{"other": 1}]}, "one input"),
    ({"inputs": 3}, "non-empty list"),
])
def test_bad_tf_serving_bodies_are_named(body, message):
    with pytest.raises(RequestError, match=message):
        request_values(body, "image")


def test_a_missing_runtime_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really")
    (tmp_path / "catsdogs.json").write_text('{"class_names": ["cats", "dogs"], "image_size": 32}')
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"onnxruntime, which is not installed; pip install 'catsdogs\[runtime\]'"):
        open_classifier(model)


def test_an_export_without_its_sidecar_or_with_a_foreign_file_is_a_clear_error(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not a flatbuffer")
    with pytest.raises(UserError, match="no catsdogs.json beside it"):
        open_classifier(model)
    (tmp_path / "catsdogs.json").write_text('{"class_names": ["cats", "dogs"], "image_size": 32}')
    with pytest.raises(UserError, match="not a LiteRT model"):
        open_classifier(model)
    assert model_format(tmp_path / "x.keras") == "keras" and model_format(model) == "litert"
    with pytest.raises(UserError, match="a folder without a SavedModel"):
        model_format(tmp_path)
