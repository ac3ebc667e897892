"""The HTTP application: the served model's versions, the page, our ``/predict`` and TF Serving's REST API,
health and metrics.

Starlette rather than FastAPI: the routes take images and TF Serving's loosely typed JSON, which we
check ourselves (``runtime.tfserving``), so FastAPI's pydantic models and OpenAPI pages would add a
dependency tree without checking anything. uvicorn runs it (``catsdogs.serve``).

Every answer is JSON except the page and ``/metrics``. Every error is ``{"error": "..."}`` with a 4xx
status naming the problem (TF Serving's error shape), and a 500 for a fault of ours: a handler never
lets an exception reach the server, so no input can stop it.

Each request holds the version that was serving when it came (``server.versions``): a new model swapped in
meanwhile does not change the model, the image size or the batch that answers it, and every prediction names
its version and file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from catsdogs.errors import UserError, parameter
from catsdogs.metrics import decide
from catsdogs.runtime.classifier import Classifier, Item
from catsdogs.runtime.engines import BYTES_INPUT, BYTES_SIGNATURE, INPUT_NAME, OUTPUT_NAME, SERVING_DEFAULT
from catsdogs.runtime.tfserving import request_values, response_body
from catsdogs.server.batching import Batcher
from catsdogs.server.limits import Limits
from catsdogs.server.memory import release_memory
from catsdogs.server.overlays import gradcam_png
from catsdogs.server.versions import ModelSource, ModelVersions, Version

LOG = logging.getLogger("catsdogs.serve")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ApiError(Exception):
    """An answer with a 4xx (or 503) status and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Metrics:
    """Prometheus counters in the app's own registry (several apps may live in one test process)."""

    registry: CollectorRegistry
    requests: Counter
    images: Counter
    batch_size: Histogram
    version_requests: Counter
    serving_version: Gauge
    versions_tried: Counter

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(registry,
                   Counter("catsdogs_requests", "Requests answered, by endpoint and status", ["endpoint", "status"],
                           registry=registry),
                   Counter("catsdogs_images", "Images predicted", registry=registry),
                   Histogram("catsdogs_batch_size", "Images per model call (concurrent requests batched together)",
                             buckets=BATCH_BUCKETS, registry=registry),
                   Counter("catsdogs_model_requests", "Prediction requests taken, by the model version that answered",
                           ["version"], registry=registry),
                   Gauge("catsdogs_model_version", "The model version serving now", registry=registry),
                   Counter("catsdogs_model_versions", "New model versions tried, by result (serving or refused)",
                           ["result"], registry=registry))


class Server:
    """The routes' shared state: the model's versions (each with its batcher), the limits, the metrics."""

    def __init__(self, classifier: Classifier, name: str, limits: Limits, source: ModelSource | None = None,
                 poll_s: float = 0.0) -> None:
        self.name, self.limits = name, limits
        self.metrics = Metrics.create()
        self.versions = ModelVersions(classifier, self._batcher, source, poll_s, self._tried)
        self.metrics.serving_version.set(self.versions.serving.number)
        # Uploads decoded at once, across requests: the decode memory is bounded (a 25-megapixel photo takes
        # about 100 MB while it is decoded), and more threads than cores would not decode faster.
        self.decoding = asyncio.Semaphore(os.cpu_count() or 2)
        self.page = resources.files("catsdogs.server").joinpath("static/index.html").read_text()

    def _batcher(self, classifier: Classifier) -> Batcher:
        def predict_batch(items: list[Item]) -> np.ndarray:
            probabilities = classifier.predict_items(items)
            self.metrics.batch_size.observe(len(items))
            self.metrics.images.inc(len(items))
            return probabilities

        # Two batches at once overlap one's decoding with the other's model (measured for .keras: 250 against
        # 206-227 images/s); one for a runtime that is not thread-safe (LiteRT).
        return Batcher(predict_batch, self.limits.max_batch, self.limits.batch_window_s,
                       2 if classifier.thread_safe else 1, classifier.thread_safe)

    def _tried(self, version: Version) -> None:
        serving = version.state == "AVAILABLE"
        if serving:
            self.metrics.serving_version.set(version.number)
        self.metrics.versions_tried.labels("serving" if serving else "refused").inc()

    @contextlib.contextmanager
    def using(self) -> Iterator[Version]:
        """The serving version for one request (``ModelVersions.use``), counted in ``/metrics``."""
        with self.versions.use() as version:
            self.metrics.version_requests.labels(str(version.number)).inc()
            yield version

    async def predict(self, version: Version, images: list[Item]) -> np.ndarray:
        """Probabilities for prepared images, through the version's batcher (the time limit is ``json_route``'s)."""
        batcher = version.queue()
        return np.stack(await asyncio.gather(*(batcher.predict(image) for image in images)))

    async def prepare(self, version: Version, data: bytes, label: str) -> Item:
        """Uploaded bytes -> the version's input, under the file checks (in a thread: it is CPU work)."""
        async with self.decoding:
            try:
                return await run_in_threadpool(version.model().prepare, data)
            except UserError as exc:
                raise ApiError(400, f"{label}: {exc}") from None


