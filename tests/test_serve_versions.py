"""A server left running: new models come in without a restart or a lost request, bad ones are refused, and
every prediction names the version that made it (``catsdogs.server.versions``); the command says where it
listens only once it listens, reloads on SIGHUP and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers.serving import serving
from helpers.training import train_tiny

from catsdogs.metadata import ModelInfo
from catsdogs.models.saving import load_model, save_model
from catsdogs.runtime.opening import open_classifier
from catsdogs.server.app import create_app
from catsdogs.server.limits import Limits
from catsdogs.server.versions import ModelSource

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny(tmp_path_factory.mktemp("versions"), "small_cnn", 48, ("cats", "dogs"), False)


def publish(trained: tuple[Path, Path], path: Path, val_accuracy: float, classes=("cats", "dogs"),
            weights=None) -> Path:
    """The trained model saved at ``path`` (atomically, as ``train`` publishes) with a recorded validation
    accuracy (the default is the best), other ``classes`` or other ``weights``."""
    model, _ = load_model(trained[0])
    if weights is not None:
        model.set_weights(weights(model.get_weights()))
    info = ModelInfo(list(classes), 48, "small_cnn", extra={"metrics": {"best_val_accuracy": val_accuracy}})
    return save_model(model, path, info)


def answering_nan(weights: list[np.ndarray]) -> list[np.ndarray]:
    """Finite weights whose activations overflow: the first kernel to +infinity, the next ones, of both signs, add
    +infinity to -infinity, which is NaN."""
    signs = np.random.default_rng(0)
    kernels = [i for i, w in enumerate(weights) if w.ndim >= 2]
    return [w if i not in kernels else np.full_like(w, 3e38) if i == kernels[0] else
            (signs.choice([-1.0, 1.0], w.shape) * 3e38).astype(w.dtype) for i, w in enumerate(weights)]


def images(trained) -> list[bytes]:
    return [p.read_bytes() for p in sorted((trained[1] / "test").rglob("*.jpg"))]


def status(url: str) -> list[dict]:
    return httpx.get(f"{url}/v1/models/catsdogs").json()["model_version_status"]


def wait_for(url: str, version: int, state: str, timeout: float = 60) -> dict:
    """Version ``version``'s status once it is in ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [s for s in status(url) if s["version"] == str(version) and s["state"] == state]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"version {version} did not become {state}: {status(url)}")


