"""experiments compare: runs side by side from their folders, the table and the curve overlay."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_training import tiny_config

from catsdogs.errors import UserError
from catsdogs.experiments import main
from catsdogs.metrics import wilson_interval
from catsdogs.training.trainer import train


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from conftest import make_split_folder

    root = tmp_path_factory.mktemp("compare")
    data = make_split_folder(root / "data", {"train": 6, "validation": 3, "test": 3})
    first = train(tiny_config(data, root, epochs=1, name="one"))
    second = train(tiny_config(data, root, epochs=2, name="two"))
    return root, first, second


def test_compare_all_prints_one_row_per_run_and_writes_the_table_and_curves(two_runs, capsys):
    root, first, second = two_runs
    (root / "runs" / "not-a-run").mkdir()  # no config.json: not listed
    assert main(["compare", "--all", "--runs-dir", str(root / "runs"), "--output", str(root / "experiments"),
                 "--format", "csv"]) == 0
    out = capsys.readouterr()
    rows = list(csv.DictReader(out.out.splitlines()))
    assert [row["run"] for row in rows] == [first.run_dir.name, second.run_dir.name]
    assert [row["epochs"] for row in rows] == ["1", "2"] and rows[0]["data"] == rows[1]["data"] != ""
    metrics = json.loads((second.run_dir / "metrics.json").read_text())["test"]
    low, high = wilson_interval(round(metrics["accuracy"] * 6), 6)
    assert rows[1]["test_accuracy"] == f"{metrics['accuracy']:.4g}" and rows[1]["interval_95"] == f"{low:.3f}-{high:.3f}"
    [folder] = (root / "experiments").iterdir()
    assert {p.name for p in folder.iterdir()} == {"comparison.md", "comparison.csv", "comparison.json", "val_accuracy.png"}
    assert (folder / "val_accuracy.png").stat().st_size > 5000
    assert (folder / "comparison.md").read_text().count(f"| {first.run_dir.name} |") == 1


def test_compare_sorts_names_bad_folders_and_refuses_nothing(two_runs, tmp_path, capsys):
    root, first, second = two_runs
    assert main(["compare", str(second.run_dir), str(first.run_dir), str(tmp_path), "--sort", "epochs",
                 "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    table = [line for line in out.out.splitlines() if line.startswith("| 2026") or line.startswith("| 20")]
    assert [line.split(" | ")[0].strip("| ") for line in table] == [first.run_dir.name, second.run_dir.name]
    assert f"skipped {tmp_path}: no readable config.json" in out.err
    with pytest.raises(UserError, match="no run to compare"):
        main(["compare", str(tmp_path)])
    with pytest.raises(UserError, match="not both"):
        main(["compare", str(first.run_dir), "--all"])


def test_the_ladder_at_a_smoke_budget_writes_its_outputs_and_a_resume_reuses_the_finished_steps(tmp_path, capsys):
    from conftest import make_split_folder

    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 3, "test": 4})
    flags = ["ladder", "--base", "mobilenet", "--alpha", "0.25", "--weights", "none", "--budget", "smoke",
             "--data-dir", str(data), "--image-size", "48", "--batch-size", "4", "--output", str(tmp_path / "exp"),
             "--verbose", "0"]
    assert main(flags) == 0
    [folder] = (tmp_path / "exp").iterdir()
    assert {"results.csv", "results.json", "results.md", "ladder.png", "ladder.json"} <= {p.name for p in folder.iterdir()}
    rows = json.loads((folder / "results.json").read_text())
    assert [row["step"] for row in rows] == ["small_cnn", "augmented", "frozen", "fine_tuned"]
    assert [row["report_accuracy"] for row in rows] == [0.733, 0.818, 0.884, 0.941]
    assert all(row["test_images"] == 8 and row["interval_95"][0] <= row["accuracy"] <= row["interval_95"][1]
               for row in rows)
    assert "vs_previous" not in rows[0] and all(0 <= row["vs_previous"]["p_value"] <= 1 for row in rows[1:])
    configs = [json.loads((Path(row["run"]) / "config.json").read_text()) for row in rows]
    assert [(c["model"], c["augment"], c["cache_features"]) for c in configs] == [
        ("small_cnn", False, False), ("small_cnn", True, False), ("mobilenet", False, True), ("mobilenet", True, False)]
    assert "| + augmentation |" in capsys.readouterr().out

    runs = sorted((folder / "runs").iterdir())
    stamps = [(run / "metrics.json").stat().st_mtime_ns for run in runs]
    assert main(["ladder", "--resume", str(folder), "--verbose", "0"]) == 0  # every step finished: all reused
    assert sorted((folder / "runs").iterdir()) == runs
    assert [(run / "metrics.json").stat().st_mtime_ns for run in runs] == stamps
