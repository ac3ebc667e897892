"""The served model's versions: the one serving, and how a new one takes its place under a running server.

TensorFlow Serving watches a model's base path, loads a new version beside the one serving, swaps when it
is ready, keeps the old one when the new one fails, and reports each version's state in
``GET /v1/models/<name>``. This is the same on this project's terms. The *source* is the file given with
``--model`` (replaced: a new version), or the default model of a saved-models folder (``runtime.catalog``:
a ``train`` that publishes a better model makes a new default). It is looked at every ``--model-poll``
seconds and at once on SIGHUP.

A candidate is loaded in a thread of its own, beside the serving model, and checked before it serves:

- it loads (a corrupt file, an unchecked export... fail here, with ``open_classifier``'s message);
- it has the serving model's classes, in order (clients read the labels);
- it answers finite probabilities for ``PROBE_IMAGES``, sent as uploads are (``prepare``, ``predict_items``):
  a diverged model answers NaN. The same calls build its graphs, so the first requests after the swap do
  not pay for that.

Then new requests go to it; requests already holding the old version finish on it (each version has its
own batcher, so one batch never mixes two models), and the old one is dropped when its last request is
answered. A refused file is tried again only once it changes (its inode, size or modification time).
Versions are numbered from 1 as they are tried, refused ones included, as TF Serving numbers versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from catsdogs.errors import UserError
from catsdogs.runtime.catalog import choose_model, saved_model_files
from catsdogs.runtime.classifier import Classifier
from catsdogs.runtime.opening import open_classifier
from catsdogs.server.batching import Batcher
from catsdogs.server.memory import release_memory

LOG = logging.getLogger("catsdogs.serve")
KEPT_VERSIONS = 10  # the newest versions that GET /v1/models/<name> reports (TF Serving reports those it manages)

Stamp = tuple[tuple[str, int, int, int], ...]  # (name, inode, size, modification time) per file: a file's identity


def stamp(path: Path) -> Stamp | None:
    """What changes when ``path`` is replaced or rewritten (every file of a SavedModel folder); None: it is gone."""
    try:
        files = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if p.is_file())
        stats = [(str(p.relative_to(path)) if p != path else "", p.stat()) for p in files]
    except OSError:
        return None
    return tuple((name, s.st_ino, s.st_size, s.st_mtime_ns) for name, s in stats)


@cache
def probe_images() -> tuple[bytes, ...]:
    """Four 96-px PNGs a new model must answer finite probabilities for: black, white, a gradient, noise."""
    ramp = np.linspace(0, 255, 96, dtype=np.float32)
    arrays = [np.zeros((96, 96, 3)), np.full((96, 96, 3), 255.0),
              np.stack([np.tile(ramp, (96, 1)), np.tile(ramp[:, None], (1, 96)), np.full((96, 96), 128.0)], -1),
              np.random.default_rng(0).uniform(0, 255, (96, 96, 3))]
    encoded = []
    for array in arrays:
        buffer = io.BytesIO()
        Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return tuple(encoded)


class Refused(Exception):
    """A candidate that must not serve: TF Serving's error code and a message naming the file and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_candidate(candidate: Classifier, serving: Classifier) -> None:
    """Refused unless ``candidate`` has ``serving``'s classes and answers finite probabilities for the probe images."""
    classes, served = list(candidate.info.class_names), list(serving.info.class_names)
    if classes != served:
        raise Refused("FAILED_PRECONDITION", f"its classes {classes} are not the served model's {served}")
    items = [candidate.prepare(data) for data in probe_images()]
    probabilities = np.asarray(candidate.predict_items(items), np.float64)
    if probabilities.shape != (len(items), len(classes)):
        raise Refused("INVALID_ARGUMENT", f"it answers {probabilities.shape} for {len(items)} images of "
                                          f"{len(classes)} classes")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any() or (
            np.abs(probabilities.sum(1) - 1) > 1e-3).any():
        raise Refused("INVALID_ARGUMENT", "it answers NaN or probabilities that do not add up to 1 for the check "
                                          "images (a diverged model)")


