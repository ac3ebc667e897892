"""``train --class-weight balanced``: the loss weighs each image as Keras's ``fit(class_weight=...)`` would, a
blended image (mixup, CutMix) weighs as its labels blend, and a run on an unbalanced split records and uses the
weights, on every backend and pipeline (this file also runs under ``KERAS_BACKEND=jax``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.images import make_split_folder
from helpers.training import tiny_config

from catsdogs.data.mixing import mix_batch
from catsdogs.training.fitting import ClassWeightedLoss, class_weights, compile_model
from catsdogs.training.trainer import train


def one_step(config, x: np.ndarray, labels: np.ndarray, classes: int, weights=None, keras_class_weight=None):
    """A small dense model from fixed weights after one full-batch step of plain SGD."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((x.shape[1],)),
                              keras.layers.Dense(1 if classes == 2 else classes,
                                                 activation="sigmoid" if classes == 2 else "softmax")])
    compile_model(model, config, 0.5, classes, weights)
    model.fit(x, labels, batch_size=len(x), epochs=1, shuffle=False, verbose=0, class_weight=keras_class_weight)
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.parametrize("classes", [2, 3])
def test_class_weights_change_the_loss_as_kerass_class_weight_would(tmp_path, classes):
    rng = np.random.default_rng(0)
    labels = np.array([0] * 9 + [1] * 3 + ([2] * 2 if classes == 3 else []))
    x = rng.normal(size=(len(labels), 5)).astype("float32")
    config = tiny_config(tmp_path, tmp_path, class_weight="balanced", optimizer="sgd", momentum=0.0)
    weights = class_weights(config, labels, classes)
    counts = np.bincount(labels)
    assert weights == pytest.approx([len(labels) / (classes * count) for count in counts])
    ours = one_step(config, x, labels, classes, weights)
    keras_way = one_step(config, x, labels, classes, keras_class_weight=dict(enumerate(weights)))
    plain = one_step(config, x, labels, classes)
    for mine, theirs in zip(ours, keras_way):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert not all(np.allclose(mine, unweighted, atol=1e-4) for mine, unweighted in zip(ours, plain))
    assert class_weights(tiny_config(tmp_path, tmp_path), labels, classes) is None  # --class-weight none


@pytest.mark.parametrize("classes", [2, 3])
def test_a_blended_image_weighs_as_its_labels_blend(classes):
    rng = np.random.default_rng(1)
    labels = np.array([0, 0, 1, 1, 0, 2 % classes])
    images = rng.uniform(0, 255, (len(labels), 8, 8, 3)).astype("float32")
    table = [0.5, 3.0, 1.5][:classes]
    loss = ClassWeightedLoss(keras.losses.BinaryCrossentropy() if classes == 2 else
                             keras.losses.CategoricalCrossentropy(), table)
    _, targets = mix_batch(images, labels, classes, 0.4, 0.0, rng)
    partner = labels[::-1]
    # each image's share of its own class: the blend's weight on its own label (partners of one class: any share)
    own = targets if classes == 2 else targets[np.arange(len(labels)), labels]
    lam = np.where(labels == 1, own, 1 - own) if classes == 2 else own
    expected = np.where(labels == partner, np.take(table, labels),
                        lam * np.take(table, labels) + (1 - lam) * np.take(table, partner))
    predictions = np.full((len(labels), 1 if classes == 2 else classes), 1.0 / classes, "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss.weights_of(targets, predictions)), expected, rtol=1e-6)


@pytest.mark.parametrize("pipeline", ["tf.data", "pydataset"])
def test_a_balanced_run_on_an_unbalanced_split_trains_with_the_weights_and_reports_balanced_accuracy(tmp_path,
                                                                                                       pipeline):
    data = make_split_folder(tmp_path / "data", {"train": 16, "validation": 3, "test": 3})
    for dog in sorted((data / "train" / "dogs").iterdir())[4:]:  # 16 cats : 4 dogs
        dog.unlink()
    run = train(tiny_config(data, tmp_path, class_weight="balanced", mixup=0.2, pipeline=pipeline))
    assert isinstance(run.model.loss, ClassWeightedLoss)
    cats, dogs = (len(list((data / "train" / name).iterdir())) for name in ("cats", "dogs"))
    assert run.model.loss.class_weights == pytest.approx([(cats + dogs) / (2 * cats), (cats + dogs) / (2 * dogs)])
    assert cats > dogs
    test = run.metrics["test"]
    assert test["balanced_accuracy"] == pytest.approx(np.mean([s["recall"] for s in test["per_class"].values()]))
    assert test["worst_class"]["recall"] == min(s["recall"] for s in test["per_class"].values())
