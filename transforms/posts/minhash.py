"""MinHash signatures of post texts and their LSH band keys (plain, vectorized functions).

What is compared: the set of character 5-grams of ``dedup_form(text)`` (the normalization of
``--dedup-text``: no ``RT @user:`` prefix, no links, whitespace runs made one space, stripped,
case-folded). A form shorter than 5 characters is one shingle (itself); an empty form has none
and is never a near-duplicate of anything.

How (``schemas.near_dup.MINHASH_SCHEME``): one-permutation hashing with densification (Li,
Owen & Zhang 2012; Shrivastava 2017). Every shingle of a batch of texts is hashed once (a
polynomial over its code points, then a 64-bit finalizer); the top 6 bits of its hash choose
one of ``SIGNATURE_SIZE`` bins, the next 32 bits are its value, and a text's signature holds
the least value of each of its bins. A bin no shingle of the text fell into (a post of ~100
shingles leaves ~20% of 64 bins empty) takes the value of a non-empty bin of the same text: the
first non-empty one in a fixed random order of the bins, one order per bin. Two texts then agree
on a bin with probability equal to their Jaccard similarity, as with 64 independent
permutations (and with a little less variance: the bins sample shingles without replacement).
One hash and one ``minimum`` into its bin per shingle instead of 64 multiply-add-shift passes:
~2.3 us a text, not ~7 (plus ~2.5 us of ``dedup_form``).

Everything is integer arithmetic on fixed constants, so a text gets the same signature in every
process, on every runner, in every run -- committed signatures are stored and reused
(``near_dup``); the ``minhash/`` side files say which scheme made them.

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
    "SHINGLE",
    "SIGNATURE_SIZE",
    "LshParams",
    "band_keys",
    "candidate_probability",
    "estimated_jaccard",
    "lsh_params",
    "signature_keys",
    "signatures",
]

# 64 values: at THRESHOLD 0.8 the estimate of a pair at 0.9 has a standard deviation of
# ~0.035, so verification keeps >99.5% of them.
SIGNATURE_SIZE = 64
SHINGLE = 5
# Probability that a pair at exactly THRESHOLD shares a band: what ``lsh_params`` guarantees.
_RECALL_AT_THRESHOLD = 0.95

_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_POLY = _U64(0x100000001B3)  # FNV-1a's 64-bit prime: spreads successive code points
_BIN_SHIFT = _U64(64 - 6)  # the top 6 bits choose the bin (SIGNATURE_SIZE = 2**6)
_VALUE_SHIFT = _U64(64 - 6 - 32)  # the 32 bits below them are the value
_rng = np.random.Generator(np.random.PCG64(20260416))
_MULT = _rng.integers(1, 2**63, SIGNATURE_SIZE, dtype=np.uint64) * _U64(2) + _U64(1)
_BAND_SEEDS = _rng.integers(0, 2**63, SIGNATURE_SIZE, dtype=np.uint64)
# Row j: the order in which an empty bin j looks for a non-empty bin of the same text to copy.
# Its own row for each bin, so the bins copied are independent of each other (one shared
# order would make every empty bin copy the same bin: "rotation", much noisier).
_PROBE = np.stack([_rng.permutation(SIGNATURE_SIZE) for _ in range(SIGNATURE_SIZE)])
_EMPTY = np.uint32(0xFFFFFFFF)


def _fmix64(x: np.ndarray) -> np.ndarray:
    # SplitMix64's finalizer: every input bit affects every output bit.
    x = x ^ (x >> _U64(30))
    x = x * _MIX1
    x = x ^ (x >> _U64(27))
    x = x * _MIX2
    return x ^ (x >> _U64(31))


def _nonzero(keys: np.ndarray) -> np.ndarray:
    """``keys`` with 0 (which marks "no key") made 1. Not ``keys | 1``: ``near_dup`` splits keys
    into groups by ``key % buckets``, and keys that are all odd left every even group empty."""
    return np.maximum(keys, _U64(1))


def _shingle_hashes(forms: Sequence[str], lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hashes of every shingle of every form, in order; the form each belongs to).
    ``lengths``: each form's length."""
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
    ends = np.cumsum(lengths)
    text_starts = ends - lengths
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
    # A form's windows are the positions of its first ``counts`` characters: its last few
    # (at most SHINGLE - 1) are marked off, and one boolean pass keeps the rest, in order.
    tail = lengths - counts
    window = np.ones(n, bool)
    for k in range(1, SHINGLE):
        window[ends[tail >= k] - k] = False
    owner = np.repeat(np.arange(len(forms)), counts)
    return _fmix64(h[window]), owner


def signatures(texts: Sequence[str | None], *, chunk: int = 1 << 15) -> np.ndarray:
    """MinHash signatures of ``texts`` (post texts, normalized here with ``dedup_form``):
    ``uint32[len(texts), SIGNATURE_SIZE]``. A text with no shingles (empty after
    normalization, or None) gets all ``0xFFFFFFFF``; ``band_keys`` gives it no keys.
    ``chunk``: about how many characters are hashed at once (the result does not depend on it).

    Example::

        sig = signatures(["Traffic is wild this morning", "traffic is WILD this morning!"])
        estimated_jaccard(sig[0], sig[1])  # ~0.85
    """
    out = np.full((len(texts), SIGNATURE_SIZE), _EMPTY, np.uint32)
    forms = [dedup_form(t) if t else "" for t in texts]
    lengths = np.fromiter(map(len, forms), np.int64, len(forms))
    ends = np.cumsum(lengths)
    # A few hundred texts at a time: their shingles' arrays stay in the CPU's cache. A chunk
    # ends with the text that brings it to ``chunk`` characters (at least one text).
    start = 0
    while start < len(forms):
        before = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, before + chunk)) + 1, start + 1)
        stop = min(stop, len(forms))
        _sign(forms[start:stop], lengths[start:stop], out[start:stop])
        start = stop
    # Once for every text, not per chunk: its 64 steps cost as much for a chunk as for all.
    _densify(out)
    return out