@dataclass(frozen=True)
class ModelSource:
    """Where new versions come from: the ``--model`` file, or else the default of ``saved_models_dir``."""

    model: Path | None
    saved_models_dir: Path | None
    unsafe: bool = False

    def listing(self) -> Stamp | None:
        """What changes when the folder's models change (the default is chosen again only then)."""
        if self.model is not None or self.saved_models_dir is None:
            return None
        try:
            return tuple(sorted(s for p in saved_model_files(self.saved_models_dir) for s in (stamp(p) or ())))
        except OSError:
            return None

    def current(self) -> Path:
        """The file that should serve now; a UserError when there is none."""
        if self.model is not None:
            return self.model
        if self.saved_models_dir is None:
            raise UserError("no model file and no saved-models folder to watch")
        return choose_model(self.saved_models_dir)

    def open(self, path: Path) -> Classifier:
        return open_classifier(path, unsafe=self.unsafe)


@dataclass(eq=False)
class Version:
    """One model the server has tried: LOADING, AVAILABLE (serving), UNLOADING (its last requests), or END
    (retired, or refused with ``error_code`` and ``error_message``)."""

    number: int
    path: Path
    stamp: Stamp | None
    state: str = "LOADING"
    error_code: str = "OK"
    error_message: str = ""
    classifier: Classifier | None = None
    batcher: Batcher | None = None
    in_flight: int = 0
    requests: int = 0

    def status(self) -> dict[str, object]:
        """Its entry in TF Serving's ``model_version_status``."""
        return {"version": str(self.number), "state": self.state,
                "status": {"error_code": self.error_code, "error_message": self.error_message}}

    def model(self) -> Classifier:
        if self.classifier is None:
            raise RuntimeError(f"version {self.number} is no longer loaded")
        return self.classifier

    def queue(self) -> Batcher:
        if self.batcher is None:
            raise RuntimeError(f"version {self.number} is no longer loaded")
        return self.batcher


