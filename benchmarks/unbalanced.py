"""Unbalanced classes on real photos: what ``--class-weight balanced`` and ``evaluate --choose-threshold`` do.

    python benchmarks/unbalanced.py --weights mobilenet_2_5_224_tf_no_top.h5 [--data-dir DATA]

From the by-id split of the Kaggle originals (``common.prepare_data``): a training split of 1,000 cats and 100
dogs, a validation split in the same 10 : 1 proportions (500 : 50), and the test split kept balanced (500 : 500),
all symbolic links. MobileNet 0.25 at 224 px, its head trained on cached features (``--recipe frozen``), once
with ``--class-weight none`` and once with ``balanced``, each scored on test as trained and with the threshold
``evaluate --choose-threshold`` picks on validation: accuracy, balanced accuracy, and the dogs' recall (the small
class). Every step goes through the commands, as a user would run them.

Written: ``results/unbalanced.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import command, prepare_data, print_table, real_photo_arguments, train_mobilenet_head, write_results

from catsdogs.data.files import read_splits

TRAIN, VALIDATION = {"cats": 1000, "dogs": 100}, {"cats": 500, "dogs": 50}


def unbalanced_copy(data: Path, target: Path, seed: int = 0) -> dict[str, dict[str, int]]:
    """``data`` as symbolic links under ``target``: training and validation cut to ``TRAIN`` / ``VALIDATION`` per
    class (a seeded choice), test whole; the counts per split and class."""
    rng = np.random.default_rng(seed)
    counts: dict[str, dict[str, int]] = {}
    for split, folder in read_splits(data).items():
        wanted = {"train": TRAIN, "validation": VALIDATION}.get(split)
        counts[split] = {}
        for label, name in enumerate(folder.class_names):
            paths = [path for path, each in zip(folder.paths, folder.labels) if each == label]
            if wanted is not None:
                paths = sorted(rng.choice(paths, wanted[name], replace=False).tolist())
            for path in paths:
                link = target / split / name / Path(path).name
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.abspath(path), link)
            counts[split][name] = len(paths)
    return counts


def scores(metrics_file: Path) -> dict[str, Any]:
    metrics = json.loads(metrics_file.read_text())
    return {"accuracy": metrics["accuracy"], "balanced_accuracy": metrics["balanced_accuracy"],
            "dog_recall": metrics["per_class"]["dogs"]["recall"], "cat_recall": metrics["per_class"]["cats"]["recall"],
            "threshold": metrics.get("threshold")}


def main() -> None:
    args = real_photo_arguments(__doc__ or "")
    data = Path(args.data_dir) if args.data_dir else prepare_data()
    rows, runs = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        counts = unbalanced_copy(data, work / "data")
        print(f"split: {counts}")
        for weighting in ("none", "balanced"):
            # the first run also computes the cached features, which the second reads
            seconds = train_mobilenet_head(work / "data", args.weights, work, weighting, args.seed, "--class-weight",
                                           weighting, "--verbose", "2")
            model = work / "saved" / f"{weighting}.keras"
            command("catsdogs.evaluate", "--model", str(model), "--data-dir", str(work / "data"),
                    "--output", str(work / f"{weighting}-test"))
            command("catsdogs.evaluate", "--model", str(model), "--data-dir", str(work / "data"), "--choose-threshold",
                    "--output", str(work / f"{weighting}-threshold-test"))
            tuned = json.loads(subprocess.run(
                [sys.executable, "-c", "import json, sys; from catsdogs.models.saving import load_model; "
                 "print(json.dumps(load_model(sys.argv[1])[1].extra.threshold.model_dump()))",
                 str(work / "saved" / f"{weighting}-threshold.keras")],
                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            runs[weighting] = {"train_seconds": seconds, "threshold_choice": tuned}
            rows.append({"class weight": weighting, "decision": "argmax (0.5)", "train s": seconds,
                         **scores(work / f"{weighting}-test" / "metrics.json")})
            rows.append({"class weight": weighting, "decision": f"threshold {tuned['threshold']:.3f}",
                         **scores(work / f"{weighting}-threshold-test" / "metrics.json")})
    for row in rows:
        for key in ("accuracy", "balanced_accuracy", "dog_recall", "cat_recall"):
            row[key] = round(row[key], 4)
    shown = [{key: f"{value:.4f}" if key in ("accuracy", "balanced_accuracy", "dog_recall", "cat_recall") else value
              for key, value in row.items()} for row in rows]  # print_table shows floats to one decimal
    print_table(shown, ["class weight", "decision", "accuracy", "balanced_accuracy", "dog_recall", "cat_recall",
                        "train s"])
    write_results("unbalanced", {"command": "python benchmarks/unbalanced.py --weights <MobileNet 0.25 no-top>",
                                 "split": counts, "model": "mobilenet 0.25, 224 px, --recipe frozen --cache-features",
                                 "seed": args.seed, "rows": rows, "runs": runs})


if __name__ == "__main__":
    main()
