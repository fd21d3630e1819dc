"""Per-item random generators derived from (seed, path): each item is the same whatever else is made."""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["rng_for", "seed_for"]


def seed_for(seed: int, *key: object) -> int:
    """A 64-bit seed from ``seed`` and a key path such as ``("generic", vehicle, session)``."""
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def rng_for(seed: int, *key: object) -> np.random.Generator:
    return np.random.default_rng(seed_for(seed, *key))
