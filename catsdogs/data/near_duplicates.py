"""Near-duplicate photos: the same picture re-encoded, resized or slightly cropped, within a split or across splits.

Two signals, because each alone is either blind or credulous:

- a **perceptual hash** (``imagehash.phash``: the signs of an image's lowest 8x8 DCT frequencies, 64 bits) moves
  by a few bits under JPEG re-encoding, resizing and small crops, but different photos can land within 10-14 bits
  of each other (82 pairs among 2,000 Kaggle photos lie within 14);
- **feature similarity** (cosine between a pretrained network's pooled features, ``catsdogs.audits.features``)
  tells different photos apart, but can be high for two photos of one breed in one pose.

A pair is a near-duplicate when its hashes are within ``HASH_BITS_WITH_FEATURES`` bits *and* its features are at
least ``MIN_SIMILARITY`` alike, or, with or without features, when the hashes are within ``HASH_BITS_ALONE``
bits (the same picture). Pairs are joined into groups (a copy of a copy is one group). The thresholds were
measured on the Kaggle originals (BENCHMARKS.md, "Auditing the data").

No TensorFlow and no model here: ``data_prep --group-near-duplicates`` groups with this same function, on hashes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from catsdogs.data.images import open_upright
from catsdogs.errors import require_optional

# Measured on the Kaggle originals: a 5 % crop, a 90 % resize and JPEG at quality 60 moved 300 photos' hashes by
# 6 bits (median), 8 (90th percentile), 14 at most; among 2,000 different photos (2 M pairs) none lies within 8 bits
# of another, 1 pair within 10, 12 within 12, 82 within 14. So 8 bits alone is one picture; up to 16, the
# features decide.
HASH_BITS_ALONE = 8  # of 64
HASH_BITS_WITH_FEATURES = 16
MIN_SIMILARITY = 0.90  # cosine of pooled ImageNet features: the two same-photo pairs in the originals scored 0.99
AUDIT_EXTRA = "pip install 'catsdogs[audit]'"
HASH_SIDE = 256  # the image is shrunk to this before hashing (phash looks at 32x32 anyway)


def perceptual_hash(image_file: str | Path | bytes) -> int:
    """The 64-bit DCT hash of the upright image (``imagehash.phash``) as an integer; a path or the file's bytes
    (a source inside a zip, ``data_prep --group-near-duplicates``)."""
    imagehash = require_optional("imagehash", "imagehash", "finding near-duplicates", AUDIT_EXTRA)
    image = Image.fromarray(open_upright(io.BytesIO(image_file) if isinstance(image_file, bytes) else image_file,
                                         HASH_SIDE))
    bits = imagehash.phash(image).hash.flatten()
    return int("".join("1" if bit else "0" for bit in bits), 2)


def hash_distances(hashes: Sequence[int], rows: slice | None = None) -> np.ndarray:
    """Hamming distances (bits) between ``hashes[rows]`` and every hash: ``(len(rows), N)`` uint8."""
    values = np.asarray(hashes, dtype=np.uint64)
    selected = values[rows] if rows is not None else values
    return np.bitwise_count(selected[:, None] ^ values[None, :]).astype(np.uint8)


def near_duplicate_pairs(hashes: Sequence[int], features: np.ndarray | None = None,
                         block: int = 512) -> list[tuple[int, int, int, float]]:
    """``(i, j, hash bits, feature similarity or NaN)`` for every near-duplicate pair ``i < j`` (see the module)."""
    count = len(hashes)
    unit = None
    if features is not None:
        flat = np.asarray(features, np.float32).reshape(count, -1)
        unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    pairs = []
    for start in range(0, count, block):  # blocks of rows: N x N would be 16 M entries for 4,000 images
        rows = slice(start, min(start + block, count))
        bits = hash_distances(hashes, rows)
        similar = unit[rows] @ unit.T if unit is not None else None
        near = bits <= (HASH_BITS_WITH_FEATURES if similar is not None else HASH_BITS_ALONE)
        for r, j in zip(*np.nonzero(near)):
            i = start + int(r)
            if i >= j:
                continue
            similarity = float(similar[r, j]) if similar is not None else float("nan")
            if bits[r, j] <= HASH_BITS_ALONE or similarity >= MIN_SIMILARITY:
                pairs.append((i, int(j), int(bits[r, j]), similarity))
    return pairs


def groups_of(pairs: Sequence[tuple[int, int, int, float]]) -> list[list[int]]:
    """The connected groups of the pairs (union-find), each sorted, largest first."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, *_ in pairs:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in parent:
        groups.setdefault(root(i), []).append(i)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))
