"""A model file from elsewhere: its archive and its metadata are checked before anything trusts them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import pytest

from catsdogs.errors import UserError
from catsdogs.metadata import SplitScores, TrainingMetrics
from catsdogs.models.saving import METADATA_ENTRY, ModelInfo, load_model, save_model, update_model_info

SIZE = 32


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(
        inputs)))
    return save_model(model, tmp_path_factory.mktemp("model") / "model.keras", ModelInfo(["cats", "dogs"], SIZE))


def with_metadata(source: Path, target: Path, metadata: object) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for entry in old.infolist():
            if entry.filename != METADATA_ENTRY:
                new.writestr(entry, old.read(entry))
        new.writestr(METADATA_ENTRY, metadata if isinstance(metadata, str) else json.dumps(metadata))
    return target


@pytest.mark.parametrize(("metadata", "words"), [
    ({"class_names": ["cats", "dogs"], "image_size": -3}, "image_size must be a whole number of pixels from 8"),
    ({"class_names": ["cats", "dogs"], "image_size": 40000}, "not 40000"),
    ({"class_names": ["cats", "dogs"], "image_size": "32"}, "not '32'"),
    ({"class_names": ["cats", "dogs"], "image_size": 64}, "does not match the model's input (32 px)"),
    ({"class_names": [], "image_size": SIZE}, "at least 2 distinct names"),
    ({"class_names": ["cats"], "image_size": SIZE}, "at least 2 distinct names"),
    ({"class_names": ["cats", "cats"], "image_size": SIZE}, "at least 2 distinct names"),
    ({"class_names": ["a", "b", "c"], "image_size": SIZE}, "3 class names ['a', 'b', 'c'] for a model with 1 outputs"),
    ({"image_size": SIZE}, "must hold class_names and image_size"),
    ("{not json", "is not valid JSON"),
], ids=["negative-size", "huge-size", "text-size", "other-size", "no-class", "one-class", "twice", "too-many",
        "missing", "not-json"])
def test_odd_metadata_is_a_one_line_error_naming_the_file(saved, tmp_path, metadata, words):
    path = with_metadata(saved, tmp_path / "odd.keras", metadata)
    with pytest.raises(UserError, match="odd.keras") as raised:
        load_model(path)
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_a_zip_bomb_is_refused_before_keras_reads_it(saved, tmp_path):
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(saved) as old, zipfile.ZipFile(bomb, "w") as new:
        for entry in old.infolist():
            if entry.filename.endswith(".h5"):  # the weights, as 64 MB of deflated zeros
                new.writestr(zipfile.ZipInfo(entry.filename), b"\0" * (64 << 20), compress_type=zipfile.ZIP_DEFLATED)
            else:
                new.writestr(entry, old.read(entry))
    assert bomb.stat().st_size < 1 << 20  # 64 MB of zeros deflate to about 64 KB
    with pytest.raises(UserError, match="unpacks to .* Keras stores models uncompressed"):
        load_model(bomb)


def test_update_model_info_keeps_the_weights_and_replaces_the_metadata(saved, tmp_path):
    copy = tmp_path / "copy.keras"
    copy.write_bytes(saved.read_bytes())
    model, info = load_model(copy)
    info = info.with_extra(metrics=TrainingMetrics(test=SplitScores(accuracy=0.9)))
    update_model_info(copy, info)
    again, updated = load_model(copy)
    assert updated.test_accuracy == 0.9 and updated.extra.metrics == info.extra.metrics
    for a, b in zip(model.weights, again.weights):
        assert (a.numpy() == b.numpy()).all()
    with zipfile.ZipFile(copy) as archive:
        assert archive.namelist().count(METADATA_ENTRY) == 1
