"""Checkpoints written behind training (``training.checkpoints``) and the one-iterator epochs of ``fit_phases``."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from catsdogs.training.checkpoints import SnapshotWriter, load_snapshot, model_variables
from catsdogs.training.fitting import repeated


def tiny_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.train_on_batch(np.ones((2, 4), np.float32), np.ones((2, 1), np.float32))  # builds the optimizer state
    return model


def values(model: keras.Model, with_optimizer: bool = True) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in model_variables(model, with_optimizer)]


def test_a_snapshot_holds_the_values_at_its_time_not_at_its_write(tmp_path):
    model = tiny_model()
    before = values(model)
    writer, training_went_on = SnapshotWriter(), threading.Event()
    writer.submit(lambda: training_went_on.wait(5) and None)  # the write cannot start before the update
    writer.save(tmp_path / "a.weights.npz", model_variables(model, with_optimizer=True))
    model.train_on_batch(np.full((2, 4), 3, np.float32), np.zeros((2, 1), np.float32))  # weights and Adam move on
    training_went_on.set()
    writer.flush()
    assert any(not np.array_equal(a, b) for a, b in zip(before, values(model)))
    load_snapshot(tmp_path / "a.weights.npz", model_variables(model, with_optimizer=True))
    for expected, restored in zip(before, values(model)):
        np.testing.assert_array_equal(restored, expected)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 1  # the optimizer's step count came back too


def test_a_snapshot_of_another_model_is_refused_whole(tmp_path):
    small, other = tiny_model(), keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    writer = SnapshotWriter()
    writer.save(tmp_path / "a.weights.npz", model_variables(small, with_optimizer=False))
    writer.flush()
    untouched = values(other, with_optimizer=False)
    with pytest.raises(ValueError, match="another model"):
        load_snapshot(tmp_path / "a.weights.npz", model_variables(other, with_optimizer=False))
    for expected, now in zip(untouched, values(other, with_optimizer=False)):
        np.testing.assert_array_equal(now, expected)


def test_writes_happen_in_order_off_the_calling_thread_and_a_failure_surfaces(tmp_path):
    writer = SnapshotWriter()
    order, threads = [], []
    release = threading.Event()

    def slow_first() -> None:
        release.wait(5)
        order.append("first")
        threads.append(threading.get_ident())

    writer.submit(slow_first)
    model = tiny_model()
    writer.save(tmp_path / "b.weights.npz", model_variables(model, False), then=lambda: order.append("after write"))
    assert not (tmp_path / "b.weights.npz").exists()  # queued behind the first job: the caller did not wait
    release.set()
    writer.flush()
    assert order == ["first", "after write"]
    assert threads[0] != threading.get_ident()
    assert (tmp_path / "b.weights.npz").is_file()

    def failing() -> None:
        raise OSError("disk full")

    writer.submit(failing)
    with pytest.raises(OSError, match="disk full"):
        writer.flush()


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path):
    model = tiny_model()
    path = tmp_path / "best.weights.npz"
    writer = SnapshotWriter()
    writer.save(path, model_variables(model, False))
    writer.flush()
    first = path.read_bytes()
    writer.save(path / "not-a-folder" / "x.weights.npz", model_variables(model, False))  # a parent that is a file
    with pytest.raises(OSError):
        writer.flush()
    assert path.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["best.weights.npz"]  # no temporary file left behind


def test_repeated_epochs_each_see_every_example_once_and_reshuffle():
    dataset = tf.data.Dataset.range(10).shuffle(10, seed=1, reshuffle_each_iteration=True).batch(4)
    looping, steps = repeated(dataset)
    assert steps == 3  # the partial last batch is a step
    batches = list(looping.take(2 * steps).as_numpy_iterator())
    first, second = np.concatenate(batches[:steps]), np.concatenate(batches[steps:])
    assert sorted(first) == sorted(second) == list(range(10))
    assert list(first) != list(second)
    unknown = dataset.filter(lambda x: tf.size(x) > 0)
    assert repeated(unknown) == (unknown, None)
    assert repeated(None) == (None, None)


def test_an_interrupted_fit_still_finds_its_last_checkpoint_whole(tmp_path):
    model = tiny_model()
    release = threading.Event()
    with pytest.raises(KeyboardInterrupt), SnapshotWriter() as writer:
        writer.submit(lambda: release.wait(5) and None)
        writer.save(tmp_path / "c.weights.npz", model_variables(model, True))
        threading.Timer(0.2, release.set).start()
        raise KeyboardInterrupt  # as Ctrl-C inside fit: the writer is waited for on the way out
    assert (tmp_path / "c.weights.npz").is_file()
