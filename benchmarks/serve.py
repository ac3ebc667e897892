"""The server under load: 8 concurrent clients send the 1,000 test images one per request, over loopback.

    python benchmarks/serve.py [--model saved_models/mobilenet-0.25-all.keras] [--clients 8] [--images 1000]

For the ``.keras`` model and its LiteRT export (made here, float32): first the in-process batched rate
of the same model on the same files (``benchmarks/predict.py``'s library row: ``runtime.prediction.predict_files``,
batch 32), in a fresh process; then ``python -m
catsdogs.serve --port 0`` in another, warmed up, and the clients (asyncio connections, in this process)
sending each file once as the raw body of ``POST /predict``. Reported: throughput, p50 and p99
latency, the mean batch size during the run (from ``/metrics``), errors, and the ratio of the
throughput to the in-process rate (acceptance: errors 0, mean batch > 1, ratio >= 0.8), in
``--repeats`` alternated runs (the run with the median ratio is shown; errors are summed over all).
Bounded: ``--images`` requests per run, and a 10-minute limit per run. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import prepare_data, print_table, write_results

from catsdogs.data.files import expand_inputs
from catsdogs.runtime.catalog import choose_model

RUN_LIMIT_S = 600
LIBRARY_RATE = """
import json, sys, time
from catsdogs.data.files import expand_inputs
files, _ = expand_inputs([sys.argv[2]])
from catsdogs.runtime.opening import open_classifier
from catsdogs.runtime.prediction import predict_files
classifier = open_classifier(sys.argv[1])
run = lambda paths: predict_files(classifier, paths)
run(files[:64])
start = time.perf_counter()
run(files)
print(json.dumps({"images_per_s": len(files) / (time.perf_counter() - start)}))
"""


def library_rate(model: Path, folder: Path) -> float:
    result = subprocess.run([sys.executable, "-c", LIBRARY_RATE, str(model), str(folder)], capture_output=True,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=RUN_LIMIT_S)
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])["images_per_s"]


def batch_totals(metrics: str) -> tuple[float, float]:
    """``(images, batches)`` so far, from the Prometheus histogram."""
    total = float(re.search(r"^catsdogs_batch_size_sum (\S+)", metrics, re.M).group(1))
    count = float(re.search(r"^catsdogs_batch_size_count (\S+)", metrics, re.M).group(1))
    return total, count


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
               payload: bytes) -> tuple[int, bytes]:
    """One ``POST /predict`` on a kept-alive connection; its status and body. HTTP/1.1 by hand: the clients share
    the server's two cores, and a full client library costs more CPU per request than the server's parsing."""
    writer.write(f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
    body = await reader.readexactly(length)
    return int(head.split(b" ", 2)[1]), body


async def load(url: str, payloads: list[bytes], clients: int) -> tuple[list[float], int, float]:
    """Every payload once, ``clients`` connections at a time; latencies (s), errors, wall seconds."""
    host, port = url.removeprefix("http://").split(":")
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while not queue.empty():
                payload = queue.get_nowait()
                start = time.perf_counter()
                status, _ = await post(reader, writer, f"{host}:{port}", payload)
                latencies.append(time.perf_counter() - start)
                errors += status != 200
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - start


def serve_and_load(model: Path, files: list[str], clients: int) -> dict[str, Any]:
    process = subprocess.Popen([sys.executable, "-m", "catsdogs.serve", "--model", str(model), "--port", "0"],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        url = None
        for line in process.stderr:
            found = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
            if found:
                url = found.group(1)
                break
        if url is None:
            raise RuntimeError("the server did not start")
        payloads = [Path(path).read_bytes() for path in files]
        asyncio.run(load(url, payloads[:32], clients))  # warm-up: traced functions, threads, connections
        before = batch_totals(httpx.get(f"{url}/metrics").text)
        latencies, errors, seconds = asyncio.run(asyncio.wait_for(load(url, payloads, clients), RUN_LIMIT_S))
        after = batch_totals(httpx.get(f"{url}/metrics").text)
    finally:
        process.terminate()
        process.wait(30)
    images, batches = after[0] - before[0], after[1] - before[1]
    return {"requests": len(latencies), "errors": errors, "requests_per_s": len(latencies) / seconds,
            "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "mean_batch": images / batches if batches else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained .keras model (default: the default in saved_models/)")
    parser.add_argument("--data-dir", help="a split whose test images are sent (default: the Kaggle subset by id)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per model; the run with the median ratio is shown")
    args = parser.parse_args()
    model = Path(args.model or choose_model("saved_models"))
    data_dir = Path(args.data_dir) if args.data_dir else prepare_data()
    files, _ = expand_inputs([data_dir / "test"])
    files = files[:args.images]
    work = Path(tempfile.mkdtemp(prefix="catsdogs-bench-serve-"))
    folder = work / "images"  # the library rate reads exactly these files
    folder.mkdir()
    for index, path in enumerate(files):
        os.symlink(os.path.abspath(path), folder / f"{index:05d}{Path(path).suffix}")
    rows = []
    try:
        subprocess.run([sys.executable, "-m", "catsdogs.export", "--model", str(model), "--format",
                        "litert", "--output", str(work), "--check-images", "0"], capture_output=True, text=True,
                       check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        litert = next(work.glob("*-litert/*.tflite"))
        for label, path in (("keras", model), ("litert", litert)):
            runs = []
            for _ in range(args.repeats):  # alternated, so that both sides see the same drifts in load
                run = {"library_images_per_s": library_rate(path, folder), **serve_and_load(path, files, args.clients)}
                run["ratio"] = run["requests_per_s"] / run["library_images_per_s"]
                runs.append(run)
                print(label, {key: round(value, 2) for key, value in run.items()}, flush=True)
            middle = sorted(runs, key=lambda run: run["ratio"])[len(runs) // 2]
            rows.append({"model": f"{model.stem} ({label})", **middle, "ratios": [run["ratio"] for run in runs],
                         "errors": sum(run["errors"] for run in runs), "runs": runs})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(files)} test images of {data_dir}, {args.clients} clients, one image per request, loopback")
    print_table(rows, ["model", "library_images_per_s", "requests_per_s", "ratio", "p50_ms", "p99_ms", "mean_batch",
                       "errors"])
    print("ratios of every run:", {row["model"]: [round(r, 3) for r in row["ratios"]] for row in rows})
    write_results("serve", {"model": str(model), "data": str(data_dir), "clients": args.clients,
                            "images": len(files), "nproc": len(os.sched_getaffinity(0)), "rows": rows})


if __name__ == "__main__":
    main()
