"""data_prep.synthetic: a learnable stand-in whose colour and shape carry the label, and nothing else does."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from catsdogs.errors import UserError
from data_prep import make_synthetic_source, prepare_split
from data_prep.synthetic import JPEG_COMMENT, SIZE_RANGE

N = 60


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_source(tmp_path_factory.mktemp("synthetic") / "src", N, seed=3)


def object_features(path) -> tuple[bool, float]:
    """(is the saturated object warm?, its area / the area of the ellipse with its second moments).

    The ratio is 1 for discs and ellipses, about 0.95 for squares and 0.83 for triangles.
    """
    hsv = np.asarray(Image.open(path).convert("HSV"), dtype=float)
    hue, saturated = hsv[..., 0] * 360 / 255, (hsv[..., 1] > 115) & (hsv[..., 2] > 115)
    warm = saturated & ((hue < 60) | (hue > 330))
    cool = saturated & (hue > 165) & (hue < 265)
    is_warm = warm.sum() > cool.sum()
    ys, xs = np.nonzero(warm if is_warm else cool)
    ellipse_area = 4 * np.pi * np.sqrt(np.linalg.det(np.cov(np.stack([xs, ys]))))
    return bool(is_warm), float(len(xs) / ellipse_area)


def test_files_are_a_kaggle_style_source_of_rgb_jpegs(synthetic):
    names = sorted(p.name for p in synthetic.iterdir())
    assert names == sorted([f"cat.{i}.jpg" for i in range(N)] + [f"dog.{i}.jpg" for i in range(N)])
    sizes = set()
    for name in names[:10] + names[-10:]:
        with Image.open(synthetic / name) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")
            assert image.info.get("comment") == JPEG_COMMENT  # says what it is
            assert SIZE_RANGE[0] <= min(image.size) and max(image.size) <= SIZE_RANGE[1]
            sizes.add(image.size)
    assert len(sizes) > 10  # varied, per image


def test_deterministic_per_seed_and_independent_of_n(tmp_path, synthetic):
    again = make_synthetic_source(tmp_path / "again", 5, seed=3)
    other = make_synthetic_source(tmp_path / "other", 5, seed=4)
    assert (again / "cat.4.jpg").read_bytes() == (synthetic / "cat.4.jpg").read_bytes()
    assert (other / "cat.4.jpg").read_bytes() != (synthetic / "cat.4.jpg").read_bytes()


def test_fixed_size(tmp_path):
    square = make_synthetic_source(tmp_path / "sq", 2, image_size=64)
    wide = make_synthetic_source(tmp_path / "wide", 2, image_size=(80, 48))
    assert Image.open(square / "dog.1.jpg").size == (64, 64)
    assert Image.open(wide / "cat.0.jpg").size == (80, 48)


def test_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not an empty folder"):
        make_synthetic_source(tmp_path / "used", 2)


def test_colour_alone_and_shape_alone_each_tell_the_classes_apart(synthetic):
    features = {prefix: [object_features(synthetic / f"{prefix}.{i}.jpg") for i in range(N)] for prefix in ("cat", "dog")}
    by_colour = sum(w for w, _ in features["cat"]) + sum(not w for w, _ in features["dog"])
    by_shape = sum(r > 0.97 for _, r in features["cat"]) + sum(r <= 0.97 for _, r in features["dog"])
    assert by_colour / (2 * N) >= 0.98
    assert by_shape / (2 * N) >= 0.93


def best_threshold_accuracy(cats: np.ndarray, dogs: np.ndarray) -> float:
    values = np.concatenate([cats, dogs])
    labels = np.array([0] * len(cats) + [1] * len(dogs))
    return max(max(np.mean((values > t) == labels), np.mean((values <= t) == labels)) for t in values)


def test_nothing_but_the_object_carries_the_label(synthetic):
    """Image size and background (the border) are drawn the same way for both classes: near chance."""
    stats = {}
    for prefix in ("cat", "dog"):
        rows = []
        for i in range(N):
            pixels = np.asarray(Image.open(synthetic / f"{prefix}.{i}.jpg"), dtype=float)
            border = np.concatenate([pixels[:3].reshape(-1, 3), pixels[-3:].reshape(-1, 3)])
            rows.append([pixels.shape[1], pixels.shape[0], border.mean(), border.std()])
        stats[prefix] = np.array(rows)
    for column in range(4):
        assert best_threshold_accuracy(stats["cat"][:, column], stats["dog"][:, column]) < 0.7


def test_splits_like_any_source(tmp_path, synthetic):
    from data_prep import SplitCounts

    summary = prepare_split(synthetic, tmp_path / "out", counts=SplitCounts(30, 15, 15))
    assert summary.kind == "kaggle-folder" and summary.class_names == ("cats", "dogs")
    assert not summary.skipped and not summary.reencoded and not summary.duplicates


@pytest.mark.slow
def test_a_small_cnn_learns_it_through_augmentation_and_mixed_up_labels_stay_at_chance(tmp_path):
    """At 64 px, through rotation +-40 degrees, shifts, zoom and flips (the book's augmentation)."""
    import keras
    from keras import layers

    n = 300
    source = make_synthetic_source(tmp_path / "src", n, seed=0)
    images = np.stack([np.asarray(Image.open(source / f"{prefix}.{i}.jpg").resize((64, 64)), dtype="float32")
                       for prefix in ("cat", "dog") for i in range(n)])
    labels = np.array([0] * n + [1] * n)
    rng = np.random.default_rng(0)
    order = rng.permutation(2 * n)
    images, labels = images[order], labels[order]
    cut = int(1.5 * n)

    def val_accuracy(train_labels: np.ndarray, val_labels: np.ndarray) -> float:
        keras.utils.set_random_seed(1)
        model = keras.Sequential([
            keras.Input((64, 64, 3)), layers.Rescaling(1 / 255),
            layers.RandomRotation(40 / 360, fill_mode="nearest"),
            layers.RandomTranslation(0.2, 0.2, fill_mode="nearest"),
            layers.RandomZoom(0.2, 0.2, fill_mode="nearest"), layers.RandomFlip("horizontal"),
            layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
            layers.GlobalAveragePooling2D(), layers.Dense(1, activation="sigmoid")])
        model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        history = model.fit(images[:cut], train_labels, validation_data=(images[cut:], val_labels),
                            epochs=8, batch_size=32, verbose=0)
        return history.history["val_accuracy"][-1]

    assert val_accuracy(labels[:cut], labels[cut:]) >= 0.9
    mixed = rng.permutation(labels)  # labels mixed up across the whole set: nothing left to learn
    assert val_accuracy(mixed[:cut], mixed[cut:]) <= 0.62
