"""The audit on real photos: planted label noise found, planted leaks found, and what it flags in the real split.

    python benchmarks/audit.py --weights mobilenet_2_5_224_tf_no_top.h5 [--data-dir DATA]

On the by-id split of the Kaggle originals (1,000 / 500 / 500 per class):

1. **The command, timed**: ``python -m catsdogs.audit`` end to end on a copy of the split (symbolic links)
   with 5 % of the training labels flipped (seeded): wall seconds (acceptance: at most 5 minutes), and its
   top-k suspects (k = the number flipped) against the flipped images.
2. **Label noise at 2, 5 and 10 %**: the same features (computed once), the label check alone; precision and
   recall of the top k and top 2k suspects, and of cleanlab's own verdict (acceptance at 5 %: recall at k >= 0.85).
3. **Planted leaks**: 20 training photos copied into test, each cropped by 5 %, resized to 90 % and re-encoded
   at JPEG quality 60; how many of the 20 pairs the near-duplicate check reports, and the pairs it reports on the
   unmodified split (``results/audit-pairs.png``, for a person to judge).
4. **The real split**: the top 30 label suspects as a contact sheet (``results/audit-suspects.png``).

Written: ``results/audit.json`` and the two PNGs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, prepare_data, print_table, write_results
from PIL import Image

from catsdogs.audits.features import feature_extractor, image_features
from catsdogs.audits.labels import check_labels, out_of_sample_probabilities
from catsdogs.data.files import read_splits
from catsdogs.data.images import open_upright
from catsdogs.data.near_duplicates import groups_of, near_duplicate_pairs, perceptual_hash
from catsdogs.plots import image_grid


def noisy_copy(data: Path, target: Path, share: float, seed: int = 0) -> set[str]:
    """``data`` as symbolic links under ``target`` with ``share`` of the training labels flipped; the flipped
    files' new paths."""
    splits = read_splits(data)
    train = splits["train"]
    rng = np.random.default_rng(seed)
    flipped_indices = set(rng.choice(len(train), round(share * len(train)), replace=False).tolist())
    flipped = set()
    for split, folder in splits.items():
        for index, (path, label) in enumerate(zip(folder.paths, folder.labels)):
            if split == "train" and index in flipped_indices:
                label = 1 - label
            link = target / split / folder.class_names[label] / Path(path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.abspath(path), link)
            if split == "train" and index in flipped_indices:
                flipped.add(str(link))
    return flipped


def precision_recall(ranked: list[str], flipped: set[str], k: int) -> tuple[float, float]:
    hits = len(set(ranked[:k]) & flipped)
    return hits / k, hits / len(flipped)