@dataclass(eq=False)
class ModelVersions:
    """The serving version, the ones before it, and the watch for new ones (``start``/``stop`` in the server's
    event loop). ``make_batcher`` gives a version's batcher; ``on_tried`` is told of each new version, once it
    serves (AVAILABLE) or is refused (END)."""

    first: Classifier
    make_batcher: Callable[[Classifier], Batcher]
    source: ModelSource | None = None
    poll_s: float = 0.0
    on_tried: Callable[[Version], None] = lambda version: None
    versions: list[Version] = field(default_factory=list)
    refused: set[tuple[Path, Stamp]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._numbers = itertools.count(1)
        self.serving = Version(next(self._numbers), self.first.path, stamp(self.first.path), "AVAILABLE", "OK", "",
                               self.first, self.make_batcher(self.first))
        self.versions.append(self.serving)
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catsdogs-loader")
        self._listing: Stamp | None = None  # the first look chooses the default (it may have changed since start)
        self._chosen = self.first.path
        self._missing: str | None = None  # the last "cannot find a model" message, logged once
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------------------------------- life
    def start(self) -> None:
        """In the server's event loop: the serving batcher, and the watch when there is a source."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self.serving.queue().start()
        if self.source is not None:
            self._watch = self._loop.create_task(self._watch_source())

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for version in self.versions:
            if version.batcher is not None:
                version.batcher.stop()
        self._loader.shutdown(wait=False, cancel_futures=True)

    def request_check(self) -> None:
        """Look at the source now (SIGHUP); safe from a signal handler or another thread."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _watch_source(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s if self.poll_s > 0 else None)
            self._wake.clear()
            try:
                await self.check()
            except Exception:  # a fault of ours: logged, and the watch goes on with the serving model
                LOG.exception("looking for a new model failed")

    # ---------------------------------------------------------------------------------------- requests
    @contextlib.contextmanager
    def use(self) -> Iterator[Version]:
        """The serving version, held for one request: it is not dropped before the request is answered."""
        version = self.serving
        version.in_flight += 1
        version.requests += 1
        try:
            yield version
        finally:
            version.in_flight -= 1
            if version.state == "UNLOADING" and version.in_flight == 0:
                self._retire(version)

    def find(self, number: str) -> Version | None:
        return next((v for v in self.versions if str(v.number) == number), None)

    # ---------------------------------------------------------------------------------------- new versions
    def _candidate_path(self) -> tuple[Path, Stamp] | None:
        """The file the source names now and its stamp, if it is not what serves nor a refused file (a thread)."""
        assert self.source is not None
        listing = self.source.listing()
        try:
            if self.source.model is not None or listing != self._listing:
                self._chosen = self.source.current()
            self._listing = listing
        except UserError as exc:
            if str(exc) != self._missing:
                LOG.warning("no new model: %s; still serving version %d", exc, self.serving.number)
                self._missing = str(exc)
            return None
        path = self._chosen
        current = stamp(path)
        if current is None:
            message = f"{path} is gone"
            if message != self._missing:
                LOG.warning("%s; still serving version %d", message, self.serving.number)
                self._missing = message
            return None
        self._missing = None
        if (path, current) == (self.serving.path, self.serving.stamp) or (path, current) in self.refused:
            return None
        return path, current

    def _load(self, version: Version) -> Classifier:
        """The candidate, opened and checked (in the loader thread); Refused says why not."""
        assert self.source is not None
        try:
            candidate = self.source.open(version.path)
        except UserError as exc:
            raise Refused("INVALID_ARGUMENT", f"it does not load: {exc}") from None
        except Exception as exc:  # noqa: BLE001 (a file may fail any way inside a runtime; it is refused, not served)
            raise Refused("UNKNOWN", f"it does not load: {type(exc).__name__}: {str(exc)[:200]}") from None
        try:
            check_candidate(candidate, self.serving.model())
        except Refused:
            raise
        except Exception as exc:  # noqa: BLE001 (the same: a model that fails its check is refused)
            raise Refused("UNKNOWN", f"it fails on the check images: {type(exc).__name__}: {str(exc)[:200]}") \
                from None
        return candidate

    async def check(self) -> Version | None:
        """Look at the source once; a new file is loaded, checked and swapped in, or refused. The new version."""
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(self._loader, self._candidate_path)
        if found is None:
            return None
        version = Version(next(self._numbers), *found)
        self.versions.append(version)
        LOG.info("model version %d: loading %s beside version %d", version.number, version.path, self.serving.number)
        try:
            candidate = await loop.run_in_executor(self._loader, self._load, version)
        except Refused as exc:
            version.state, version.error_code, version.error_message = "END", exc.code, f"{version.path}: {exc}"
            self.refused.add((version.path, found[1]))
            self.on_tried(version)
            LOG.warning("model version %d refused: %s: %s; still serving version %d (tried again once the file "
                        "changes)", version.number, version.path, exc, self.serving.number)
            self._forget_old()
            return version
        version.classifier, version.batcher = candidate, self.make_batcher(candidate)
        version.batcher.start()
        previous, self.serving, version.state = self.serving, version, "AVAILABLE"
        previous.state = "UNLOADING"
        if previous.in_flight == 0:
            self._retire(previous)
        self.on_tried(version)
        LOG.info("model version %d serving: %s (was version %d)", version.number, version.path, previous.number)
        self._forget_old()
        return version

    def _retire(self, version: Version) -> None:
        """Its last request is answered: its batcher stops, the model is dropped and the memory given back."""
        version.state = "END"
        if version.batcher is not None:
            version.batcher.stop()
        version.classifier = version.batcher = None
        release_memory()

    def _forget_old(self) -> None:
        """Only the newest ``KEPT_VERSIONS`` are reported (the serving one always)."""
        while len(self.versions) > KEPT_VERSIONS:
            oldest = next((v for v in self.versions if v.state == "END"), None)
            if oldest is None:
                break
            self.versions.remove(oldest)

