"""A server left running: new models published under load, resident memory over many swaps and after large
requests.

    python benchmarks/serve_life.py [--model M.keras] [--clients 8] [--swaps 10]

``python -m catsdogs.serve --saved-models-dir DIR --model-poll 0.5`` runs in its own process on the default
model of a scratch folder (``--model``, or an untrained MobileNet 0.25 at 224 px: the flagship's compute,
whatever its weights). ``--clients`` connections send the test images steadily (one per request, as
``benchmarks/serve.py`` does). Then, as ``train`` does, a better model is published in the folder
(the same weights with a higher recorded validation accuracy, written under a hidden name and renamed in).

Reported:
- **swap**: answers that were not 200; p50/p99 latency of requests sent in the 15 s before the publish and of
  those sent from the publish until 3 s after the first answer by the new version (acceptance: 0 errors,
  every later answer by the new version, p99 during at most 3x before);
- **swaps**: the server's resident memory (``/proc``) after the first swap and after ``--swaps`` more, the load
  going on (acceptance: within 300 MB);
- **large requests**: resident memory at rest (after one small request), its peak (``VmHWM``, which includes the
  swaps before), right after 2 requests of 64 PNGs of 25 megapixels each, and 2 s later (acceptance: back near
  rest).
"""

from __future__ import annotations

import argparse
import asyncio
import io
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
from serve import post

from catsdogs.data.files import expand_inputs

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now (``VmHWM``: its peak so far), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def publish(model: Path, folder: Path, number: int) -> Path:
    """A copy of ``model`` as ``folder/vNN.keras`` with validation accuracy ``0.5 + number / 1000`` (the best)."""
    from catsdogs.metadata import TrainingMetrics, read_archive_info
    from catsdogs.models.saving import update_model_info

    staged = folder / f".staged-{number}.keras"
    shutil.copyfile(model, staged)
    info = read_archive_info(model)
    assert info is not None
    update_model_info(staged, info.with_extra(metrics=TrainingMetrics(best_val_accuracy=0.5 + number / 1000)))
    target = folder / f"v{number:02d}.keras"
    os.replace(staged, target)
    return target


def untrained_mobilenet(path: Path) -> Path:
    from catsdogs.metadata import ModelInfo
    from catsdogs.models import create_model
    from catsdogs.models.saving import save_model

    model = create_model("mobilenet", image_size=224, num_classes=2, weights=None, alpha=0.25)
    return save_model(model, path, ModelInfo(["cats", "dogs"], 224, "mobilenet"))


class Load:
    """``clients`` keep-alive connections posting images in turn; each answer's send time, latency, status and
    model version."""

    def __init__(self, url: str, payloads: list[bytes], clients: int) -> None:
        self.url, self.payloads, self.clients = url, payloads, clients
        self.answers: list[tuple[float, float, int, str]] = []
        self.stopping = asyncio.Event()

    async def client(self, index: int) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        turn = index
        try:
            while not self.stopping.is_set():
                payload = self.payloads[turn % len(self.payloads)]
                turn += self.clients
                sent = time.monotonic()
                status, body = await post(reader, writer, f"{host}:{port}", payload)
                version = json.loads(body).get("model_version", "") if status == 200 else ""
                self.answers.append((sent, time.monotonic() - sent, status, version))
        finally:
            writer.close()

    async def run_until(self, done: asyncio.Future[Any]) -> None:
        tasks = [asyncio.create_task(self.client(i)) for i in range(self.clients)]
        await done
        self.stopping.set()
        await asyncio.gather(*tasks)


def serving_version(url: str) -> str:
    return httpx.get(f"{url}/v1/models/catsdogs", timeout=30).json()["model_version_status"][0]["version"]


