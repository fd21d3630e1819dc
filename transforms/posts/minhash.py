"""MinHash signatures of post texts and their LSH band keys (plain, vectorized functions).

What is compared: the set of character 5-grams of ``dedup_form(text)`` (the normalization of
``--dedup-text``: no ``RT @user:`` prefix, no links, whitespace runs made one space, stripped,
case-folded). A form shorter than 5 characters is one shingle (itself); an empty form has none
and is never a near-duplicate of anything.

How: every shingle of a batch of texts is hashed at once (a polynomial over its code points,
then a 64-bit finalizer), then each of ``PERMUTATIONS`` hash functions
``h_i(x) = (a_i * x + b_i) >> 32`` (64-bit multiply-add-shift, ``a_i`` odd, fixed seeds) is
applied to all of them and reduced per text with ``np.minimum.reduceat``. Everything is integer
arithmetic on fixed constants, so a text gets the same signature in every process, on every
runner, in every run -- committed signatures are stored and reused (``near_dup``).

Bands: the signature is cut into ``bands`` bands of ``rows`` values (``lsh_params``); a band's
key is a 64-bit hash of its values and its index. Two texts become candidates when they share a
band key: with true Jaccard ``s``, probability ``1 - (1 - s**rows)**bands``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transforms.posts.text import dedup_form

__all__ = [
    "PERMUTATIONS",
    "SHINGLE",
    "LshParams",
    "band_keys",
    "candidate_probability",
    "estimated_jaccard",
    "lsh_params",
    "signature_keys",
    "signatures",
]

# 64 values: at THRESHOLD 0.8 the estimate of a pair at 0.9 has a standard deviation of
# 0.0375, so verification keeps >99.5% of them; 128 cost twice as much (17 us a post, not 9).
PERMUTATIONS = 64
SHINGLE = 5
# Probability that a pair at exactly THRESHOLD shares a band: what ``lsh_params`` guarantees.
_RECALL_AT_THRESHOLD = 0.95

_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_POLY = _U64(0x100000001B3)  # FNV-1a's 64-bit prime: spreads successive code points
_rng = np.random.Generator(np.random.PCG64(20260416))
_A = _rng.integers(1, 2**63, PERMUTATIONS, dtype=np.uint64) * _U64(2) + _U64(1)
_B = _rng.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64)
_EMPTY = np.uint32(0xFFFFFFFF)
_BAND_SEEDS = _rng.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64)


def _fmix64(x: np.ndarray) -> np.ndarray:
    # SplitMix64's finalizer: every input bit affects every output bit.
    x = x ^ (x >> _U64(30))
    x = x * _MIX1
    x = x ^ (x >> _U64(27))
    x = x * _MIX2
    return x ^ (x >> _U64(31))


def _shingle_hashes(forms: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes of every shingle of every form, in order; start of each form's shingles; which
    forms have any)."""
    lengths = np.fromiter((len(f) for f in forms), np.int64, len(forms))
    codes = np.frombuffer("".join(forms).encode("utf-32-le"), np.uint32).astype(np.uint64)
    codes += _U64(1)  # so that no code point is 0, the padding of short forms
    padded = np.concatenate((codes, np.zeros(SHINGLE - 1, np.uint64)))
    n = len(codes)
    # A polynomial over each window of SHINGLE code points of the whole stream (contiguous
    # slices, no gathers); the windows that cross from one form into the next are dropped.
    h = np.zeros(n, np.uint64)
    for k in range(SHINGLE):
        h ^= padded[k : k + n]
        h *= _POLY
    text_starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    counts = np.where(lengths >= SHINGLE, lengths - SHINGLE + 1, np.minimum(lengths, 1))
    short = (lengths > 0) & (lengths < SHINGLE)
    if short.any():
        # A form shorter than a shingle is one shingle: itself, without the next form's start.
        for i in np.flatnonzero(short):
            a, b = text_starts[i], text_starts[i] + lengths[i]
            v = np.zeros(1, np.uint64)
            for c in codes[a:b]:
                v = (v ^ c) * _POLY
            h[a] = v[0]
    owner = np.repeat(np.arange(len(forms)), counts)
    shingle_starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = text_starts[owner] + (np.arange(len(owner)) - shingle_starts[owner])
    return _fmix64(h[pos]), shingle_starts, counts > 0


