"""Export: every format and quantization of a trained model, checked on the test images; sizes and speeds.

    python benchmarks/export.py [--model saved_models/mobilenet-0.25-all.keras] [--data-dir DIR]

The model must be a trained one (real weights: random ones answer 0.5 everywhere, where any rounding
flips labels). ``--data-dir`` defaults to the real Kaggle subset split by id (1,000 test images),
made in /tmp when ``../shared/assets`` is here. For each export: the file size, the seconds the
export and its parity check took, the parity figures on every test image (label agreement with the
Keras model, max |dp|, test accuracy of both), and the exported model's rate on those images
(decoded once, batch 32, this machine's threads) and its latency on one image.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import prepare_data, print_table, timed, write_results

from catsdogs.data.files import read_image_folder
from catsdogs.exports.exporter import decode_folder, export_model
from catsdogs.models.saving import load_model
from catsdogs.runtime.catalog import choose_model
from catsdogs.runtime.opening import open_classifier

EXPORTS = [("saved_model", "none"), ("litert", "none"), ("litert", "float16"), ("litert", "dynamic"),
           ("litert", "int8"), ("onnx", "none"), ("onnx", "float16"), ("onnx", "int8")]


def model_bytes(path: Path) -> int:
    """A file's size; a SavedModel base folder's version folders (not its sidecar, card and report)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for version in path.iterdir() if version.name.isdigit()
               for p in version.rglob("*") if p.is_file())


def measure(model_path: Path, export_format: str, quantize: str, work: Path, data_dir: Path,
            images: np.ndarray) -> dict[str, Any]:
    seconds, export = timed(lambda: export_model(model_path, export_format, quantize, work, data_dir, len(images)))
    engine = open_classifier(export.model_path)
    engine.predict(images[:32])  # warm-up
    rate_seconds, _ = timed(lambda: [engine.predict(images[i:i + 32]) for i in range(0, len(images), 32)])
    latency = statistics.median(timed(lambda i=i: engine.predict(images[i:i + 1]))[0] for i in range(20))
    parity = export.parity
    return {"format": export_format, "quantize": quantize, "size_mb": model_bytes(export.model_path) / 1e6,
            "export_and_check_s": seconds, "agreement_percent": 100 * parity.agreement,
            "max_abs_dp": f"{parity.max_abs_difference:.1e}", "accuracy": f"{parity.accuracy:.4f}",
            "keras_accuracy": f"{parity.keras_accuracy:.4f}", "passed": parity.passed,
            "images_per_s": len(images) / rate_seconds, "one_image_ms": 1000 * latency,
            "parity": parity.model_dump(mode="json")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained .keras model (default: the default in saved_models/)")
    parser.add_argument("--data-dir", help="its data (default: the Kaggle subset split by id)")
    args = parser.parse_args()
    model_path = Path(args.model or choose_model("saved_models"))
    data_dir = Path(args.data_dir) if args.data_dir else prepare_data()
    _, info = load_model(model_path)
    images, _, _ = decode_folder(read_image_folder(data_dir / "test"), info.image_size, 1000)
    work = Path(tempfile.mkdtemp(prefix="catsdogs-bench-export-"))
    try:
        rows = [measure(model_path, export_format, quantize, work, data_dir, images)
                for export_format, quantize in EXPORTS]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{model_path} on {len(images)} test images of {data_dir}")
    print_table(rows, ["format", "quantize", "size_mb", "export_and_check_s", "agreement_percent", "max_abs_dp",
                       "accuracy", "keras_accuracy", "passed", "images_per_s", "one_image_ms"])
    write_results("export", {"model": str(model_path), "data": str(data_dir), "images": len(images), "rows": rows})


if __name__ == "__main__":
    main()
