"""The tf.data input pipeline: listing, decoding, shapes, labels, determinism and bad folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers.images import make_split_folder, write_image
from PIL import Image

from catsdogs.config import AugmentParams
from catsdogs.data import pipeline
from catsdogs.data.decode import decode_and_resize, decode_upright, load_image
from catsdogs.data.files import data_fingerprint, read_image_folder, read_splits
from catsdogs.data.images import checked_folder
from catsdogs.data.pipeline import make_dataset, make_path_dataset
from catsdogs.errors import UserError


def collect(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def test_labels_follow_sorted_class_folders(tiny_split):
    folder = read_image_folder(tiny_split / "train")
    assert folder.class_names == ("cats", "dogs")
    assert len(folder) == 12 and folder.labels.count(0) == 6 and folder.labels.count(1) == 6
    assert all(Path(p).parent.name == folder.class_names[label] for p, label in zip(folder.paths, folder.labels))


def test_batches_have_the_promised_shapes_dtypes_and_range(tiny_split):
    dataset = make_dataset(tiny_split / "train", image_size=32, batch_size=5)
    images, labels = collect(dataset)
    first_images, first_labels = next(iter(dataset))
    assert first_images.shape == (5, 32, 32, 3) and first_images.dtype == tf.float32
    assert first_labels.shape == (5,) and first_labels.dtype == tf.int32
    assert images.shape == (12, 32, 32, 3) and 0 <= images.min() and images.max() <= 255
    # The generated classes differ in colour: red-dominant cats (0), blue-dominant dogs (1).
    red_minus_blue = images[..., 0].mean(axis=(1, 2)) - images[..., 2].mean(axis=(1, 2))
    np.testing.assert_array_equal(labels, (red_minus_blue < 0).astype(np.int32))


def test_same_seed_gives_the_same_epochs_and_epochs_differ(tiny_split):
    def epochs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        dataset = make_dataset(tiny_split / "train", 32, 4, shuffle=True, augment=AugmentParams(), seed=seed)
        return [collect(dataset) for _ in range(2)]

    first, again, other = epochs(1), epochs(1), epochs(2)
    for (images_a, labels_a), (images_b, labels_b) in zip(first, again):
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(labels_a, labels_b)
    assert not np.array_equal(first[0][0], first[1][0])  # a new shuffle and new augmentations each epoch
    assert not np.array_equal(first[0][0], other[0][0])


def test_cached_dataset_reshuffles_each_epoch_and_keeps_every_image(tiny_split):
    dataset = make_dataset(tiny_split / "train", 32, 12, shuffle=True, cache=True, seed=3)
    (images_1, labels_1), (images_2, labels_2) = collect(dataset), collect(dataset)
    assert sorted(labels_1.tolist()) == sorted(labels_2.tolist()) == [0] * 6 + [1] * 6
    assert not np.array_equal(labels_1, labels_2) or not np.array_equal(images_1, images_2)
    np.testing.assert_allclose(np.sort(images_1.mean(axis=(1, 2, 3))), np.sort(images_2.mean(axis=(1, 2, 3))))


def test_unshuffled_order_is_the_listing_order(tiny_split):
    folder = read_image_folder(tiny_split / "validation")
    _, labels = collect(make_dataset(folder, 32, 4))
    assert labels.tolist() == list(folder.labels)


def test_large_jpeg_decodes_at_reduced_scale_close_to_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.uniform(0, 255, (20, 30, 3)), np.ones((20, 20, 1)))  # 400 x 600 blocks
    path = write_image(tmp_path / "big.jpg", smooth)
    contents = tf.io.read_file(str(path))
    full = tf.image.resize(tf.io.decode_jpeg(contents, channels=3), [64, 64]).numpy()
    reduced = decode_and_resize(contents, 64).numpy().astype(np.float32)
    assert reduced.shape == (64, 64, 3) and reduced.dtype == np.float32
    assert np.abs(reduced - full).mean() < 6.0


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGB"), ("PNG", "L"), ("PNG", "RGBA"), ("BMP", "RGB"), ("GIF", "P")])
def test_other_formats_and_modes_decode_to_rgb(tmp_path, fmt, mode):
    from PIL import Image

    path = tmp_path / f"image.{fmt.lower()}"
    Image.new("RGB", (50, 40), (200, 30, 30)).convert(mode).save(path, format=fmt)
    image = load_image(path, 24).numpy()
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8


def test_path_dataset_drops_undecodable_files_and_keeps_the_rest(tmp_path):
    good = [write_image(tmp_path / f"good{i}.jpg", np.full((30, 30, 3), 40 * i)) for i in range(3)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    paths = [str(good[0]), str(bad), str(good[1]), str(good[2])]
    seen = [p.decode() for batch_paths, _ in make_path_dataset(paths, 16, batch_size=2) for p in batch_paths.numpy()]
    assert seen == [str(p) for p in good]


def test_read_splits_requires_train_and_matching_classes(tmp_path, tiny_split):
    assert set(read_splits(tiny_split)) == {"train", "validation", "test"}
    with pytest.raises(UserError, match="does not exist"):
        read_splits(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no train/ folder"):
        read_splits(tmp_path / "empty")
    odd = make_split_folder(tmp_path / "odd", {"train": 2, "validation": 2}, classes=("cats", "dogs"))
    for image in (odd / "validation" / "dogs").iterdir():
        image.unlink()
    with pytest.raises(UserError, match="holds no images"):
        read_splits(odd)


def test_a_single_class_folder_is_refused(tmp_path):
    make_split_folder(tmp_path / "one", {"train": 2}, classes=("cats",))
    with pytest.raises(UserError, match="at least 2"):
        read_image_folder(tmp_path / "one" / "train")


def test_fingerprint_changes_when_the_data_changes(tiny_split):
    before = data_fingerprint(tiny_split)
    assert before == data_fingerprint(tiny_split)
    write_image(tiny_split / "train" / "cats" / "extra.jpg", np.zeros((10, 10, 3)))
    assert data_fingerprint(tiny_split) != before


def _mixed_folder(root: Path) -> Path:
    """Files in several decode groups: JPEGs at scales 1, 2 and 4 for 16 px, a PNG, EXIF orientations 3, 6 and 8."""
    rng = np.random.default_rng(4)
    for i, (shape, fmt, orientation) in enumerate([((20, 30), "JPEG", 1), ((40, 50), "JPEG", 1), ((70, 64), "JPEG", 1),
                                                   ((24, 24), "PNG", 1), ((40, 36), "JPEG", 6), ((30, 20), "JPEG", 3),
                                                   ((50, 44), "JPEG", 8), ((33, 47), "JPEG", 1)]):
        name = ("cats", "dogs")[i % 2]
        path = root / name / f"{name}.{i}.{fmt.lower()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        exif = Image.Exif()
        exif[274] = orientation
        Image.fromarray(rng.integers(0, 256, (*shape, 3)).astype(np.uint8)).save(path, fmt, exif=exif)
    return root


def test_grouped_decoding_gives_decode_and_resize_pixels_in_folder_order_and_shuffles_fairly(tmp_path):
    folder = read_image_folder(_mixed_folder(tmp_path / "mixed"))
    dataset = make_dataset(folder, 16, 3)
    images, labels = collect(dataset)
    assert int(dataset.cardinality()) == 3
    expected = [decode_and_resize(tf.io.read_file(p), 16, o).numpy() for p, o in
                zip(folder.paths, checked_orientations(folder))]
    np.testing.assert_array_equal(images, np.stack(expected).astype(np.float32))
    np.testing.assert_array_equal(labels, folder.labels)
    shuffled = make_dataset(folder, 16, 8, shuffle=True, seed=2)
    orders = [collect(shuffled)[0] for _ in range(6)]
    assert all(sorted(map(bytes, order)) == sorted(map(bytes, images)) for order in orders)  # every image, once
    # Over a few passes the first image is not always from the same group (the choices are shuffled too).
    assert len({bytes(order[0]) for order in orders}) > 1
    cached = make_dataset(folder, 16, 8, shuffle=True, seed=2, cache=True)
    assert sorted(map(bytes, collect(cached)[0])) == sorted(map(bytes, images))


def test_the_check_knows_how_many_pixels_each_file_decodes_to(tmp_path):
    folder = checked_folder(read_image_folder(_mixed_folder(tmp_path / "mixed")), 16)
    for path, scale, orientation, pixels in zip(folder.paths, folder.scales, folder.orientations, folder.pixels):
        height, width, _ = decode_upright(tf.io.read_file(path), scale, orientation).shape
        assert height * width == pixels


def _smooth_folder(root: Path) -> Path:
    """Smooth pictures (one interpolation or two look alike) of several sizes, scales and formats, upright or not."""
    for i, (shape, fmt, orientation) in enumerate([((70, 90), "JPEG", 1), ((40, 33), "JPEG", 6), ((150, 140), "JPEG", 1),
                                                   ((50, 60), "PNG", 1), ((30, 20), "JPEG", 1), ((64, 48), "JPEG", 8)]):
        rows, cols = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
        pixels = np.stack([127 + 120 * np.sin(3 * rows + 2 * cols + i + c) for c in range(3)], -1)
        name = ("cats", "dogs")[i % 2]
        exif = Image.Exif()
        exif[274] = orientation
        path = root / name / f"{name}.{i}.{fmt.lower()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8)).save(path, fmt, exif=exif, quality=95)
    return root


@pytest.mark.parametrize("max_squares", [pipeline.MAX_SOURCE_SQUARES, 2])  # 2: some files are resized first
def test_uncached_augmentation_resamples_once_with_the_cached_order_and_transforms(tmp_path, monkeypatch,
                                                                                   max_squares):
    monkeypatch.setattr(pipeline, "MAX_SOURCE_SQUARES", max_squares)
    folder = read_image_folder(_smooth_folder(tmp_path / "smooth"))
    augment = AugmentParams()
    fused = make_dataset(folder, 24, 4, shuffle=True, augment=augment, seed=5)  # the default: one resampling
    images, labels = collect(fused)
    two_passes, cached_labels = collect(make_dataset(folder, 24, 4, shuffle=True, augment=augment, seed=5, cache=True))
    other_draws, _ = collect(make_dataset(folder, 24, 4, shuffle=True, augment=augment, seed=6, cache=True))
    assert images.shape == (6, 24, 24, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(labels, cached_labels)
    assert np.abs(images - two_passes).mean() < 3.0 < np.abs(images - other_draws).mean()
    unfused, _ = collect(make_dataset(folder, 24, 4, shuffle=True, augment=augment, seed=5, fused=False))
    np.testing.assert_allclose(unfused, two_passes, atol=1e-3)
    assert not np.allclose(images, unfused, atol=1e-3)
    assert int(fused.cardinality()) == 2 and len(collect(make_dataset(folder, 24, 4, shuffle=True, augment=augment,
                                                                      drop_remainder=True))[1]) == 4


def checked_orientations(folder) -> tuple[int, ...]:
    checked = checked_folder(folder, 16)
    assert checked.paths == folder.paths and len(set(zip(checked.scales, checked.orientations))) >= 5
    return checked.orientations