def signatures(texts: Sequence[str | None], *, chunk: int = 1 << 14) -> np.ndarray:
    """MinHash signatures of ``texts`` (post texts, normalized here with ``dedup_form``):
    ``uint32[len(texts), PERMUTATIONS]``. A text with no shingles (empty after normalization,
    or None) gets all ``0xFFFFFFFF``; ``band_keys`` gives it no keys.

    Example::

        sig = signatures(["Traffic is wild this morning", "traffic is WILD this morning!"])
        estimated_jaccard(sig[0], sig[1])  # ~0.85
    """
    out = np.full((len(texts), PERMUTATIONS), _EMPTY, np.uint32)
    forms = [dedup_form(t) if t else "" for t in texts]
    # A few hundred texts at a time: the per-permutation arrays stay in the CPU's cache.
    start = 0
    while start < len(forms):
        stop, size = start, 0
        while stop < len(forms) and (size < chunk or stop == start):
            size += len(forms[stop])
            stop += 1
        _sign(forms[start:stop], out[start:stop])
        start = stop
    return out


def _sign(forms: Sequence[str], out: np.ndarray) -> None:
    hashes, starts, has = _shingle_hashes(forms)
    if not has.any():
        return
    starts = starts[has]
    rows = out[has]
    tmp = np.empty_like(hashes)
    shift = _U64(32)
    for i in range(PERMUTATIONS):
        # Multiply-add-shift in uint64 (wrapping): the top 32 bits are the permuted value.
        np.multiply(hashes, _A[i], out=tmp)
        tmp += _B[i]
        tmp >>= shift
        rows[:, i] = np.minimum.reduceat(tmp, starts)
    out[has] = rows


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The fraction of equal signature values: the MinHash estimate of Jaccard similarity
    (rows of ``a`` against rows of ``b``; 1-d inputs give a scalar)."""
    equal = np.asarray(a) == np.asarray(b)
    # A count, not np.mean over booleans (which converts them to floats first): the same
    # k / PERMUTATIONS, several times faster.
    return np.count_nonzero(equal, axis=-1) / equal.shape[-1]


@dataclass(frozen=True)
class LshParams:
    """``bands`` bands of ``rows`` signature values each (``bands * rows <= PERMUTATIONS``)."""

    threshold: float
    bands: int
    rows: int


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """Probability that two texts of true Jaccard ``s`` share a band key."""
    return 1.0 - (1.0 - s**rows) ** bands


def lsh_params(threshold: float) -> LshParams:
    """Bands and rows for ``threshold``: the most rows per band (so the fewest dissimilar
    candidates) such that, with ``bands = PERMUTATIONS // rows``, a pair at exactly
    ``threshold`` shares a band with probability >= 0.95 (0.8 -> 10 bands of 6 rows)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold {threshold}: expected a number in (0, 1]")
    best = LshParams(threshold, PERMUTATIONS, 1)
    for rows in range(1, PERMUTATIONS + 1):
        bands = PERMUTATIONS // rows
        if candidate_probability(threshold, bands, rows) >= _RECALL_AT_THRESHOLD:
            best = LshParams(threshold, bands, rows)
    return best


def band_keys(sig: np.ndarray, params: LshParams) -> np.ndarray:
    """``uint64[len(sig), bands]``: each band's key (its values and its index hashed); rows of
    all ``0xFFFFFFFF`` (no shingles) get key 0 in every band, which ``near_dup`` never pairs."""
    sig = np.asarray(sig, np.uint32).reshape(-1, PERMUTATIONS)
    r = params.rows
    keys = np.empty((len(sig), params.bands), np.uint64)
    wide = sig.T.astype(np.uint64)  # one contiguous row per hash function
    for band in range(params.bands):
        # A random linear combination of the band's values (mod 2**64), finalized: equal bands
        # give equal keys; unequal ones collide with probability ~2**-64.
        h = np.full(len(sig), _BAND_SEEDS[band], np.uint64)
        for j in range(r):
            h += wide[band * r + j] * _A[j]
        keys[:, band] = _fmix64(h) | _U64(1)  # never 0: 0 marks "no key"
    keys[(sig == _EMPTY).all(axis=1)] = 0
    return keys


def signature_keys(sig: np.ndarray) -> np.ndarray:
    """``uint64[len(sig)]``: a hash of each whole signature (equal signatures, equal keys;
    0 for a text without shingles). Posts with equal signatures have the same estimated
    similarity to every post, so ``near_dup`` decides for one of them and copies the rest."""
    sig = np.asarray(sig, np.uint32).reshape(-1, PERMUTATIONS)
    wide = sig.T.astype(np.uint64)
    h = np.full(len(sig), _BAND_SEEDS[-1], np.uint64)
    for j in range(PERMUTATIONS):
        h += wide[j] * _A[j]
    keys = _fmix64(h) | _U64(1)
    keys[(sig == _EMPTY).all(axis=1)] = 0
    return keys
