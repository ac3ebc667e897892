"""data_prep's ready-made N-class sets (scikit-learn's digits, keras.datasets) and split sizes as fractions."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.commands import assert_one_line_error, run_data_prep
from helpers.data_prep import jpeg, read_manifest, read_summary, write_files
from PIL import Image

from catsdogs.errors import UserError
from data_prep import SplitCounts, SplitFractions
from data_prep.datasets import CLASS_NAMES, write_class_folders


def test_digits_become_ten_class_folders_of_32_px_split_50_25_25_per_class(tmp_path, capsys):
    from sklearn.datasets import load_digits

    code, _, err = run_data_prep(["--source", "digits", "--out", tmp_path / "digits", "--quiet"], capsys)
    assert code == 0 and err == ""
    summary = read_summary(tmp_path / "digits")
    assert summary["classes"] == [str(d) for d in range(10)] and summary["dataset"] == {"name": "digits", "classes": 10}
    assert summary["requested_fractions"] == {"train": 0.5, "validation": 0.25, "test": 0.25}
    per_class = np.bincount(load_digits().target)
    for digit, available in enumerate(per_class):  # every image used, a quarter each to validation and test
        counts = [summary["counts"][split][str(digit)] for split in ("train", "validation", "test")]
        assert sum(counts) == available and counts[1] == counts[2] == round(available / 4)
    rows = read_manifest(tmp_path / "digits")
    assert len(rows) == per_class.sum() == 1797
    with Image.open(tmp_path / "digits" / rows[0]["path"]) as image:
        assert image.size == (32, 32) and image.format == "JPEG"
    assert not list(tmp_path.glob("catsdogs-digits-*"))  # the written source is a temporary folder, removed


def test_fractions_split_each_class_in_proportion_whatever_its_size(tmp_path, capsys):
    files = {f"{name}/{i}.jpg": jpeg(100 * k + i) for k, (name, n) in enumerate((("ant", 8), ("bee", 12), ("cow", 20)))
             for i in range(n)}
    source = write_files(tmp_path / "src", files)
    code, _, _ = run_data_prep(["--source", source, "--out", tmp_path / "out", "--quiet",
                           "--train", "0.5", "--val", "0.25", "--test", "0.25"], capsys)
    assert code == 0
    counts = read_summary(tmp_path / "out")["counts"]
    assert {name: [counts[s][name] for s in ("train", "validation", "test")] for name in ("ant", "bee", "cow")} == {
        "ant": [4, 2, 2], "bee": [6, 3, 3], "cow": [10, 5, 5]}
    code, _, _ = run_data_prep(["--source", source, "--out", tmp_path / "two", "--quiet", "--train", "0.75", "--val",
                           "0.25"], capsys)  # a split given no fraction gets none
    assert code == 0 and set(read_summary(tmp_path / "two")["counts"]) == {"train", "validation"}


@pytest.mark.parametrize("flags, words", [
    (["--train", "0.5", "--val", "100"], ["all as counts", "or all as fractions"]),
    (["--train", "0.8", "--val", "0.2", "--test", "0.2"], ["add up to 1.2", "more than 1"]),
    (["--test", "1.5"], ["--test", "between 0 and 1"]),
])
def test_bad_fractions_are_one_line_errors(tmp_path, capsys, flags, words):
    source = write_files(tmp_path / "src", {f"{c}/{i}.jpg": jpeg(i) for c in ("a", "b") for i in range(4)})
    code, _, err = run_data_prep(["--source", source, "--out", tmp_path / "out", *flags], capsys)
    assert_one_line_error(code, err, *words)


def test_fraction_counts_round_validation_and_test_and_give_train_the_rest():
    assert SplitFractions(0.7, 0.15, 0.15).counts_for(178) == SplitCounts(124, 27, 27)
    assert SplitFractions(0.5, 0.25, 0.25).counts_for(3) == SplitCounts(1, 1, 1)
    assert SplitFractions(0.5, 0.0, 0.25).counts_for(10) == SplitCounts(5, 0, 2)  # not all: train its share
    with pytest.raises(UserError, match="between 0 and 1"):
        SplitFractions(-0.1, 0.5, 0.5)


def test_keras_datasets_offline_is_one_line_naming_the_way_out(tmp_path, capsys, monkeypatch):
    import keras

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz: "
                        "None -- [Errno -3] Temporary failure in name resolution\nmore detail")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_network)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    code, _, err = run_data_prep(["--source", "mnist", "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "cannot get mnist through keras.datasets", "URL fetch failure",
                          "~/.keras/datasets", "--source digits")
    assert not (tmp_path / "out").exists()


def test_a_keras_dataset_is_pooled_and_written_with_its_class_names(tmp_path, capsys, monkeypatch):
    import keras

    rng = np.random.default_rng(0)

    def tiny_cifar():  # CIFAR-10's shapes: (N, 32, 32, 3) uint8, labels (N, 1)
        def part(n):
            return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n).reshape(-1, 1) % 10
        return part(40), part(20)

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", tiny_cifar)
    code, _, _ = run_data_prep(["--source", "cifar10", "--out", tmp_path / "out", "--quiet", "--split", "by-id"], capsys)
    assert code == 0
    summary = read_summary(tmp_path / "out")
    assert summary["classes"] == sorted(CLASS_NAMES["cifar10"])
    assert sum(summary["counts"][s]["airplane"] for s in summary["counts"]) == 6  # 4 + 2 pooled
    assert read_manifest(tmp_path / "out")[0]["source"].startswith("airplane/cifar10-")


def test_writing_class_folders_refuses_a_folder_in_use_and_checks_the_labels(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    images = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(UserError, match="not empty"):
        write_class_folders(images, np.array([0, 1]), ["a", "b"], tmp_path / "used", "x")
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="labels in 0..1"):
        write_class_folders(images, np.array([0, 2]), ["a", "b"], tmp_path / "new", "x")
