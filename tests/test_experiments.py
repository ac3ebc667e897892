"""experiments compare: runs side by side from their folders, the table and the curve overlay."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import run_command
from helpers.training import tiny_config

from catsdogs.errors import UserError
from catsdogs.experiments import main
from catsdogs.metrics import wilson_interval
from catsdogs.training.trainer import train


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from helpers.images import make_split_folder

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


def test_the_ladder_at_a_smoke_budget_writes_its_outputs_and_a_resume_reuses_the_finished_steps(tmp_path, capsys,
                                                                                                monkeypatch):
    from helpers.images import make_split_folder

    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 3, "test": 4})
    working = tmp_path / "working"
    working.mkdir()
    monkeypatch.chdir(working)  # where the ladder once put its feature cache
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
    assert not list(working.iterdir())  # every file under the ladder's folder, the frozen step's cache too
    assert Path(configs[2]["feature_cache"]).resolve().is_relative_to(folder.resolve())

    runs = sorted((folder / "runs").iterdir())
    stamps = [(run / "metrics.json").stat().st_mtime_ns for run in runs]
    assert main(["ladder", "--resume", str(folder), "--verbose", "0"]) == 0  # every step finished: all reused
    assert sorted((folder / "runs").iterdir()) == runs
    assert [(run / "metrics.json").stat().st_mtime_ns for run in runs] == stamps


def test_ablate_writes_a_mean_and_std_table_per_cell_and_a_resume_reuses_every_run(tmp_path, capsys):
    from helpers.images import make_split_folder

    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 3, "test": 4})
    assert main(["ablate", "--model", "small_cnn", "--vary", "dropout=0,0.5", "--vary", "augment=off,on",
                 "--seeds", "2", "--epochs", "1", "--set", "image_size=48", "--set", "batch_size=4",
                 "--data-dir", str(data), "--output", str(tmp_path / "exp")]) == 0
    [folder] = (tmp_path / "exp").iterdir()
    assert {"results.csv", "results.json", "results.md", "ablate.json", "effect-dropout.png",
            "effect-augment.png"} <= {p.name for p in folder.iterdir()}
    rows = json.loads((folder / "results.json").read_text())
    assert [(row["dropout"], row["augment"]) for row in rows] == [("0", "off"), ("0", "on"), ("0.5", "off"),
                                                                   ("0.5", "on")]
    for row in rows:  # each cell: its two seeds' own test accuracies, their mean and sample standard deviation
        configs = [json.loads((Path(run) / "config.json").read_text()) for run in row["runs"]]
        assert [(c["dropout"], c["augment"], c["seed"], c["image_size"], c["epochs"]) for c in configs] == [
            (float(row["dropout"]), row["augment"] == "on", seed, 48, 1) for seed in (1337, 1338)]
        accuracies = [json.loads((Path(run) / "metrics.json").read_text())["test"]["accuracy"] for run in row["runs"]]
        assert row["seed_accuracies"] == accuracies and row["mean"] == pytest.approx(np.mean(accuracies))
        assert row["std"] == pytest.approx(np.std(accuracies, ddof=1))
        assert row["parameters"] == json.loads((Path(row["runs"][0]) / "metrics.json").read_text())["parameters"][
            "total"]
    out = capsys.readouterr().out
    assert "| dropout | augment | test_accuracy | seeds |" in out
    assert f"| 0.5 | on | {rows[3]['mean']:.4f} ± {rows[3]['std']:.4f} | 2 |" in out

    runs = sorted((folder / "runs").iterdir())
    stamps = [(run / "metrics.json").stat().st_mtime_ns for run in runs]
    assert main(["ablate", "--resume", str(folder)]) == 0
    assert sorted((folder / "runs").iterdir()) == runs and len(runs) == 8
    assert [(run / "metrics.json").stat().st_mtime_ns for run in runs] == stamps


@pytest.mark.parametrize("flags, message", [
    (["--vary", "dropuot=0,0.5"], "--vary dropuot: not a setting; choose one of"),
    (["--vary", "batchnorm=maybe"], "--vary batchnorm: 'maybe' is not on or off"),
    (["--vary", "epochs=1,two"], "--vary epochs: 'two' is not a whole number"),
    (["--vary", "dropout=0,1.5"], "--dropout must be below 1"),  # every cell checked before the first run
    (["--vary", "dropout=0", "--vary", "dropout=0.5"], "each setting may be varied once"),
    (["--vary", "lr=0.1", "--set", "epochs=1,2"], "--set takes one value"),
    ([], "name at least one setting to vary"),
])
def test_ablate_refuses_bad_grids_in_one_line_before_training(tmp_path, capsys, flags, message):
    code, _, err = run_command(main, ["ablate", *flags, "--data-dir", tmp_path, "--output", tmp_path / "exp"], capsys)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "exp").exists()


def test_vary_values_take_the_settings_types():
    from catsdogs.studies.ablation import parse_variation

    assert parse_variation("batchnorm=off,on").values == (False, True)
    assert parse_variation("units=400+200,800").values == ([400, 200], [800])
    assert parse_variation("augment_params.rotation_range=0,40").values == (0.0, 40.0)
    assert parse_variation("weights=none,imagenet").values == (None, "imagenet")
    assert parse_variation("fine-tune-lr=1e-5").key == "fine_tune_lr"


def test_a_ladder_killed_in_its_first_step_can_be_resumed(tmp_path, monkeypatch):
    from helpers.images import make_split_folder

    from catsdogs.studies import ladder

    data = make_split_folder(tmp_path / "data", {"train": 4, "validation": 2, "test": 2})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed in the first step")

    monkeypatch.setattr(ladder, "run_once", killed)
    with pytest.raises(KeyboardInterrupt):
        main(["ladder", "--base", "mobilenet", "--weights", "none", "--budget", "smoke", "--data-dir", str(data),
              "--image-size", "48", "--output", str(tmp_path / "exp"), "--verbose", "0"])
    [folder] = (tmp_path / "exp").iterdir()
    assert (folder / "ladder.json").is_file()
    with pytest.raises(KeyboardInterrupt):  # --resume takes the folder (it once said "not a ladder folder")
        main(["ladder", "--resume", str(folder), "--verbose", "0"])
