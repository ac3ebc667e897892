"""What train writes when its output goes to a file: one line per epoch, no escape codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers.commands import run_command
from helpers.images import make_split_folder

from catsdogs.train import main as train_main


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


def test_the_library_logs_and_the_command_shows_reports_on_stdout_and_skipped_files_on_stderr(tmp_path, capsys, caplog):
    data = make_split_folder(tmp_path / "data", {"train": 4, "validation": 2})
    (data / "train" / "cats" / "empty.jpg").write_bytes(b"")
    argv = ["--data-dir", data, "--image-size", "48", "--epochs", "1", "--batch-size", "4", "--verbose", "2",
            "--output", tmp_path / "runs", "--saved-models-dir", tmp_path / "saved"]
    code, out, err = run_command(train_main, argv, capsys)
    assert code == 0
    assert "run directory: " in out and f"saved {tmp_path / 'saved' / 'small_cnn.keras'}" in out
    assert "skipped " in err and "empty.jpg" in err and "skipped" not in out
    # What the command showed came through logging, from the library's own loggers.
    records = {record.name: record for record in caplog.records}
    assert records["catsdogs.training.trainer"].levelname in ("INFO", "WARNING")
    assert any(r.levelname == "WARNING" and "empty.jpg" in r.getMessage() for r in caplog.records)
