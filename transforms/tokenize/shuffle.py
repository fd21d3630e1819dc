"""The global deterministic shuffle (DESIGN.md §4): keys, buckets, and how good the result is.

key = 64-bit keyed BLAKE2b of (seed, document id); bucket (output shard) = key mod shards;
documents are sorted by key inside their shard. Nothing depends on workers, bundles or runner,
so one seed gives one order everywhere.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["same_source_pairs", "shuffle_keys"]


def shuffle_keys(seed: int, kind: str, doc_ids: Iterable[str]) -> np.ndarray:
    """The shuffle key (uint64) of each document ``kind/doc_id`` under ``seed``."""
    salt = seed.to_bytes(16, "little", signed=True)
    return np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(f"{kind}/{d}".encode(), digest_size=8, key=salt).digest(), "little"
            )
            for d in doc_ids
        ),
        np.uint64,
    )


def same_source_pairs(sources: Sequence[str]) -> tuple[int, float]:
    """How many adjacent documents share a source file, and how many a uniformly random order
    of the same documents gives on average (``sum c(c-1) / n`` over the sources' counts).

    A shuffle is as good as a perfect one when the two are close; an unshuffled input has
    almost every adjacent pair from the same file.
    """
    n = len(sources)
    if n < 2:
        return 0, 0.0
    observed = sum(a == b for a, b in itertools.pairwise(sources))
    expected = sum(c * (c - 1) for c in Counter(sources).values()) / n
    return observed, expected
