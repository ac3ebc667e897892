"""Micro-batching: images from concurrent requests share one model call.

The first image to arrive waits at most ``window_s`` for others (or until ``max_batch`` are there);
then the batch runs in a worker thread while the next batch gathers, up to ``in_flight`` batches at
once (two let a ``.keras`` model decode one batch while it runs the other: 250 against 206-227
images/s with 8 clients on 2 cores; one for a model that is not thread-safe). Under load the batches
fill by themselves; alone, a request pays at most the window. Batch sizes are counted for ``/metrics``.

A batch whose requests all timed out gives its place to the next batch at once; its model call, already
running in its thread, finishes and its result is dropped. Up to ``in_flight`` such calls may run beside the
live ones (more would hold the next batch up again, in the thread pool). A model that is not thread-safe
cannot run two calls at once, so there the next batch waits for the abandoned one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


class Batcher:
    """``await batcher.predict(item)`` -> that item's class probabilities, computed in a shared batch."""

    def __init__(self, predict: Callable[[list[Any]], np.ndarray], max_batch: int, window_s: float,
                 in_flight: int = 2, thread_safe: bool = True) -> None:
        self._predict, self.max_batch, self.window_s, self.in_flight = predict, max_batch, window_s, in_flight
        self.thread_safe = thread_safe
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[np.ndarray]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=2 * in_flight if thread_safe else 1,
                                            thread_name_prefix="catsdogs-model")
        self.batch_sizes: Counter[int] = Counter()
        self.batch_seconds = 0.0

    @property
    def _jobs(self) -> asyncio.Queue[tuple[Any, asyncio.Future[np.ndarray]]]:
        if self._queue is None:
            raise RuntimeError("Batcher.start() makes the queue, in the server's event loop")
        return self._queue

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, item: Any) -> np.ndarray:
        """``item``'s row of the batch it joins (the predict function takes a list of items)."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._jobs.put((item, future))
        return await future

    async def _gather(self) -> list[tuple[Any, asyncio.Future[np.ndarray]]]:
        batch = [await self._jobs.get()]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                while len(batch) < self.max_batch and not self._jobs.empty():  # whatever queued meanwhile
                    batch.append(self._jobs.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self._jobs.get(), remaining))
            except asyncio.TimeoutError:  # noqa: UP041 (Python 3.10: not yet the built-in TimeoutError)
                break
        return batch

    async def _run(self) -> None:
        in_flight = asyncio.Semaphore(self.in_flight)
        while True:
            await in_flight.acquire()  # gather the next batch while at most in_flight - 1 others run
            batch = await self._gather()
            batch = [(item, future) for item, future in batch if not future.cancelled()]  # timed out meanwhile
            if not batch:
                in_flight.release()
                continue
            task = asyncio.get_running_loop().create_task(self._call(batch))
            task.add_done_callback(lambda _: in_flight.release())

    async def _call(self, batch: list[tuple[Any, asyncio.Future[np.ndarray]]]) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._executor, self._predict, [item for item, _ in batch])
        abandoned = loop.create_future()

        def answered(_: object) -> None:
            if not abandoned.done() and all(future.done() for _, future in batch):
                abandoned.set_result(None)

        for _, future in batch:
            future.add_done_callback(answered)
        await asyncio.wait({call, abandoned} if self.thread_safe else {call}, return_when=asyncio.FIRST_COMPLETED)
        if not call.done():  # every request timed out: the next batch goes ahead; this result is dropped
            call.add_done_callback(lambda done: done.cancelled() or done.exception())  # no "never retrieved" warning
            return
        try:
            probabilities = call.result()
        except Exception as exc:  # noqa: BLE001 (the requests get the error; the server goes on)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batch_seconds += time.perf_counter() - started
        self.batch_sizes[len(batch)] += 1
        for (_, future), row in zip(batch, probabilities):
            if not future.done():
                future.set_result(row)

    @property
    def mean_batch_size(self) -> float:
        batches = sum(self.batch_sizes.values())
        return sum(size * count for size, count in self.batch_sizes.items()) / batches if batches else 0.0