async def swap_under_load(url: str, pid: int, model: Path, folder: Path, payloads: list[bytes], clients: int,
                          swaps: int) -> dict[str, Any]:
    load = Load(url, payloads, clients)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    running = asyncio.create_task(load.run_until(done))
    await asyncio.sleep(15)
    published = time.monotonic()
    await asyncio.to_thread(publish, model, folder, 2)
    while not any(version == "2" for *_, version in load.answers):
        await asyncio.sleep(0.02)
    first_new = min(sent + latency for sent, latency, _, version in load.answers if version == "2")
    await asyncio.sleep(3)
    memory = [rss_mb(pid)]
    for number in range(3, 3 + swaps):  # more swaps, the load going on
        await asyncio.to_thread(publish, model, folder, number)
        while await asyncio.to_thread(serving_version, url) != str(number):
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        memory.append(rss_mb(pid))
        print(f"swap to version {number}: resident {memory[-1]:.0f} MB", flush=True)
    done.set_result(None)
    await running
    before = [latency for sent, latency, _, _ in load.answers if published - 15 + 2 <= sent < published]
    during = [latency for sent, latency, _, _ in load.answers if published <= sent < first_new + 3]
    after_swap = [version for sent, _, _, version in load.answers if sent >= first_new and sent < published + 60
                  and version in ("1", "2")]
    def ms(latencies: list[float], q: int) -> float:
        return 1000 * float(np.percentile(latencies, q))

    return {"errors": sum(status != 200 for _, _, status, _ in load.answers), "answers": len(load.answers),
            "swap_seconds": first_new - published, "p50_before_ms": ms(before, 50), "p99_before_ms": ms(before, 99),
            "p50_during_ms": ms(during, 50), "p99_during_ms": ms(during, 99),
            "old_version_after_swap": sum(v == "1" for v in after_swap),
            "rss_after_first_swap_mb": memory[0], "rss_after_swaps_mb": memory[-1], "rss_series_mb": memory,
            "swaps": swaps}


def large_pngs(count: int) -> list[bytes]:
    """``count`` distinct 25-megapixel PNGs (smooth, so they are small files and large images)."""
    from PIL import Image

    ramp = np.linspace(0, 255, 5000, dtype=np.float32)
    out = []
    for index in range(count):
        image = np.stack([np.tile(ramp, (5000, 1)), np.tile(ramp[:, None], (1, 5000)),
                          np.full((5000, 5000), 10.0 * index)], -1).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
        out.append(buffer.getvalue())
    return out


def large_requests(url: str, pid: int, small: bytes) -> dict[str, Any]:
    httpx.post(f"{url}/predict", content=small, timeout=60)
    time.sleep(2)
    rest = rss_mb(pid)
    pngs = large_pngs(64)
    files = [("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(pngs)]
    for _ in range(2):
        answer = httpx.post(f"{url}/predict", files=files, timeout=600)
        assert answer.status_code == 200, answer.text[:300]
    right_after = rss_mb(pid)
    time.sleep(2)
    return {"rss_rest_mb": rest, "rss_peak_mb": rss_mb(pid, "VmHWM"), "rss_right_after_mb": right_after,
            "rss_2s_after_mb": rss_mb(pid), "request_mb": sum(map(len, pngs)) / 2**20, "images": len(pngs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: an untrained MobileNet 0.25 at 224 px)")
    parser.add_argument("--data-dir", help="a split whose test images are sent (default: the Kaggle subset by id)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--swaps", type=int, default=10)
    args = parser.parse_args()
    data_dir = Path(args.data_dir) if args.data_dir else prepare_data()
    files, _ = expand_inputs([data_dir / "test"])
    payloads = [Path(path).read_bytes() for path in files[:500]]
    work = Path(tempfile.mkdtemp(prefix="catsdogs-bench-serve-life-"))
    folder = work / "saved_models"
    folder.mkdir()
    model = Path(args.model) if args.model else untrained_mobilenet(work / "model.keras")
    publish(model, folder, 1)
    process = subprocess.Popen([sys.executable, "-m", "catsdogs.serve", "--saved-models-dir", str(folder),
                                "--port", "0", "--model-poll", "0.5", "--max-body-mb", "512"],
                               stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert process.stderr is not None
        url = next(found.group(1) for line in process.stderr
                   if (found := re.search(r"on (http://127\.0\.0\.1:\d+)/", line)))
        for payload in payloads[:32]:  # warm-up
            httpx.post(f"{url}/predict", content=payload, timeout=60)
        swap = asyncio.run(swap_under_load(url, process.pid, model, folder, payloads, args.clients, args.swaps))
        memory = large_requests(url, process.pid, payloads[0])
    finally:
        process.terminate()
        process.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.clients} clients, test images of {data_dir}; model "
          f"{args.model or 'untrained MobileNet 0.25, 224 px'}")
    print_table([swap], ["answers", "errors", "swap_seconds", "p50_before_ms", "p99_before_ms", "p50_during_ms",
                         "p99_during_ms", "old_version_after_swap"])
    print_table([swap], ["swaps", "rss_after_first_swap_mb", "rss_after_swaps_mb"])
    print_table([memory], ["images", "request_mb", "rss_rest_mb", "rss_peak_mb", "rss_right_after_mb",
                           "rss_2s_after_mb"])
    write_results("serve-life", {"model": args.model or "untrained mobilenet 0.25 at 224 px", "data": str(data_dir),
                                 "clients": args.clients, "swap": swap, "large_requests": memory})


if __name__ == "__main__":
    main()
