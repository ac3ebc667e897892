"""Run the four notebooks top to bottom and save them with their outputs (what is committed).

    python notebooks/execute.py --mode medium          # about 20 minutes on 2 CPU cores

Each notebook runs in a fresh kernel ("python3", the interpreter running this script), one after the
other, in a scratch folder, with one outputs folder for all four (notebook 4 reads notebook 2's
model). The notebooks are then written back in place with their outputs and
``metadata.catsdogs = {"mode", "seconds", "executed"}``; ``tests/test_notebooks.py`` checks what is
committed. Medium mode reads Kaggle's originals (``CATSDOGS_NOTEBOOK_SOURCE``) and MobileNet 0.25's
weights file (``CATSDOGS_NOTEBOOK_WEIGHTS``); the defaults are this project's development copies in
``../shared/assets`` beside the repository.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
# TensorFlow's C++ start-up lines on stderr (absl, oneDNN, CUDA stubs), which TF_CPP_MIN_LOG_LEVEL does not
# silence: dropped from the saved outputs, nothing else is.
STARTUP_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                           r"|[IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*)\n?", re.MULTILINE)


def drop_startup_noise(notebook) -> None:
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                output.text = STARTUP_NOISE.sub("", output.text)
        cell.outputs = [output for output in cell.outputs
                        if not (output.output_type == "stream" and not output.text.strip())]
ASSETS = HERE.parents[1] / "shared" / "assets"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("smoke", "medium", "full"), default="medium")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--dry-run", action="store_true", help="execute, but do not write the notebooks back")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb in order")
    args = parser.parse_args()

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="catsdogs-notebooks-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"CATSDOGS_NOTEBOOK_MODE": args.mode, "CATSDOGS_NOTEBOOK_OUTPUTS": str(workdir / "_outputs"),
           "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg", "CATSDOGS_OFFLINE": "1"}
    if args.mode == "medium":
        env.setdefault("CATSDOGS_NOTEBOOK_SOURCE", os.environ.get(
            "CATSDOGS_NOTEBOOK_SOURCE", str(ASSETS / "kaggle_dogs_vs_cats_subset")))
        env.setdefault("CATSDOGS_NOTEBOOK_WEIGHTS", os.environ.get(
            "CATSDOGS_NOTEBOOK_WEIGHTS", str(ASSETS / "weights" / "mobilenet_2_5_224_tf_no_top.h5")))
    os.environ.pop("CATSDOGS_NOTEBOOK_SMOKE", None)
    os.environ.update(env)  # the kernels inherit this environment

    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    total = 0.0
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        start = time.monotonic()
        NotebookClient(notebook, kernel_name="python3", timeout=args.timeout, record_timing=False,
                       resources={"metadata": {"path": str(workdir)}}).execute()
        seconds = time.monotonic() - start
        total += seconds
        drop_startup_noise(notebook)
        notebook.metadata["catsdogs"] = {
            "mode": args.mode, "seconds": round(seconds),
            "executed": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu_count": os.cpu_count()}
        nbformat.validate(notebook)
        if not args.dry_run:
            nbformat.write(notebook, path)
        print(f"{path.name}: {seconds:.0f} s, {path.stat().st_size / 1e3:.0f} kB", flush=True)
    print(f"all: {total / 60:.1f} min, {sum(p.stat().st_size for p in paths) / 1e6:.2f} MB; outputs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