def test_a_new_default_model_is_served_under_load_without_a_lost_request(trained, tmp_path):
    folder = tmp_path / "saved_models"
    first = publish(trained, folder / "first.keras", 0.80)
    photos = images(trained)
    app = create_app(open_classifier(first), "catsdogs", Limits(), ModelSource(None, folder), poll_s=0.1)
    answers: list[list[tuple[int, str, str]]] = [[] for _ in range(8)]

    async def client(url: str, index: int, until: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while not until.is_set():
                response = await http.post(f"{url}/predict", content=photos[index % len(photos)])
                body = response.json()
                answers[index].append((response.status_code, body.get("model_version"), body.get("model_file")))
                await asyncio.sleep(0.01)

    async def load(url: str) -> None:
        until = asyncio.Event()
        clients = [asyncio.create_task(client(url, i, until)) for i in range(8)]
        await asyncio.sleep(1)
        await asyncio.to_thread(publish, trained, folder / "better.keras", 0.95)  # what train does
        for _ in range(600):  # the swap, then a while on the new model
            if sum(1 for a in answers for _, version, _ in a if version == "2") >= 40:
                break
            await asyncio.sleep(0.05)
        until.set()
        await asyncio.gather(*clients)

    with serving(app) as url:
        asyncio.run(load(url))
        versions = status(url)
        metrics = httpx.get(f"{url}/metrics").text
        health = httpx.get(f"{url}/healthz").json()
    every = [answer for client in answers for answer in client]
    assert {code for code, _, _ in every} == {200}, "a request failed during the swap"
    assert {(v, f) for _, v, f in every} == {("1", str(first)), ("2", str(folder / "better.keras"))}
    for client in answers:  # once a client is answered by the new model, never again by the old one
        seen = [version for _, version, _ in client]
        assert "2" in seen and "1" not in seen[seen.index("2"):]
    assert [(v["version"], v["state"]) for v in versions] == [("2", "AVAILABLE"), ("1", "END")]
    assert health["model_version"] == "2"
    counted = {v: float(n) for v, n in re.findall(r'^catsdogs_model_requests_total\{version="(\d+)"\} (\S+)',
                                                     metrics, re.M)}
    assert counted == {v: float(sum(1 for _, version, _ in every if version == v)) for v in ("1", "2")}
    assert "catsdogs_model_version 2.0" in metrics
    assert app.state.server.versions.versions[0].classifier is None  # the old model is dropped


def test_a_replaced_model_file_is_checked_before_it_serves_and_a_corrupt_one_is_refused(trained, tmp_path, caplog):
    served = publish(trained, tmp_path / "model.keras", 0.8)
    photo = images(trained)[0]
    app = create_app(open_classifier(served), "catsdogs", Limits(), ModelSource(served, None), poll_s=0)
    versions = app.state.server.versions
    with serving(app) as url:
        staged = tmp_path / "staged"
        staged.write_bytes(b"PK\x03\x04 not really a model")
        os.replace(staged, served)  # a corrupt file where the model was
        versions.request_check()
        refused = wait_for(url, 2, "END")
        assert refused["status"]["error_code"] != "OK" and str(served) in refused["status"]["error_message"]
        answer = httpx.post(f"{url}/predict", content=photo).json()
        assert answer["model_version"] == "1" and answer["results"][0]["label"] == "cats"  # the old model serves
        assert any("version 2 refused" in r.getMessage() and str(served) in r.getMessage() for r in caplog.records)

        versions.request_check()  # the same file: not tried again
        time.sleep(0.5)
        assert [s["version"] for s in status(url)] == ["2", "1"]

        publish(trained, served, 0.9)  # the file changes: tried again, and it serves
        versions.request_check()
        wait_for(url, 3, "AVAILABLE")
        tf_answer = httpx.post(f"{url}/v1/models/catsdogs:predict",
                               json={"instances": [np.full((48, 48, 3), 100.0).tolist()]}).json()
        assert tf_answer["model_spec"]["version"] == "3" and tf_answer["model_file"] == str(served)
        assert httpx.get(f"{url}/v1/models/catsdogs/versions/3").json()["model_version_status"][0]["state"] == \
            "AVAILABLE"
        assert httpx.post(f"{url}/v1/models/catsdogs/versions/1:predict",
                          json={"instances": [np.full((48, 48, 3), 100.0).tolist()]}).status_code == 404
    assert [(s["version"], s["state"]) for s in status_of(versions)] == [("3", "AVAILABLE"), ("2", "END"),
                                                                          ("1", "END")]


def status_of(versions) -> list[dict]:
    return [v.status() for v in reversed(versions.versions)]


@pytest.mark.parametrize("kind", ["answers NaN", "other classes"])
def test_a_new_default_that_answers_nan_or_has_other_classes_is_refused(trained, tmp_path, kind):
    folder = tmp_path / "saved_models"
    first = publish(trained, folder / "first.keras", 0.8)
    if kind == "answers NaN":
        bad = publish(trained, folder / "diverged.keras", 0.99, weights=answering_nan)
        model, _ = load_model(bad)
        assert np.isnan(model.predict(np.full((1, 48, 48, 3), 100.0), verbose=0)).any()  # what it is made to be
        expected = "it answers NaN"
    else:
        bad = publish(trained, folder / "birds.keras", 0.99, classes=("cats", "birds"))
        expected = "['cats', 'birds'] are not the served model's ['cats', 'dogs']"
    app = create_app(open_classifier(first), "catsdogs", Limits(), ModelSource(None, folder), poll_s=0.1)
    with serving(app) as url:
        refused = wait_for(url, 2, "END")
        assert expected in refused["status"]["error_message"] and str(bad) in refused["status"]["error_message"]
        time.sleep(0.5)  # several looks later: not tried again, the first model serves
        assert [(s["version"], s["state"]) for s in status(url)] == [("2", "END"), ("1", "AVAILABLE")]
        assert httpx.post(f"{url}/predict", content=images(trained)[0]).json()["model_version"] == "1"
        assert 'catsdogs_model_versions_total{result="refused"} 1.0' in httpx.get(f"{url}/metrics").text


def start(model: Path, *flags: str) -> tuple[subprocess.Popen, str, socket.socket]:
    """``python -m catsdogs.serve --model MODEL --port 0 FLAGS``, its URL, and a connection made the instant the
    server said where it listens."""
    process = subprocess.Popen([sys.executable, "-m", "catsdogs.serve", "--model", str(model), "--port", "0", *flags],
                               cwd=ROOT, stderr=subprocess.PIPE, text=True, env=ENV)
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"serving catsdogs on http://127\.0\.0\.1:(\d+)/", line)
        if found:
            try:
                connection = socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=30)
            except ConnectionRefusedError:
                process.kill()
                raise AssertionError("the server said where it listens before it listened") from None
            return process, f"http://127.0.0.1:{found.group(1)}", connection
    process.wait(30)
    raise AssertionError(f"the server did not say where it listens; it exited with {process.returncode}")


def test_the_command_says_where_it_listens_only_once_it_listens(trained, tmp_path):
    """20 starts of 20: a client that connects the instant the line appears is accepted."""
    from catsdogs.exports.exporter import export_model

    exported = export_model(trained[0], "onnx", output=tmp_path, check_images=0).model_path
    for attempt in range(20):
        process, _, connection = start(exported if attempt else trained[0])  # .keras once, the quick export after
        try:
            with connection:
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                answer = b"".join(iter(functools.partial(connection.recv, 65536), b""))
            assert answer.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in answer, (attempt, answer[:200])
        finally:
            process.terminate()
            process.wait(30)


def test_sighup_loads_the_replaced_model_and_sigterm_answers_the_requests_in_flight(trained, tmp_path):
    served = publish(trained, tmp_path / "model.keras", 0.8)
    process, url, connection = start(served, "--model-poll", "0", "--batch-window-ms", "300")
    connection.close()
    try:
        assert httpx.post(f"{url}/predict", content=images(trained)[0]).json()["model_version"] == "1"
        publish(trained, tmp_path / "staged.keras", 0.9)
        shutil.move(tmp_path / "staged.keras", served)
        time.sleep(0.3)
        assert status(url)[0]["version"] == "1"  # polling is off: nothing changes before the signal
        process.send_signal(signal.SIGHUP)
        wait_for(url, 2, "AVAILABLE")

        async def in_flight() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                requests = [asyncio.create_task(client.post(f"{url}/predict", content=photo))
                            for photo in images(trained)[:8]]
                await asyncio.sleep(0.1)  # taken, and waiting for their batch
                process.send_signal(signal.SIGTERM)
                return [response.status_code for response in await asyncio.gather(*requests)]

        assert asyncio.run(in_flight()) == [200] * 8
        assert process.wait(30) == -signal.SIGTERM  # drained, then ended by the signal, as uvicorn re-raises it
    finally:
        process.kill()
        process.wait(30)