# ------------------------------------------------------------------------------------------ requests
LARGE_BODY_BYTES = 8 * 2**20  # after a request this large, the memory it took is given back (server.memory)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` (declared or streamed); a large one is
    marked in ``request.state.large``, so that its memory is given back once it is answered."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the body exceeds the limit of {limit:,} bytes")
    request.state.large = len(body) > LARGE_BODY_BYTES
    return bytes(body)


async def uploads(request: Request, server: Server) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` per image: multipart fields (any name) or the raw body as one image."""
    body = await read_body(request, server.limits.max_body_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        if not body:
            raise ApiError(400, "no image: send it as the body or as multipart/form-data files")
        return [("body", body)]

    async def replay() -> dict[str, Any]:  # the form parser reads the body we already hold
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        # One file over the limit gets through, for predict_endpoint's 413 that names the limit.
        form = await Request(request.scope, replay).form(max_files=server.limits.max_images + 1, max_fields=16)
    except Exception as exc:  # noqa: BLE001 (python-multipart's and Starlette's parse errors differ by version)
        detail = getattr(exc, "detail", None) or str(exc)
        raise ApiError(413 if "Too many" in detail else 400, f"the multipart body could not be read: {detail[:120]}") \
            from None
    files = [(value.filename or key, await value.read()) for key, value in form.multi_items()
             if isinstance(value, UploadFile)]
    if not files:
        raise ApiError(400, "the multipart body holds no file; send images as file fields")
    return files


def model_version(server: Server, spec: str, suffix: str) -> str | None:
    """``<name>[/versions/N]`` + ``suffix`` must name this model: the version asked for (None: the latest);
    404 otherwise (TF Serving's words)."""
    if not spec.endswith(suffix):
        raise ApiError(404, f"no such endpoint: /v1/models/{spec}")
    name, _, version = spec[:len(spec) - len(suffix)].partition("/versions/")
    if name != server.name:
        if name.split("/")[0] == server.name:
            raise ApiError(404, f"no such endpoint: /v1/models/{spec}")
        raise ApiError(404, f"Servable not found for request: Latest({name.split('/')[0]}); this server has "
                            f"{server.name!r}")
    if version and server.versions.find(version) is None:
        raise ApiError(404, f"Servable not found for request: Specific({name}, {version})")
    return version or None


def serving_version(server: Server, spec: str, suffix: str) -> None:
    """A prediction URL may name a version only when it is the one serving (the others are not loaded)."""
    version = model_version(server, spec, suffix)
    if version is not None and version != str(server.versions.serving.number):
        raise ApiError(404, f"Servable not found for request: Specific({server.name}, {version}); version "
                            f"{server.versions.serving.number} is serving")


def answered_by(version: Version) -> dict[str, str]:
    """What every prediction says about the model that made it."""
    return {"model_version": str(version.number), "model_file": str(version.path)}


# ------------------------------------------------------------------------------------------ endpoints
async def predict_endpoint(request: Request, server: Server) -> dict[str, Any]:
    """``POST /predict``: images (multipart or raw) -> labels and probabilities, Grad-CAM with ``?gradcam=1``."""
    files = await uploads(request, server)
    if len(files) > server.limits.max_images:
        raise ApiError(413, f"{len(files)} images in one request; the limit is {server.limits.max_images}")
    explain = request.query_params.get("gradcam", "").lower() in ("1", "true", "yes")
    with server.using() as version:
        classifier = version.model()
        prepared: list[tuple[str, bytes, Item]] = []
        results: list[dict[str, Any]] = []
        for name, data in files:
            try:
                prepared.append((name, data, await server.prepare(version, data, name)))
            except ApiError as exc:
                results.append({"name": name, "error": str(exc)})
        if not prepared:
            raise ApiError(400, "no usable image: " + "; ".join(result["error"] for result in results))
        info = classifier.info
        probabilities = await server.predict(version, [item for _, _, item in prepared])
        for (name, data, _), row, decided in zip(prepared, probabilities,
                                                 decide(np.asarray(probabilities), info.decision_threshold)):
            index = int(decided)
            result = {"name": name, "label": info.class_names[index], "probability": float(row[index]),
                      "probabilities": {label: float(p) for label, p in zip(info.class_names, row)}}
            if explain and classifier.can_explain:
                png = await run_in_threadpool(gradcam_png, classifier, data, row, index)
                result["gradcam_png"] = base64.b64encode(png).decode()
            results.append(result)
    answer: dict[str, Any] = {"model": server.name, **answered_by(version), "class_names": list(info.class_names),
                              "results": results}
    if explain and not classifier.can_explain:
        answer["gradcam"] = f"Grad-CAM needs the model's gradients; this is an exported ({classifier.kind}) model"
    return answer


async def tf_serving_predict(request: Request, server: Server) -> dict[str, Any]:
    """``POST /v1/models/<name>:predict``: TF Serving's REST predict, row or columnar, tensors or b64 images."""
    serving_version(server, request.path_params["spec"], ":predict")
    try:
        body = json.loads(await read_body(request, server.limits.max_body_bytes))
    except ValueError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from None
    except RecursionError:  # JSON nested thousands deep: Python's parser gives up
        raise ApiError(400, "the body is JSON nested too deep; send instances as flat lists") from None
    signature = (body.get("signature_name") or SERVING_DEFAULT) if isinstance(body, dict) else SERVING_DEFAULT
    if signature not in (SERVING_DEFAULT, BYTES_SIGNATURE):
        raise ApiError(400, f"unknown signature_name {signature!r}; this model has {SERVING_DEFAULT} (image tensors) "
                            f"and {BYTES_SIGNATURE} (b64 images)")
    try:
        values, row = request_values(body, INPUT_NAME if signature == SERVING_DEFAULT else BYTES_INPUT)
    except UserError as exc:
        raise ApiError(400, str(exc)) from None
    except RecursionError:
        raise ApiError(400, "the instances are nested too deep; an image is (size, size, 3)") from None
    if len(values) > server.limits.max_images:
        raise ApiError(413, f"{len(values)} instances in one request; the limit is {server.limits.max_images}")
    with server.using() as version:
        size = version.model().info.image_size
        if signature == BYTES_SIGNATURE:
            if not all(isinstance(value, bytes) for value in values):
                raise ApiError(400, f'{BYTES_SIGNATURE} takes images as {{"b64": "..."}} values')
            images = [await server.prepare(version, value, f"instance {index}") for index, value in enumerate(values)]
        else:
            try:
                array = np.asarray(values, np.float32)
            except (ValueError, TypeError):
                raise ApiError(400, "the instances are not numbers of one shape") from None
            if array.shape[1:] != (size, size, 3):
                raise ApiError(400, f"{INPUT_NAME} must be ({size}, {size}, 3) RGB 0-255 per instance, not "
                                    f"{array.shape[1:]}; or send encoded images to {BYTES_SIGNATURE}")
            images = list(array)
        probabilities = await server.predict(version, images)
    # gRPC's PredictResponse names the model that answered in model_spec; the REST answer gets the same
    return {**response_body(probabilities, row),
            "model_spec": {"name": server.name, "version": str(version.number), "signature_name": signature},
            "model_file": str(version.path)}


def tf_serving_status(server: Server, version: str | None = None) -> dict[str, Any]:
    """TF Serving's ``model_version_status``: every version tried, newest first (AVAILABLE: serving; END with an
    error: refused), or only ``version``."""
    shown = [v for v in reversed(server.versions.versions) if version is None or str(v.number) == version]
    return {"model_version_status": [v.status() for v in shown]}


def tf_serving_metadata(server: Server) -> dict[str, Any]:
    """TF Serving's metadata answer (the signatures, as a SavedModel export has them) plus our own."""
    serving = server.versions.serving
    classifier = serving.model()
    info = classifier.info

    def tensor(name: str, dtype: str, dims: list[int], signature: str) -> dict[str, Any]:
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims],
                                                 "unknown_rank": False}, "name": f"{signature}_{name}:0"}

    size, classes = info.image_size, len(info.class_names)
    output = {OUTPUT_NAME: tensor(OUTPUT_NAME, "DT_FLOAT", [-1, classes], "StatefulPartitionedCall")}
    signatures = {
        SERVING_DEFAULT: {"inputs": {INPUT_NAME: tensor(INPUT_NAME, "DT_FLOAT", [-1, size, size, 3], SERVING_DEFAULT)},
                          "outputs": output, "method_name": "tensorflow/serving/predict"},
        BYTES_SIGNATURE: {"inputs": {BYTES_INPUT: tensor(BYTES_INPUT, "DT_STRING", [-1], BYTES_SIGNATURE)},
                          "outputs": output, "method_name": "tensorflow/serving/predict"}}
    return {"model_spec": {"name": server.name, "signature_name": "", "version": str(serving.number)},
            "metadata": {"signature_def": {"signature_def": signatures}},
            "catsdogs": {"class_names": list(info.class_names), "image_size": size, "model": info.model_name,
                         "format": classifier.kind, "file": str(serving.path), "version": serving.number,
                         "grad_cam": classifier.can_explain}}


async def tf_serving_get(request: Request, server: Server) -> dict[str, Any]:
    spec = request.path_params["spec"]
    if spec.endswith("/metadata"):
        model_version(server, spec, "/metadata")
        return tf_serving_metadata(server)
    return tf_serving_status(server, model_version(server, spec, ""))


# ------------------------------------------------------------------------------------------ the app
def json_route(path: str, label: str, handler: Callable[[Request, Server], Awaitable[dict[str, Any]]],
               server: Server, methods: list[str]) -> Route:
    """A route whose handler returns a dict; errors become ``{"error": ...}`` answers, every answer is counted."""

    async def endpoint(request: Request) -> Response:
        try:
            # The whole request within the limit (reading, decoding, the batch): the 503 goes out on time; work
            # already started in a thread may finish, and its result is dropped.
            answer = await asyncio.wait_for(handler(request, server), server.limits.timeout_s)
            response: Response = JSONResponse(answer)
        except asyncio.TimeoutError:  # noqa: UP041 (Python 3.10: not yet the built-in TimeoutError)
            response = JSONResponse({"error": f"no answer within {server.limits.timeout_s:g} s; the server is "
                                              "overloaded, retry later"}, status_code=503)
        except ApiError as exc:
            response = JSONResponse({"error": str(exc)}, status_code=exc.status)
        except Exception:  # a fault of ours: logged with its traceback, answered, and the server goes on
            LOG.exception("%s failed", label)
            response = JSONResponse({"error": "internal error; the server log has the details"}, status_code=500)
        server.metrics.requests.labels(label, str(response.status_code)).inc()
        if getattr(request.state, "large", False):  # after the answer is sent
            response.background = BackgroundTask(release_memory)
        return response

    return Route(path, endpoint, methods=methods)


def create_app(classifier: Classifier, name: str = "catsdogs", limits: Limits | None = None,
               source: ModelSource | None = None, poll_s: float = 0.0) -> Starlette:
    """The application serving ``classifier`` as ``name`` (the TF Serving model name in the URLs) as version 1;
    with a ``source``, new models from it every ``poll_s`` seconds (0: on ``request_check`` only, i.e. SIGHUP)."""
    server = Server(classifier, name, limits or Limits(), source, poll_s)

    async def page(request: Request) -> Response:
        return HTMLResponse(server.page)

    async def health(request: Request, _: Server) -> dict[str, Any]:
        serving = server.versions.serving
        return {"status": "ok", "model": name, "format": serving.model().kind, **answered_by(serving)}

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def status(request: Request, _: Server) -> dict[str, Any]:
        return await tf_serving_get(request, server)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server.versions.start()
        yield
        batcher = server.versions.serving.queue()
        server.versions.stop()
        LOG.info("served %d batches, mean size %.2f", sum(batcher.batch_sizes.values()), batcher.mean_batch_size)

    routes = [Route("/", page), Route("/metrics", metrics),
              json_route("/healthz", "/healthz", health, server, ["GET"]),
              json_route("/predict", "/predict", predict_endpoint, server, ["POST"]),
              json_route("/v1/models/{spec:path}", ":predict", tf_serving_predict, server, ["POST"]),
              json_route("/v1/models/{spec:path}", "/v1/models", status, server, ["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port); a UserError when the address is taken."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        listening.listen(2048)  # connections from now on wait in the backlog until uvicorn accepts them
    except OSError as exc:
        listening.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another {parameter('port')}") from None
    return listening


class _Server(uvicorn.Server):
    """uvicorn, telling ``on_ready`` once it accepts connections (after the app's start-up, not at ``bind``)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self.on_ready()


def run(app: Starlette, listening: socket.socket, on_ready: Callable[[], None] = lambda: None) -> None:
    """Serve ``app`` on ``listening`` with uvicorn until interrupted (no access log: /metrics counts requests);
    ``on_ready`` once requests are answered. SIGHUP asks for a look at the model's source now."""
    server: Server = app.state.server
    hangup = getattr(signal, "SIGHUP", None)  # none on Windows
    previous = signal.signal(hangup, lambda *_: server.versions.request_check()) if hangup is not None else None
    try:
        _Server(uvicorn.Config(app, log_level="warning", access_log=False), on_ready).run(sockets=[listening])
    finally:
        if hangup is not None:
            signal.signal(hangup, previous)
