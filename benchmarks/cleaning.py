"""Does cleaning help? A model trained on a split with 10 % of its training labels flipped, against the same split
with the audit's training suspects left out.

    python benchmarks/cleaning.py --weights mobilenet_2_5_224_tf_no_top.h5 [--data-dir DATA]

On the by-id split of the Kaggle originals (``common.prepare_data``), as symbolic links: 10 % of the training labels
flipped (seeded, ``audit.noisy_copy``); ``python -m catsdogs.audit`` on it; the cleaned copy leaves out the
training images cleanlab flags (validation and test untouched, so both models are scored on the same images).
MobileNet 0.25 at 224 px, its head trained on cached features (``--recipe frozen``), on each; test accuracy of
both and McNemar's exact test on their per-image correctness (``catsdogs.metrics.mcnemar``).

Written: ``results/cleaning.json``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from audit import noisy_copy
from common import command, prepare_data, print_table, real_photo_arguments, train_mobilenet_head, write_results

from catsdogs.metrics import mcnemar

NOISE = 0.10


def correct_by_path(predictions_csv: Path) -> dict[str, bool]:
    with predictions_csv.open(newline="") as handle:
        return {Path(row["path"]).name: row["true"] == row["predicted"] for row in csv.DictReader(handle)}


def main() -> None:
    args = real_photo_arguments(__doc__ or "")
    data = Path(args.data_dir) if args.data_dir else prepare_data()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        noisy = work / "noisy"
        flipped = noisy_copy(data, noisy, NOISE)
        command("catsdogs.audit", "--data-dir", str(noisy), "--weights", args.weights, "--output", str(work / "audit"))
        with (work / "audit" / "label_issues.csv").open(newline="") as handle:
            suspects = {row["path"] for row in csv.DictReader(handle) if row["split"] == "train"}
        cleaned = work / "cleaned"
        for link in noisy.rglob("*"):
            if link.is_symlink() and str(link) not in suspects:
                target = cleaned / link.relative_to(noisy)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.readlink(link), target)
        rows, correct = [], {}
        for name, folder in (("noisy", noisy), ("cleaned", cleaned)):
            train_mobilenet_head(folder, args.weights, work, name, args.seed, "--verbose", "0")
            command("catsdogs.evaluate", "--model", str(work / "saved" / f"{name}.keras"), "--data-dir", str(folder),
                    "--output", str(work / f"{name}-test"))
            metrics = json.loads((work / f"{name}-test" / "metrics.json").read_text())
            correct[name] = correct_by_path(work / f"{name}-test" / "predictions.csv")
            train_images = sum(1 for _ in (folder / "train").rglob("*.jpg"))
            rows.append({"training split": name, "train images": train_images,
                         "test accuracy": round(metrics["accuracy"], 4),
                         "interval 95": [round(v, 4) for v in metrics["accuracy_interval_95"]],
                         "test ECE": round(metrics["calibration"]["ece"], 4),
                         "test NLL": round(metrics["calibration"]["nll"], 4)})
        shutil.rmtree(work / "features", ignore_errors=True)
    paths = sorted(correct["noisy"])
    assert paths == sorted(correct["cleaned"]), "both models are scored on the same test images"
    test = mcnemar(np.array([correct["noisy"][p] for p in paths]), np.array([correct["cleaned"][p] for p in paths]))
    found = len(suspects & flipped)
    print(f"flipped {len(flipped)} training labels; the audit flagged {len(suspects)} training images, {found} of "
          f"them flipped (precision {found / max(1, len(suspects)):.3f}, recall {found / len(flipped):.3f})")
    shown = [{key: f"{value:.4f}" if isinstance(value, float) else value for key, value in row.items()}
             for row in rows]  # print_table shows floats to one decimal
    print_table(shown, ["training split", "train images", "test accuracy", "interval 95", "test ECE", "test NLL"])
    print(f"McNemar: only noisy right {test['only_first_right']}, only cleaned right {test['only_second_right']}, "
          f"p = {test['p_value']:.4g}")
    write_results("cleaning", {"command": "python benchmarks/cleaning.py --weights <MobileNet 0.25 no-top>",
                               "noise": NOISE, "flipped": len(flipped), "excluded": len(suspects),
                               "excluded_flipped": found, "seed": args.seed, "rows": rows, "mcnemar": test,
                               "model": "mobilenet 0.25, 224 px, --recipe frozen --cache-features"})


if __name__ == "__main__":
    main()
