"""Prediction speed: one image from a cold start, and images/s over a folder of 1,000 images.

    python benchmarks/predict.py [--images 1000] [--repeats 3]

Two models, with random weights (``weights=None``: the same compute as trained ones): small_cnn at
150 px and MobileNet alpha 0.25 at 224 px. The folder holds copies of the real Kaggle subset's JPEGs
when ``../shared/assets`` is here (else generated 500x375 JPEGs), so decoding costs what it will.
Rows, per model:

- ``cold start, 1 image``: ``python -m catsdogs.predict IMAGE --model M`` in a fresh process (import,
  load, predict, print), median of ``--repeats``; beside it, ``python -c "import tensorflow"`` alone;
- ``folder, library``: ``predict_files`` on the folder with the model loaded and warmed up
  (the batched tf.data pipeline, batch 32), files in the page cache;
- ``folder, CLI``: the whole command on the folder, start-up included;
- ``one call per file``: what the pipeline replaces, ``model(load_image(path))`` per file;
- ``Grad-CAM``: ``explain_files`` (maps and overlay PNGs on the original images);
- the same model exported (``catsdogs.exports``, float32) to LiteRT and to ONNX: the cold start of
  ``predict`` on one image (no TensorFlow in that process), the folder through ``predict_files``
  (Pillow decoding, batch 32) and the whole command on the folder.

Each figure comes as wall time and as CPU time (user + system over all threads): on a shared
machine the wall figures move with other processes' load (recorded), the CPU figures much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import REAL_SUBSET, print_table, timed, write_results

from catsdogs.config import DEFAULT_IMAGE_SIZE
from catsdogs.data.decode import load_image
from catsdogs.data.files import expand_inputs
from catsdogs.explanations.gradcam import explain_files
from catsdogs.exports.exporter import export_model
from catsdogs.models import create_model
from catsdogs.models.saving import ModelInfo, save_model
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.prediction import predict_files

MODELS = {  # row label: (registry name, image size, create_model keywords)
    f"small_cnn {DEFAULT_IMAGE_SIZE} px": ("small_cnn", DEFAULT_IMAGE_SIZE, {}),
    "mobilenet 0.25 224 px": ("mobilenet", 224, {"alpha": 0.25}),
}
PER_FILE_IMAGES, EXPLAIN_IMAGES = 200, 64


def image_folder(count: int) -> tuple[Path, str]:
    """``count`` JPEGs in /tmp: copies of real photos when the subset is here, else generated ones."""
    folder = Path(tempfile.gettempdir()) / f"catsdogs-bench-predict-{count}"
    real = sorted(REAL_SUBSET.glob("*.jpg"))[:count] if REAL_SUBSET.is_dir() else []
    kind = "real Kaggle JPEGs (copies)" if len(real) == count else "generated 500x375 JPEGs"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder, kind
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if len(real) == count:
        for path in real:
            shutil.copyfile(path, folder / path.name)
    else:
        from PIL import Image

        rng = np.random.default_rng(0)
        for index in range(count):
            pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.jpg", quality=90)
    return folder, kind


def save_models(directory: Path) -> dict[str, Path]:
    paths = {}
    for label, (name, size, kwargs) in MODELS.items():
        model = create_model(name, image_size=size, weights=None, **kwargs)
        info = ModelInfo(["cats", "dogs"], size, name, model.get_layer("preprocess").mode)
        paths[label] = save_model(model, directory / f"{name}-{size}.keras", info)
    return paths


def run_seconds(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all threads) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_seconds(command: list[str], repeats: int) -> tuple[float, float]:
    runs = [run_seconds(command) for _ in range(repeats)]
    return statistics.median(wall for wall, _ in runs), statistics.median(cpu for _, cpu in runs)


def rates(count: int, function: Callable[[], Any]) -> tuple[float, float, Any]:
    """Images per wall second and per CPU second (this process, all threads) of ``function()``."""
    cpu_start = time.process_time()
    wall, result = timed(function)
    return count / wall, count / (time.process_time() - cpu_start), result


def measure(label: str, model_path: Path, files: list[str], repeats: int, explain_dir: Path) -> dict:
    predict = [sys.executable, "-m", "catsdogs.predict", "--model", str(model_path)]
    row: dict[str, Any] = {"model": label}
    row["cold_start_s"], row["cold_start_cpu_s"] = median_seconds([*predict, files[0]], repeats)
    row["folder_cli_s"], row["folder_cli_cpu_s"] = run_seconds([*predict, str(Path(files[0]).parent)])

    classifier = open_classifier(model_path)
    model, info = classifier.keras_model(), classifier.info
    predict_files(classifier, files[:64])  # traces the predict function, warms the page cache
    row["folder_images_per_s"], row["folder_images_per_cpu_s"], _ = rates(
        len(files), lambda: predict_files(classifier, files))

    sample = files[:PER_FILE_IMAGES]
    model(load_image(sample[0], info.image_size)[None], training=False)
    row["per_file_images_per_s"], row["per_file_images_per_cpu_s"], _ = rates(
        len(sample), lambda: [model(load_image(path, info.image_size)[None], training=False) for path in sample])

    explained = files[:EXPLAIN_IMAGES]
    explain_files(model, info, explained[:4], explain_dir)  # warm-up
    row["gradcam_images_per_s"], row["gradcam_images_per_cpu_s"], _ = rates(
        len(explained), lambda: explain_files(model, info, explained, explain_dir))
    return row


def measure_export(label: str, model_path: Path, export_format: str, files: list[str], repeats: int,
                   work: Path) -> dict:
    """Cold start, folder rate and folder command of the model exported to ``export_format`` (float32)."""
    exported = export_model(model_path, export_format, output=work / "exports", check_images=0).model_path
    predict = [sys.executable, "-m", "catsdogs.predict", "--model", str(exported)]
    row: dict[str, Any] = {"model": f"{label}, {export_format}"}
    row["cold_start_s"], row["cold_start_cpu_s"] = median_seconds([*predict, files[0]], repeats)
    row["folder_cli_s"], row["folder_cli_cpu_s"] = run_seconds([*predict, str(Path(files[0]).parent)])
    classifier = open_classifier(exported)
    predict_files(classifier, files[:64])  # warms the page cache and the runtime
    row["folder_images_per_s"], row["folder_images_per_cpu_s"], _ = rates(
        len(files), lambda: predict_files(classifier, files))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="images in the folder")
    parser.add_argument("--repeats", type=int, default=3, help="cold starts per model (the median is reported)")
    args = parser.parse_args()

    folder, kind = image_folder(args.images)
    files, _ = expand_inputs([folder])
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="catsdogs-bench-predict-"))
    try:
        models = save_models(work)
        import_only = median_seconds([sys.executable, "-c", "import tensorflow"], args.repeats)
        rows = [measure(label, path, files, args.repeats, work / "explained") for label, path in models.items()]
        rows += [measure_export(label, path, export_format, files, args.repeats, work)
                 for label, path in models.items() for export_format in ("litert", "onnx")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows[:len(models)]:  # the exported rows never import it
        row["import_tensorflow_s"], row["import_tensorflow_cpu_s"] = import_only
    load = {"before": load_before, "after": os.getloadavg()[0]}
    print(f"{len(files)} images: {kind}; nproc {len(os.sched_getaffinity(0))}; "
          f"1-minute load average {load['before']:.1f} before, {load['after']:.1f} after")
    print("wall:")
    print_table(rows, ["model", "cold_start_s", "import_tensorflow_s", "folder_images_per_s", "folder_cli_s",
                       "per_file_images_per_s", "gradcam_images_per_s"])
    print("CPU time (user + system, all threads; less sensitive to other processes):")
    print_table(rows, ["model", "cold_start_cpu_s", "import_tensorflow_cpu_s", "folder_images_per_cpu_s",
                       "folder_cli_cpu_s", "per_file_images_per_cpu_s", "gradcam_images_per_cpu_s"])
    write_results("predict", {"nproc": len(os.sched_getaffinity(0)), "load_average_1min": load,
                              "images": len(files), "data": kind, "batch_size": 32, "repeats": args.repeats,
                              "rows": rows})

if __name__ == "__main__":
    main()