def _sign(forms: Sequence[str], lengths: np.ndarray, out: np.ndarray) -> None:
    """The signatures of ``forms`` into ``out`` (rows of all ``0xFFFFFFFF``), not densified."""
    hashes, owner = _shingle_hashes(forms, lengths)
    if not len(hashes):
        return
    # Each shingle's cell is (its text, its bin: the top bits of the hash); ``minimum.at``
    # leaves each cell its least value (the next 32 bits) in one pass -- with a sort of the
    # shingles by (text, bin, value), then the first of each run, signing took twice as long.
    cell = owner * SIGNATURE_SIZE + (hashes >> _BIN_SHIFT).astype(np.intp)
    # 0xFFFFFFFF marks an empty bin: a shingle with that value (one in 2**32) counts as 1 less.
    values = np.minimum((hashes >> _VALUE_SHIFT).astype(np.uint32), _EMPTY - 1)
    np.minimum.at(out.reshape(-1), cell, values)


def _densify(sig: np.ndarray) -> None:
    """Fill the empty bins of the texts of ``sig`` that have a non-empty one, in place: empty
    bin ``j`` copies the first non-empty bin of the text in the order ``_PROBE[j]`` ("optimal
    densification": which bin is copied depends only on ``j`` and on which bins are empty, so
    two texts agree on ``j`` with probability equal to their Jaccard similarity)."""
    flat = sig.reshape(-1)
    empty = flat == _EMPTY
    some = ~empty.reshape(sig.shape).all(axis=1)
    cells = np.flatnonzero(empty & np.repeat(some, SIGNATURE_SIZE))
    # Sources are read from the signature as it was: the copies are written at the end.
    where, values = [], []
    for step in range(SIGNATURE_SIZE):
        if not len(cells):
            break
        row = cells - cells % SIGNATURE_SIZE
        v = flat[row + _PROBE[cells % SIGNATURE_SIZE, step]]
        found = v != _EMPTY
        where.append(cells[found])
        values.append(v[found])
        cells = cells[~found]
    if where:
        flat[np.concatenate(where)] = np.concatenate(values)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The fraction of equal signature values: the MinHash estimate of Jaccard similarity
    (rows of ``a`` against rows of ``b``; 1-d inputs give a scalar)."""
    equal = np.asarray(a) == np.asarray(b)
    # A count, not np.mean over booleans (which converts them to floats first): the same
    # k / SIGNATURE_SIZE, several times faster.
    return np.count_nonzero(equal, axis=-1) / equal.shape[-1]


@dataclass(frozen=True)
class LshParams:
    """``bands`` bands of ``rows`` signature values each (``bands * rows <= SIGNATURE_SIZE``)."""

    threshold: float
    bands: int
    rows: int


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """Probability that two texts of true Jaccard ``s`` share a band key."""
    return 1.0 - (1.0 - s**rows) ** bands


def lsh_params(threshold: float) -> LshParams:
    """Bands and rows for ``threshold``: the most rows per band (so the fewest dissimilar
    candidates) such that, with ``bands = SIGNATURE_SIZE // rows``, a pair at exactly
    ``threshold`` shares a band with probability >= 0.95 (0.8 -> 10 bands of 6 rows)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold {threshold}: expected a number in (0, 1]")
    best = LshParams(threshold, SIGNATURE_SIZE, 1)
    for rows in range(1, SIGNATURE_SIZE + 1):
        bands = SIGNATURE_SIZE // rows
        if candidate_probability(threshold, bands, rows) >= _RECALL_AT_THRESHOLD:
            best = LshParams(threshold, bands, rows)
    return best


def band_keys(sig: np.ndarray, params: LshParams) -> np.ndarray:
    """``uint64[len(sig), bands]``: each band's key (its values and its index hashed); rows of
    all ``0xFFFFFFFF`` (no shingles) get key 0 in every band, which ``near_dup`` never pairs."""
    sig = np.asarray(sig, np.uint32).reshape(-1, SIGNATURE_SIZE)
    r = params.rows
    keys = np.empty((len(sig), params.bands), np.uint64)
    for band in range(params.bands):
        # A random linear combination of the band's values (mod 2**64: integer matmul wraps),
        # finalized: equal bands give equal keys; unequal ones collide with probability ~2**-64.
        # One band widened at a time: widening the whole signature first cost 4x as much.
        h = sig[:, band * r : (band + 1) * r].astype(np.uint64) @ _MULT[:r]
        h += _BAND_SEEDS[band]
        keys[:, band] = _nonzero(_fmix64(h))
    keys[(sig == _EMPTY).all(axis=1)] = 0
    return keys


def signature_keys(sig: np.ndarray) -> np.ndarray:
    """``uint64[len(sig)]``: a hash of each whole signature (equal signatures, equal keys;
    0 for a text without shingles). Posts with equal signatures have the same estimated
    similarity to every post, so ``near_dup`` decides for one of them and copies the rest."""
    sig = np.ascontiguousarray(sig, np.uint32).reshape(-1, SIGNATURE_SIZE)
    # The signature's 256 bytes as 32 64-bit words, combined linearly (mod 2**64) in one integer
    # matmul, then finalized. Keys are never stored: only this run compares them.
    h = sig.view(np.uint64) @ _MULT[: SIGNATURE_SIZE // 2]
    h += _BAND_SEEDS[-1]
    keys = _nonzero(_fmix64(h))
    keys[(sig == _EMPTY).all(axis=1)] = 0
    return keys
