"""The global deterministic shuffle (DESIGN.md §4): keys, buckets, and how good the result is.

key = 64-bit hash of (seed, document id); bucket (output shard) = key mod shards;
documents are sorted by key inside their shard. Nothing depends on workers, bundles or runner,
so one seed gives one order everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

__all__ = ["same_source_pairs", "shuffle_keys"]


_MASK = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def _fnv1a(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def shuffle_keys(seed: int, kind: str, doc_ids: Sequence[str] | pa.Array) -> np.ndarray:
    """The shuffle key (uint64) of each document ``kind/doc_id`` under ``seed``.

    64-bit FNV-1a over (seed, kind, "/", the id's UTF-8 bytes), then the SplitMix64 finalizer
    so that similar ids land far apart. Vectorized over the ids with numpy: the same keys on
    every machine, at a few nanoseconds per id byte.
    """
    ids = pa.array(doc_ids, pa.string()) if not isinstance(doc_ids, pa.Array) else doc_ids
    ids = ids.cast(pa.large_string())
    n = len(ids)
    prefix = seed.to_bytes(16, "little", signed=True) + kind.encode() + b"/"
    h = np.full(n, _fnv1a(_FNV_OFFSET, prefix), np.uint64)
    if n:
        offsets = np.frombuffer(ids.buffers()[1], np.int64, n + 1, ids.offset * 8)
        data = (
            np.frombuffer(ids.buffers()[2], np.uint8) if ids.buffers()[2] else np.zeros(0, np.uint8)
        )
        lengths = np.diff(offsets)
        # Longest ids first: the ids still being hashed at byte j are a prefix of this order.
        order = np.argsort(-lengths, kind="stable")
        starts, lengths_sorted = offsets[:-1][order], lengths[order]
        hs = h[order]
        prime = np.uint64(_FNV_PRIME)
        for j in range(int(lengths_sorted[0]) if n else 0):
            active = int(np.searchsorted(-lengths_sorted, -j, side="left"))
            hs[:active] = (hs[:active] ^ data[starts[:active] + j]) * prime
        h[order] = hs
    z = h + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def same_source_pairs(sources: Sequence[str] | pa.Array | pa.ChunkedArray) -> tuple[int, float]:
    """How many adjacent documents share a source file, and how many a uniformly random order
    of the same documents gives on average (``sum c(c-1) / n`` over the sources' counts).

    A shuffle is as good as a perfect one when the two are close; an unshuffled input has
    almost every adjacent pair from the same file.
    """
    n = len(sources)
    if n < 2:
        return 0, 0.0
    # Vectorized over the sources' dictionary codes: this runs over every document of a shard.
    if isinstance(sources, pa.ChunkedArray):
        sources = sources.combine_chunks()
    elif not isinstance(sources, pa.Array):
        sources = pa.array(sources, pa.string())
    codes = sources.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    observed = int((codes[1:] == codes[:-1]).sum())
    counts = np.bincount(codes).astype(np.int64)
    expected = int((counts * (counts - 1)).sum()) / n
    return observed, expected
