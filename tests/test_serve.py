"""The server, over real HTTP on an ephemeral 127.0.0.1 port: our API, TF Serving's, bad requests, batching,
limits; the command itself; and the page in a real headless browser."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers.images import write_image
from helpers.serving import serving
from helpers.training import train_tiny
from PIL import Image

from catsdogs.errors import UserError
from catsdogs.exports.exporter import export_model
from catsdogs.runtime.engines import BYTES_SIGNATURE
from catsdogs.runtime.opening import open_classifier
from catsdogs.serve import main as serve_main
from catsdogs.server.app import create_app
from catsdogs.server.limits import Limits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_tiny(tmp_path_factory.mktemp("serve"), "small_cnn", 48, ("cats", "dogs"), False)


def split_images(data: Path) -> list[Path]:
    return sorted((data / "test").rglob("*.jpg"))


@pytest.fixture(scope="module")
def keras_server(trained) -> Iterator[str]:
    model, _ = trained
    with serving(create_app(open_classifier(model), "pets")) as url:
        yield url


def test_health_status_and_metadata_answer_as_tf_serving_does(keras_server, trained):
    assert httpx.get(f"{keras_server}/healthz").json() == {"status": "ok", "model": "pets", "format": "keras",
                                                           "model_version": "1", "model_file": str(trained[0])}
    status = httpx.get(f"{keras_server}/v1/models/pets").json()
    assert status == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                "status": {"error_code": "OK", "error_message": ""}}]}
    metadata = httpx.get(f"{keras_server}/v1/models/pets/metadata").json()
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "serving_bytes"}
    assert [d["size"] for d in signatures["serving_default"]["inputs"]["image"]["tensor_shape"]["dim"]] == \
        ["-1", "48", "48", "3"]
    assert metadata["catsdogs"]["class_names"] == ["cats", "dogs"] and metadata["catsdogs"]["grad_cam"] is True


def test_predict_takes_multipart_and_raw_images_and_draws_grad_cam(keras_server, trained):
    _, data = trained
    images = split_images(data)
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in images[:2] + images[-2:]]
    answer = httpx.post(f"{keras_server}/predict?gradcam=1", files=files).json()
    assert [r["label"] for r in answer["results"]] == ["cats", "cats", "dogs", "dogs"]
    for result in answer["results"]:
        assert abs(sum(result["probabilities"].values()) - 1) < 1e-5
        assert result["probability"] == max(result["probabilities"].values())
        assert Image.open(io.BytesIO(base64.b64decode(result["gradcam_png"]))).format == "PNG"
    raw = httpx.post(f"{keras_server}/predict", content=images[-1].read_bytes(),
                     headers={"content-type": "image/jpeg"}).json()
    assert raw["results"][0]["label"] == "dogs" and "gradcam_png" not in raw["results"][0]


def post_json(url: str, body: object) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body), headers={"content-type": "application/json"})


def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_goes_on(keras_server, trained, tmp_path):
    _, data = trained
    good = split_images(data)[0].read_bytes()
    bomb = io.BytesIO()
    Image.new("L", (6000, 6000)).save(bomb, "PNG")  # 36 M pixels, a few kB
    os.environ.pop("CATSDOGS_MAX_PIXELS", None)
    cases = [
        (httpx.post(f"{keras_server}/predict", content=b"hello", headers={"content-type": "text/plain"}), 400,
         "not an image"),
        (httpx.post(f"{keras_server}/predict", content=good[:300]), 400, "corrupt or truncated JPEG"),
        (httpx.post(f"{keras_server}/predict", content=bomb.getvalue()), 400, "too large"),
        (httpx.post(f"{keras_server}/predict", content=b""), 400, "no image"),
        (httpx.post(f"{keras_server}/predict", content=b"x" * (33 * 2**20)), 413, "limit"),
        (httpx.post(f"{keras_server}/predict", files=[("image", ("a.jpg", good))] * 65), 413, "limit is 64"),
        (httpx.post(f"{keras_server}/v1/models/pets:predict", content=b"{not json"), 400, "not JSON"),
        (post_json(f"{keras_server}/v1/models/dogs:predict", {"instances": [[0]]}), 404, "Servable not found"),
        (post_json(f"{keras_server}/v1/models/pets:predict", {"instances": [[[0, 0, 0]]]}), 400, "must be (48, 48, 3)"),
        (post_json(f"{keras_server}/v1/models/pets:predict", {"instances": [], "inputs": []}), 400, "exactly one"),
        (post_json(f"{keras_server}/v1/models/pets:predict", {"signature_name": "other", "instances": [1]}), 400,
         "unknown signature_name"),
        (post_json(f"{keras_server}/v1/models/pets:predict",
                   {"signature_name": BYTES_SIGNATURE, "instances": [{"b64": base64.b64encode(b"no").decode()}]}),
         400, "instance 0: not an image"),
        (httpx.get(f"{keras_server}/v1/models/pets/labels"), 404, "no such endpoint"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (words, response.text)
        assert words in response.json()["error"], (words, response.json())
    mixed = httpx.post(f"{keras_server}/predict", files=[("image", ("good.jpg", good)), ("image", ("bad.jpg", b"x"))])
    assert mixed.status_code == 200
    assert [("label" in r, "error" in r) for r in mixed.json()["results"]] == [(False, True), (True, False)]
    assert httpx.get(f"{keras_server}/healthz").status_code == 200


def test_tf_serving_json_gets_the_same_answer_here_and_from_the_exported_saved_model(trained, tmp_path):
    model, data = trained
    engine = open_classifier(export_model(model, "saved_model", output=tmp_path, check_images=0).model_path)
    pngs = []
    for index, path in enumerate(split_images(data)[::3]):  # PNGs decode identically in Pillow and TensorFlow
        pngs.append(write_image(tmp_path / f"{index}.png", np.asarray(Image.open(path).convert("RGB")), "PNG"))
    encoded = [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in pngs]
    tensors = np.stack([np.asarray(Image.open(p).convert("RGB").resize((48, 48), Image.BILINEAR)) for p in pngs])
    bodies = [{"signature_name": BYTES_SIGNATURE, "instances": encoded},
              {"instances": tensors.astype(float).tolist()}, {"inputs": {"image": tensors.astype(float).tolist()}}]
    with serving(create_app(open_classifier(model), "catsdogs")) as url:
        for body in bodies:
            ours = post_json(f"{url}/v1/models/catsdogs:predict", body).json()
            if "signature_name" in body:
                theirs = engine.predict_bytes([base64.b64decode(e["b64"]) for e in encoded])
            else:
                theirs = engine.predict(tensors.astype(np.float32))
            key = "outputs" if "inputs" in body else "predictions"
            assert set(ours) == {key, "model_spec", "model_file"} and ours["model_spec"]["version"] == "1"
            np.testing.assert_allclose(ours[key], theirs, atol=1e-4)


def test_concurrent_requests_are_batched_and_counted_in_metrics(trained):
    model, data = trained
    app = create_app(open_classifier(model), "catsdogs", Limits(batch_window_s=0.05))
    images = [p.read_bytes() for p in split_images(data)]

    async def clients(url: str) -> list[int]:
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(*(client.post(f"{url}/predict", content=images[i % len(images)])
                                             for i in range(16)))
        return [a.status_code for a in answers]

    with serving(app) as url:
        assert asyncio.run(clients(url)) == [200] * 16
        metrics = httpx.get(f"{url}/metrics").text
    count = float(re.search(r"^catsdogs_batch_size_count (\S+)", metrics, re.M).group(1))
    total = float(re.search(r"^catsdogs_batch_size_sum (\S+)", metrics, re.M).group(1))
    assert total == 16 and count < 16  # some requests shared a model call
    assert 'catsdogs_requests_total{endpoint="/predict",status="200"} 16.0' in metrics


def test_a_slow_model_gets_503_within_the_time_limit(trained):
    model, data = trained
    classifier = open_classifier(model)
    slow = classifier.predict_items

    def sleepy(items):
        time.sleep(0.5)
        return slow(items)

    classifier.predict_items = sleepy
    with serving(create_app(classifier, "catsdogs", Limits(timeout_s=0.1))) as url:
        response = httpx.post(f"{url}/predict", content=split_images(data)[0].read_bytes())
        assert response.status_code == 503 and "no answer within 0.1 s" in response.json()["error"]
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_the_time_limit_holds_whatever_the_request_spends_its_time_on(trained):
    model, data = trained
    classifier = open_classifier(model)
    prepare = classifier.prepare

    def slow_decode(data: bytes):
        time.sleep(2)  # a slow upload's decoding: outside the batch, once outside the limit too
        return prepare(data)

    classifier.prepare = slow_decode
    with serving(create_app(classifier, "catsdogs", Limits(timeout_s=0.3))) as url:
        started = time.perf_counter()
        response = httpx.post(f"{url}/predict", content=split_images(data)[0].read_bytes())
        waited = time.perf_counter() - started
        assert response.status_code == 503 and "no answer within 0.3 s" in response.json()["error"]
        assert waited < 1.3, waited  # the limit, plus at most a second


def test_a_batch_whose_requests_timed_out_does_not_hold_up_the_next(trained):
    model, data = trained
    classifier = open_classifier(model)
    predict, calls = classifier.predict_items, itertools.count()

    def first_two_slow(items):
        if next(calls) < 2:  # both batch places taken by calls that outlive their requests
            time.sleep(6)
        return predict(items)

    photo = split_images(data)[0].read_bytes()
    predict([classifier.prepare(photo)])  # its graphs built now: the third request must not wait for that either
    classifier.predict_items = first_two_slow

    async def requests(url: str) -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            first = asyncio.create_task(client.post(f"{url}/predict", content=photo))
            await asyncio.sleep(0.2)  # a batch of its own
            second = asyncio.create_task(client.post(f"{url}/predict", content=photo))
            timed_out = [response.status_code for response in await asyncio.gather(first, second)]
            return [*timed_out, (await client.post(f"{url}/predict", content=photo)).status_code]

    with serving(create_app(classifier, "catsdogs", Limits(timeout_s=2))) as url:
        assert asyncio.run(requests(url)) == [503, 503, 200]  # the third is answered while the slow calls run on


def test_json_nested_deeper_than_any_image_is_a_400(keras_server):
    deep = '{"instances": ' + "[" * 5000 + "]" * 5000 + "}"
    response = httpx.post(f"{keras_server}/v1/models/pets:predict", content=deep)
    assert response.status_code == 400 and "nested too deep" in response.json()["error"]


def test_an_exported_model_is_served_without_grad_cam(trained, tmp_path):
    model, data = trained
    exported = export_model(model, "litert", output=tmp_path, check_images=0).model_path
    images = [p.read_bytes() for p in split_images(data)]

    async def clients(url: str) -> list[int]:  # LiteRT is not thread-safe: its batches must not overlap
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(*(client.post(f"{url}/predict", content=images[i % len(images)])
                                             for i in range(24)))
        return [a.status_code for a in answers]

    with serving(create_app(open_classifier(exported), "catsdogs", Limits(batch_window_s=0.001))) as url:
        answer = httpx.post(f"{url}/predict?gradcam=1", content=images[-1]).json()
        assert answer["results"][0]["label"] == "dogs" and "gradcam_png" not in answer["results"][0]
        assert "exported (LiteRT) model" in answer["gradcam"]
        assert httpx.get(f"{url}/healthz").json()["format"] == "LiteRT"
        assert asyncio.run(clients(url)) == [200] * 24
    assert not open_classifier(exported).thread_safe  # so the server runs one batch at a time
    assert open_classifier(model).thread_safe  # and a .keras model's batches may overlap


def test_the_command_serves_on_localhost_and_refuses_bad_flags(trained):
    model, data = trained
    with pytest.raises(UserError, match="--port must be"):
        serve_main(["--model", str(model), "--port", "70000"])
    process = subprocess.Popen([sys.executable, "-m", "catsdogs.serve", "--model", str(model), "--port", "0"],
                               cwd=ROOT, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        url = None
        for line in process.stderr:
            found = re.search(r"serving catsdogs on (http://127\.0\.0\.1:\d+)/", line)
            if found:
                url = found.group(1)
                break
        assert url, "the command did not say where it serves"
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        answer = httpx.post(f"{url}/predict", content=split_images(data)[0].read_bytes()).json()
        assert answer["results"][0]["label"] == "cats"
        assert "<html" in httpx.get(url).text
    finally:
        process.terminate()
        process.wait(30)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_shows_the_label_and_probability_of_a_dropped_photo(keras_server, trained):
    from playwright.sync_api import sync_playwright

    _, data = trained
    photo = split_images(data)[-1]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(keras_server)
            page.wait_for_function("document.getElementById('model').textContent.includes('Grad-CAM')")
            # A real drop: a File in a DataTransfer, dispatched on the drop zone.
            page.evaluate("""([name, data]) => {
                const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
                document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer}));
            }""", [photo.name, base64.b64encode(photo.read_bytes()).decode()])
            page.wait_for_selector(".result img")
            label = page.text_content(".result .label")
            probability = page.text_content(".result .probability")
        finally:
            browser.close()
    expected = httpx.post(f"{keras_server}/predict", content=photo.read_bytes()).json()["results"][0]
    assert label == expected["label"] == "dogs"
    assert probability == f"{100 * expected['probability']:.1f} %"
