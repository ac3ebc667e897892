"""data_prep reads only regular files, bounded by the size they report: a device, a FIFO or a socket in a source
(also behind a symbolic link) is named and skipped instead of hanging it or filling memory, and a zip member whose
declared size is too large is refused before it is read."""

from __future__ import annotations

import os
import socket
import zipfile

import pytest
from helpers.commands import run_data_prep
from helpers.data_prep import kaggle_files, write_files

from data_prep import sources


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX's")
def test_devices_fifos_and_sockets_are_named_and_skipped(tmp_path, capsys):
    source = write_files(tmp_path / "source", kaggle_files(5, start=10))
    os.mkfifo(source / "cat.1.jpg")  # reading it would wait for a writer forever
    os.symlink("/dev/zero", source / "cat.2.jpg")  # and this one would never end
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(source / "dog.3.jpg"))
    try:
        code, _, err = run_data_prep(["--source", source, "--out", tmp_path / "prepared", "--train", "3", "--val",
                                      "1", "--test", "1", "--split", "by-id", "--quiet"], capsys)
    finally:
        listening.close()
    assert code == 0 and "Traceback" not in err, err
    for name in ("cat.1.jpg", "cat.2.jpg", "dog.3.jpg"):
        assert f"skipped {name}" in err and "not a regular file" in err.split(f"skipped {name}")[1].splitlines()[0], err


def test_a_zip_member_declaring_too_many_bytes_is_refused_before_it_is_read(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sources, "MAX_SOURCE_FILE_BYTES", 50_000)
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in kaggle_files(5, start=10).items():
            zipped.writestr(f"train/{name}", data)
        zipped.writestr("train/cat.1.jpg", b"\0" * 200_000)  # a few hundred bytes compressed
    code, _, err = run_data_prep(["--source", archive, "--out", tmp_path / "prepared", "--train", "3", "--val", "1",
                                  "--test", "1", "--split", "by-id", "--quiet"], capsys)
    assert code == 0 and "Traceback" not in err, err
    assert "200,000 bytes for it, over the limit of 50,000" in err, err
