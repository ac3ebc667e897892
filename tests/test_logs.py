"""What train writes when its output goes to a file: one line per epoch, no escape codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers.images import make_split_folder


def test_train_into_a_file_writes_one_line_per_epoch_and_no_escape_codes(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 4, "validation": 2})
    log = tmp_path / "log.txt"
    with log.open("w") as handle:  # a file, not a terminal: as `python -m catsdogs.train ... > log.txt`
        subprocess.run([sys.executable, "-m", "catsdogs.train", "--data-dir", str(data), "--image-size", "48",
                        "--epochs", "3", "--batch-size", "4", "--output", str(tmp_path / "runs"),
                        "--saved-models-dir", str(tmp_path / "saved")],
                       stdout=handle, stderr=subprocess.STDOUT, check=True, timeout=300,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    text = log.read_text()
    assert "\x1b" not in text and "\r" not in text
    epoch_lines = [line for line in text.splitlines() if re.match(r"\d+/\d+ - \d+s - .*val_accuracy", line)]
    assert len(epoch_lines) == 3, text
    assert sum("Epoch " in line for line in text.splitlines()) == 3
