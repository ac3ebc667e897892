"""What every benchmark shares: the machine's description, a data split to measure on, a table, a JSON file.

Benchmarks measure; tests check behaviour. Each script prints a table and writes
``benchmarks/results/<name>.json`` with the machine, the date, the library versions and the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REAL_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "assets" / "kaggle_dogs_vs_cats_subset"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    info = {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory_gb, 1), "python": platform.python_version(),
            "platform": platform.platform(), "date": datetime.now().isoformat(timespec="seconds")}
    try:
        import keras
        import tensorflow as tf

        info.update(tensorflow=tf.__version__, keras=keras.__version__,
                    gpus=[d.name for d in tf.config.list_physical_devices("GPU")])
    except ImportError:
        pass
    return info


def prepare_data(directory: Path | None = None, per_class: tuple[int, int, int] = (1000, 500, 500)) -> Path:
    """A split to measure on: the real Kaggle subset split by id when it is here, else synthetic images."""
    from data_prep import SplitCounts, make_synthetic_source, prepare_split

    directory = directory or Path(tempfile.gettempdir()) / f"catsdogs-bench-{'-'.join(map(str, per_class))}"
    if (directory / "summary.json").is_file():
        return directory
    counts = SplitCounts(*per_class)
    if REAL_SUBSET.is_dir():
        prepare_split(REAL_SUBSET, directory, split="by-id", counts=counts, link=True, progress=False)
    else:
        source = Path(tempfile.mkdtemp()) / "synthetic"
        make_synthetic_source(source, sum(per_class), image_size=(500, 375))  # Kaggle-like sizes
        prepare_split(source, directory, split="by-id", counts=counts, progress=False)
    return directory


def data_description(directory: Path) -> str:
    summary = json.loads((directory / "summary.json").read_text())
    return f"{summary.get('kind', '?')} source {summary.get('source', '?')}, split {summary.get('split', '?')}"


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(script: Path, *args: str) -> dict[str, Any]:
    """Run ``python script args`` in a fresh process (its own peak memory); it prints one JSON line last."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    def text(value: Any) -> str:
        return f"{value:,.1f}" if isinstance(value, float) else str(value)

    widths = [max(len(column), *(len(text(row.get(column, ""))) for row in rows)) for column in columns]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths)))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print("  ".join(text(row.get(column, "")).ljust(width) for column, width in zip(columns, widths)))


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def command(*args: str) -> float:
    """Run ``python -m <args>`` as a user would; its wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", *args], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - start


def real_photo_arguments(description: str) -> argparse.Namespace:
    """``--weights`` (MobileNet 0.25's), ``--data-dir`` and ``--seed``: what the benchmarks on real photos take."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="MobileNet 0.25's ImageNet no-top weights file")
    parser.add_argument("--data-dir", help="a by-id split (default: the Kaggle subset, prepared by common.py)")
    parser.add_argument("--seed", type=int, default=0, help="the training runs' seed")
    return parser.parse_args()


def train_mobilenet_head(data: Path, weights: str, work: Path, name: str, seed: int, *flags: str) -> float:
    """``python -m catsdogs.train``: MobileNet 0.25 at 224 px, its head on cached features (``--recipe frozen``),
    published as ``work/saved/<name>.keras``; the features are cached in ``work/features`` for the next run.
    Its wall seconds."""
    return command("catsdogs.train", "--data-dir", str(data), "--model", "mobilenet", "--alpha", "0.25", "--weights",
                   weights, "--image-size", "224", "--recipe", "frozen", "--cache-features", "--feature-cache",
                   str(work / "features"), "--seed", str(seed), "--output", str(work / "runs"), "--saved-models-dir",
                   str(work / "saved"), "--name", name, *flags)
