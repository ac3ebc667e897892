"""What one request may hold, and how long it may take: the server's bounds, as data (no imports: the
``serve`` command reads its flags' defaults here before TensorFlow loads)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The bounds of one request. The pixel limit is the file checks' (``$CATSDOGS_MAX_PIXELS``)."""

    max_body_bytes: int = 32 * 2**20  # a batch of phone photos fits; a runaway upload does not
    max_images: int = 64  # per request
    max_batch: int = 32  # images per model call, across requests
    # How long the first image of a batch waits for company. Under load the queue fills batches anyway;
    # with 8 clients, 1 ms served 0.81 of the in-process rate against 0.79 for 5 ms (BENCHMARKS.md section 10).
    batch_window_s: float = 0.001
    timeout_s: float = 30.0  # a request still unanswered after this gets a 503
