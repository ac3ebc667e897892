"""Writing: whole files or none, new names never replacing others, output folders apart from the inputs;
and a kill -9 in the middle of writing a model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from catsdogs.errors import UserError
from catsdogs.outputs import (
    OUTPUT_MARKER,
    TEMP_PREFIX,
    atomic_path,
    check_output_file,
    claim_output_dir,
    new_folder,
    publish_versioned,
    write_text,
)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = write_text(tmp_path / "metrics.json", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_publish_versioned_never_replaces_a_model(tmp_path):
    source = tmp_path / "model.keras"
    source.write_bytes(b"new model")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "vgg19.keras").write_bytes(b"old model")
    first = publish_versioned(source, saved, "vgg19", ".keras")
    second = publish_versioned(source, saved, "vgg19", ".keras")
    assert (first.name, second.name) == ("vgg19-2.keras", "vgg19-3.keras")
    assert (saved / "vgg19.keras").read_bytes() == b"old model"
    assert not [p for p in saved.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_concurrent_publishers_each_get_their_own_name(tmp_path):
    source = tmp_path / "model.keras"
    source.write_bytes(os.urandom(1 << 20))
    names: list[Path] = []
    threads = [threading.Thread(target=lambda: names.append(publish_versioned(source, tmp_path / "saved", "m",
                                                                              ".keras"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({path.name for path in names}) == 6
    assert all(path.read_bytes() == source.read_bytes() for path in names)


def test_new_folder_is_exclusive(tmp_path):
    folders = [new_folder(tmp_path, "20261125-120000-small_cnn") for _ in range(3)]
    assert [f.name for f in folders] == ["20261125-120000-small_cnn", "20261125-120000-small_cnn-2",
                                         "20261125-120000-small_cnn-3"]


def test_claim_output_dir_refuses_inputs_files_and_foreign_folders(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="overlaps the input"):
        claim_output_dir(photos, [photos / "cat.jpg"], "explain")
    with pytest.raises(UserError, match="overlaps the input"):
        claim_output_dir(photos / "overlays", [photos], "explain")  # inside an input folder
    with pytest.raises(UserError, match="is a file"):
        claim_output_dir(photos / "cat.jpg", [], "explain")
    with pytest.raises(UserError, match="did not write"):
        claim_output_dir(photos, [], "explain")
    out = claim_output_dir(tmp_path / "out", [photos])
    assert (out / OUTPUT_MARKER).is_file()
    (out / "cat.jpg.png").write_bytes(b"overlay")
    assert claim_output_dir(out, [photos]) == out  # a folder catsdogs wrote: reused


def test_check_output_file_refuses_inputs_folders_and_existing_files(tmp_path):
    image = tmp_path / "2.jpg"
    image.write_bytes(b"x")
    with pytest.raises(UserError, match="one of the inputs"):
        check_output_file(image, [image], "kaggle_submission", force=True)
    with pytest.raises(UserError, match="is a folder"):
        check_output_file(tmp_path, [], "kaggle_submission")
    (tmp_path / "submission.csv").write_text("id,label\n")
    with pytest.raises(UserError) as refused:
        check_output_file(tmp_path / "submission.csv", [image], "kaggle_submission")
    assert "kaggle_submission=" in str(refused.value) and "pass force to replace it" in str(refused.value)
    assert refused.value.worded().startswith("--kaggle-submission ") and "pass --force" in refused.value.worded()
    assert check_output_file(tmp_path / "submission.csv", [image], "kaggle_submission", force=True)


_SAVE_FOREVER = textwrap.dedent("""
    import sys
    import keras
    from catsdogs.models.saving import ModelInfo, save_model
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    print("ready", flush=True)
    while True:
        save_model(model, sys.argv[1], ModelInfo(["cats", "dogs"], 32))
""")


def test_kill_during_a_model_write_leaves_the_previous_whole_model(tmp_path):
    """kill -9 at moments spread over the writes: the file always loads, and no temporary is left visible."""
    from catsdogs.models.saving import load_model
    from catsdogs.runtime.catalog import saved_model_files

    path = tmp_path / "saved" / "small.keras"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for delay in (0.05, 0.13, 0.31):
        child = subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, str(path)], stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        model, info = load_model(path)
        assert info.class_names == ["cats", "dogs"] and model.output_shape == (None, 1)
        assert saved_model_files(path.parent) == [path]


def test_writes_work_where_folders_cannot_be_opened_as_files(tmp_path, monkeypatch):
    """Windows has no os.O_DIRECTORY and refuses to open a folder as a file: a model's write still completes."""
    real_open = os.open

    def windows_open(path, flags, *args, **kwargs):
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.delattr(os, "O_DIRECTORY")
    monkeypatch.setattr(os, "open", windows_open)
    written = write_text(tmp_path / "model.md", "card", fsync=True)
    source = write_text(tmp_path / "model.keras", "weights")
    published = publish_versioned(source, tmp_path / "saved_models", "model", ".keras")
    assert written.read_text() == "card" and published.read_text() == "weights"
