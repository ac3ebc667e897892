"""Peak memory on hostile inputs: whole commands on huge images against the same commands on ordinary ones.

    python benchmarks/memory.py [--repeats 1]

Each command runs in a fresh process under ``/usr/bin/time -v``; the figure is its maximum resident set
size (``Maximum resident set size (kbytes)``, the whole process: Python, TensorFlow, the model, the
images), beside its wall time and exit status. The model is MobileNet alpha 0.25 at 224 px, saved as
``.keras`` by the library (ImageNet weights from ``../shared/assets/weights`` when they are there, else
``weights=None``: the same memory). Cases come in pairs; what matters is each pair's difference, the
memory the huge input costs over an ordinary one (target: within 0.5 GB):

- ``gradcam``: ``python -m catsdogs.visualize gradcam --model M --image IMG --output OUT`` with IMG an
  8000x8000 JPEG (64 million pixels: 192 MB as RGB bytes, 768 MB as floats, if decoded in full) against
  a 500x500 JPEG; both smooth random content, quality 90; a fresh OUT per run;
- ``predict``: ``python -m catsdogs.predict FOLDER --model M`` over six 20000x20000 grayscale PNG "bombs"
  (all zeros: a few hundred KB on disk, 400 MB each decoded, 1.2 GB as RGB) against six ordinary 500x375
  JPEGs. The bombs should each be skipped ("too large", read from the PNG header, one ``skipped`` line on
  stderr) and the command exit with status 1 (nothing could be predicted); the ordinary folder gives 0.

With ``--repeats N`` each command runs N times: the largest peak and the median wall time are reported.
The children get ``TF_CPP_MIN_LOG_LEVEL=3`` and ``CATSDOGS_CACHE`` in a temporary folder (and no
``CATSDOGS_MAX_PIXELS``: the default limit applies).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from common import print_table, write_results

from catsdogs.models.registry import create_model, get_spec
from catsdogs.models.saving import ModelInfo, save_model

WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
TIME = "/usr/bin/time"
TARGET_MB = 512  # 0.5 GB, in the MB (MiB) the table uses
BOMB_SIDE, BOMBS = 20_000, 6
ORDINARY_SIZE, ORDINARIES = (500, 375), 6


def save_mobilenet(path: Path) -> tuple[Path, str]:
    weights = str(WEIGHTS) if WEIGHTS.is_file() else None
    model = create_model("mobilenet", image_size=224, num_classes=2, weights=weights, alpha=0.25)
    info = ModelInfo(["cats", "dogs"], 224, "mobilenet", get_spec("mobilenet").preprocessing)
    return save_model(model, path, info), "ImageNet (local file)" if weights else "random (weights=None)"


def write_jpeg(path: Path, width: int, height: int, seed: int) -> Path:
    """Smooth random content: a small random image resized up (compresses like a photo, not like noise)."""
    from PIL import Image

    small = np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(small).resize((width, height), Image.BICUBIC).save(path, quality=90)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb_bytes(side: int) -> bytes:
    """An 8-bit grayscale ``side`` x ``side`` PNG of zeros, compressed row by row (the pixels never held)."""
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter type 0, then the row's zeros
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # depth 8, grayscale, deflate, no filter, no interlace
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def make_inputs(work: Path) -> dict[str, Path]:
    folders = {name: work / name for name in ("bombs", "ordinary")}
    for folder in folders.values():
        folder.mkdir()
    bomb = png_bomb_bytes(BOMB_SIDE)
    for index in range(BOMBS):
        (folders["bombs"] / f"bomb-{index}.png").write_bytes(bomb)
    for index in range(ORDINARIES):
        write_jpeg(folders["ordinary"] / f"{index}.jpg", *ORDINARY_SIZE, seed=index)
    return {"huge_jpeg": write_jpeg(work / "huge-8000.jpg", 8000, 8000, seed=100),
            "small_jpeg": write_jpeg(work / "small-500.jpg", 500, 500, seed=101), **folders}


def run_once(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Peak RSS (MB), wall seconds, exit status, stdout and stderr of ``command`` in a fresh process."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        start = time.perf_counter()
        result = subprocess.run([TIME, "-v", "-o", report.name, *command], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", Path(report.name).read_text())
    if not found:
        raise RuntimeError(f"no peak memory from {TIME} for {command}:\n{result.stderr[-3000:]}")
    return {"peak_rss_mb": int(found.group(1)) / 1024, "wall_s": wall, "status": result.returncode,
            "stdout": result.stdout, "stderr": result.stderr}


def measure(case: str, label: str, command: list[str], env: dict[str, str], repeats: int,
            fresh_output: Path | None = None) -> dict[str, Any]:
    runs = []
    for repeat in range(repeats):
        extra = ["--output", str(fresh_output / f"run-{repeat}")] if fresh_output else []
        runs.append(run_once([*command, *extra], env))
    stderr = runs[-1]["stderr"].splitlines()
    skipped = [line for line in stderr if line.startswith("skipped ")]
    statuses = sorted({run["status"] for run in runs})
    row = {"case": case, "input": label, "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
           "wall_s": statistics.median(run["wall_s"] for run in runs),
           "status": statuses[0] if len(statuses) == 1 else "/".join(map(str, statuses)),
           "skipped": len(skipped), "too_large": sum("too large" in line for line in skipped),
           "peaks_mb": [run["peak_rss_mb"] for run in runs], "walls_s": [run["wall_s"] for run in runs],
           "stdout_tail": runs[-1]["stdout"].splitlines()[-2:],
           "stderr_tail": stderr[-(len(skipped) + 2):] if skipped else stderr[-3:]}
    print(f"  {case}, {label}: {row['peak_rss_mb']:,.0f} MB, {row['wall_s']:.1f} s, status {row['status']}",
          flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="runs per command (largest peak, median time)")
    args = parser.parse_args()
    if not Path(TIME).is_file():
        sys.exit(f"{TIME} (GNU time) is needed: apt-get install time")

    work = Path(tempfile.mkdtemp(prefix="catsdogs-bench-memory-"))
    try:
        model, weights = save_mobilenet(work / "mobilenet-0.25-224.keras")
        inputs = make_inputs(work)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CATSDOGS_CACHE": str(work / "cache")}
        env.pop("CATSDOGS_MAX_PIXELS", None)
        gradcam = [sys.executable, "-m", "catsdogs.visualize", "gradcam", "--model", str(model), "--image"]
        predict = [sys.executable, "-m", "catsdogs.predict", "--model", str(model)]
        pairs = {
            "gradcam": [("8000x8000 JPEG", [*gradcam, str(inputs["huge_jpeg"])], work / "out-huge"),
                        ("500x500 JPEG", [*gradcam, str(inputs["small_jpeg"])], work / "out-small")],
            "predict": [(f"{BOMBS} PNG bombs {BOMB_SIDE}x{BOMB_SIDE}", [*predict, str(inputs["bombs"])], None),
                        (f"{ORDINARIES} JPEGs {ORDINARY_SIZE[0]}x{ORDINARY_SIZE[1]}",
                         [*predict, str(inputs["ordinary"])], None)],
        }
        bomb_kb = (inputs["bombs"] / "bomb-0.png").stat().st_size / 1024
        huge_kb = inputs["huge_jpeg"].stat().st_size / 1024
        print(f"model: mobilenet 0.25 224 px, {weights} weights; 8000x8000 JPEG {huge_kb:,.0f} KB, "
              f"PNG bomb {bomb_kb:,.0f} KB each")
        rows = [measure(case, label, command, env, args.repeats, output)
                for case, commands in pairs.items() for label, command, output in commands]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    differences = []
    for case in pairs:
        hostile, ordinary = (row for row in rows if row["case"] == case)
        difference = hostile["peak_rss_mb"] - ordinary["peak_rss_mb"]
        differences.append({"case": case, "hostile": hostile["input"], "ordinary": ordinary["input"],
                            "difference_mb": difference, "target_mb": TARGET_MB,
                            "within_target": abs(difference) <= TARGET_MB})
    print_table(rows, ["case", "input", "peak_rss_mb", "wall_s", "status", "skipped", "too_large"])
    print()
    print_table(differences, ["case", "hostile", "ordinary", "difference_mb", "target_mb", "within_target"])
    write_results("memory", {"nproc": len(os.sched_getaffinity(0)), "repeats": args.repeats,
                             "model": "mobilenet 0.25 224 px", "weights": weights,
                             "inputs": {"huge_jpeg_kb": huge_kb, "png_bomb_kb": bomb_kb}, "rows": rows,
                             "differences": differences})


if __name__ == "__main__":
    main()