def plant_copy(source: str, target: Path) -> None:
    with Image.open(source) as image:
        width, height = image.size
        dx, dy = round(0.025 * width), round(0.025 * height)
        copy = image.convert("RGB").crop((dx, dy, width - dx, height - dy))
        copy.resize((round(0.9 * copy.width), round(0.9 * copy.height))).save(target, quality=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="MobileNet 0.25's ImageNet no-top weights file")
    parser.add_argument("--data-dir", help="a by-id split (default: the Kaggle subset, prepared by common.py)")
    args = parser.parse_args()
    data = Path(args.data_dir) if args.data_dir else prepare_data()
    work = Path(tempfile.mkdtemp(prefix="catsdogs-bench-audit-"))
    results: dict[str, Any] = {"data": str(data)}
    try:
        # 1. the command, end to end, at 5 % noise
        noisy = work / "noisy-5"
        flipped = noisy_copy(data, noisy, 0.05)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "catsdogs.audit", "--data-dir", str(noisy), "--output",
                        str(work / "audit-5"), "--weights", args.weights], check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        seconds = time.perf_counter() - started
        import json

        ranking = [row["path"] for row in json.loads((work / "audit-5" / "audit.json").read_text())["label_ranking"]]
        precision, recall = precision_recall(ranking, flipped, len(flipped))
        in_train = [path for path in ranking if Path(path).parts[-3] == "train"]
        _, train_recall = precision_recall(in_train, flipped, len(flipped))
        results["command"] = {"seconds": seconds, "flipped": len(flipped), "precision_at_k": precision,
                              "recall_at_k": recall, "train_recall_at_k": train_recall}
        print(f"command: {seconds:.0f} s, top {len(flipped)}: precision {precision:.3f}, recall {recall:.3f}; "
              f"within train: recall {train_recall:.3f}")

        # 2. noise levels, features once (the images are the same files whatever their labels)
        splits = read_splits(data)
        originals = [(split, path, label) for split, folder in splits.items()
                     for path, label in zip(folder.paths, folder.labels)]
        extractor = feature_extractor("mobilenet", 224, args.weights, {"alpha": 0.25})
        kept, features, failures = image_features(extractor, [p for _, p, _ in originals], 224, progress=True)
        assert not failures and len(kept) == len(originals)
        labels = np.array([label for _, _, label in originals])
        train = np.array([split == "train" for split, _, _ in originals])
        rows = []
        for share in (0.02, 0.05, 0.10):
            rng = np.random.default_rng(0)
            train_indices = np.flatnonzero(train)
            flip = rng.choice(train_indices, round(share * len(train_indices)), replace=False)
            noisy_labels = labels.copy()
            noisy_labels[flip] = 1 - noisy_labels[flip]
            check = check_labels(noisy_labels, out_of_sample_probabilities(features, noisy_labels))
            order = [str(i) for i in check.ranked()]
            in_train = [i for i in order if train[int(i)]]
            truth = {str(i) for i in flip}
            row: dict[str, Any] = {"noise": f"{100 * share:.0f} %", "flipped": len(flip)}
            for name, k in (("k", len(flip)), ("2k", 2 * len(flip))):
                row[f"precision_at_{name}"], row[f"recall_at_{name}"] = precision_recall(order, truth, k)
                row[f"train_precision_at_{name}"], row[f"train_recall_at_{name}"] = precision_recall(in_train, truth, k)
            verdict = set(np.flatnonzero(check.is_issue).astype(str))
            row["cleanlab_issues"] = len(verdict)
            row["cleanlab_precision"] = len(verdict & truth) / max(1, len(verdict))
            row["cleanlab_recall"] = len(verdict & truth) / len(truth)
            rows.append(row)
        print_table(rows, ["noise", "flipped", "precision_at_k", "recall_at_k", "precision_at_2k", "recall_at_2k",
                           "train_recall_at_k", "train_recall_at_2k", "cleanlab_issues", "cleanlab_precision",
                           "cleanlab_recall"])
        results["noise"] = rows

        # 4. the real split's top 30 suspects
        check = check_labels(labels, out_of_sample_probabilities(features, labels))
        names = splits["train"].class_names
        top = check.ranked()[:30]
        image_grid([open_upright(originals[i][1], 160) for i in top], RESULTS / "audit-suspects.png", columns=6,
                   titles=[f"{i + 1}. {Path(originals[j][1]).name} {names[labels[j]]}->{names[check.suggested[j]]}"
                           for i, j in enumerate(top)], tile_inches=2.2)
        results["real_suspects"] = [{"rank": r + 1, "path": originals[j][1], "split": originals[j][0],
                                     "given": names[labels[j]], "suggested": names[int(check.suggested[j])],
                                     "score": float(check.scores[j]), "is_issue": bool(check.is_issue[j])}
                                    for r, j in enumerate(top)]
        results["real_issues"] = int(check.is_issue.sum())

        # 3. leaks: the unmodified split's pairs, then 20 planted copies
        hashes = [perceptual_hash(p) for _, p, _ in originals]
        pairs = near_duplicate_pairs(hashes, features)
        results["real_pairs"] = [{"a": originals[i][1], "b": originals[j][1], "splits": [originals[i][0],
                                 originals[j][0]], "hash_bits": bits, "similarity": sim} for i, j, bits, sim in pairs]
        if pairs:
            tiles, titles = [], []
            for number, (i, j, bits, sim) in enumerate(pairs[:24], 1):
                for k in (i, j):
                    tiles.append(open_upright(originals[k][1], 160))
                    titles.append(f"{number}: {Path(originals[k][1]).name} ({originals[k][0]}) {bits}b {sim:.2f}")
            image_grid(tiles, RESULTS / "audit-pairs.png", columns=6, titles=titles, tile_inches=2.2)
        planted_dir = work / "planted"
        planted_dir.mkdir()
        train_paths = [p for s, p, _ in originals if s == "train"]
        sources = np.random.default_rng(1).choice(len(train_paths), 20, replace=False)
        copies = []
        for n, index in enumerate(sources):
            target = planted_dir / f"copy{n}.jpg"
            plant_copy(train_paths[index], target)
            copies.append(str(target))
        _, copy_features, _ = image_features(extractor, copies, 224)
        all_hashes = hashes + [perceptual_hash(c) for c in copies]
        all_features = np.concatenate([features, copy_features])
        found_pairs = {(i, j) for i, j, *_ in near_duplicate_pairs(all_hashes, all_features)}
        groups = groups_of([(i, j, 0, 0.0) for i, j in found_pairs])
        index_of = {p: i for i, (_, p, _) in enumerate(originals)}
        found = sum(any(index_of[train_paths[s]] in g and len(originals) + n in g for g in groups)
                    for n, s in enumerate(sources))
        results["planted_leaks"] = {"planted": 20, "reported": int(found)}
        print(f"planted leaks reported: {found} of 20; pairs on the unmodified split: {len(pairs)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results("audit", results)


if __name__ == "__main__":
    main()
