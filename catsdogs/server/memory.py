"""Giving freed memory back to the system, after a large request or a retired model.

glibc's ``malloc`` keeps what Python, NumPy and TensorFlow free in its per-thread arenas, so a server that
decoded 64 large photos once stays at that size for good (measured: 1.26 to 2.17 GB, BENCHMARKS.md
section 10). ``malloc_trim(0)`` hands the free pages back. Elsewhere (macOS, musl, Windows) there is no
such call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")  # None: the program itself, which links the C library
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_memory() -> bool:
    """Collect Python's cycles, then return the free heap to the system; whether ``malloc_trim`` ran."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
