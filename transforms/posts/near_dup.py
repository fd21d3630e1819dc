"""Near-duplicate posts (``--dedup-near``): candidates by LSH band, then the posts to remove.

Plain functions over Arrow tables, wired into Beam by ``transforms.posts.dedup_near``:

0. ``copy_rows`` / ``split_copies``: posts with equal signatures (the same normalized text,
   mostly: reposts, copy-paste) have the same estimate against every post, so only the first of
   them (a committed one, else the earliest) goes on; the others are its *copies*, and
   ``expand_removals`` gives them its fate at the end: removed with it for its twin, or removed
   for it (estimate 1.0) when it stays. The result is the same as deciding each copy, and a
   stream where a third of the posts repeat a text costs the steps below nothing for them.
1. ``band_rows``: each post's band keys (``minhash.band_keys``) as rows ``(key, post, new)``,
   split into buckets by key; ``post`` is a 64-bit hash of the post id (``post_keys``).
2. ``candidate_pairs``: in a bucket, posts that share a band key are candidate pairs -- every
   pair of a group of up to ``_ALL_PAIRS`` posts, each member with the group's first beyond
   that; only pairs with at least one post of this run (committed posts were settled before),
   and only pairs whose signatures' low bits (carried by the band rows, ``low_bits``) agree on
   enough values for the estimate to reach the threshold.
3. ``member_rows``: the signature, id, time and edit root of every post in some pair.
4. ``choose_removals``: each candidate pair is verified by the estimated Jaccard of the two
   signatures (``>= threshold``; versions of one edited post never count). Then, in order of
   (``created_at``, ``post_id``), a post of this run is removed when it is a verified
   near-duplicate of a post that stays: a committed post, or an earlier post of this run that
   was not removed. Its kept twin is the earliest such post. So a chain A~B~C where A and C are
   not near-duplicates keeps A and C and removes B: a post is only ever removed for a post that
   is kept and that it is itself similar to, never through a chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import MINHASH_SCHEMA, NEAR_DUPLICATES_SCHEMA
from schemas.near_dup import SIGNATURE_TYPE
from transforms.posts.minhash import (
    SIGNATURE_SIZE,
    LshParams,
    band_keys,
    estimated_jaccard,
    signature_keys,
    signatures,
)
from transforms.posts.removals import Removals
from transforms.posts.rows import bucket_positions, edit_root_array

__all__ = [
    "SignatureCache",
    "band_rows",
    "candidate_pairs",
    "choose_removals",
    "copy_rows",
    "expand_removals",
    "live_signatures",
    "low_bits",
    "member_rows",
    "members_of",
    "minhash_rows",
    "post_keys",
    "removed_keys",
    "signature_column",
    "signature_matrix",
    "split_copies",
    "unique_keys",
    "with_post_keys",
]

# Groups of one band key up to this size give every pair; larger ones (the same text posted
# hundreds of times) each member with the group's first, so pairs grow linearly.
_ALL_PAIRS = 32
# Pairs whose signatures are compared at once: 2 x 65,536 x 256 bytes = 32 MiB gathered.
_PAIR_BLOCK = 1 << 16
_BAND_SCHEMA = pa.schema(
    [
        ("key", pa.uint64()),
        ("post", pa.uint64()),
        ("new", pa.bool_()),
        ("low0", pa.uint64()),
        ("low1", pa.uint64()),
    ],
)
_PAIR_SCHEMA = pa.schema([("a", pa.uint64()), ("b", pa.uint64())])
_TS = pa.timestamp("ms", tz="UTC")
_SIG_ROW_SCHEMA = pa.schema(
    [
        ("sig", pa.uint64()),
        ("post", pa.uint64()),
        ("post_id", pa.string()),
        ("created_at", _TS),
        ("new", pa.bool_()),
    ]
)
COPY_SCHEMA = pa.schema(
    [
        ("post", pa.uint64()),
        ("post_id", pa.string()),
        ("created_at", _TS),
        ("rep_post_id", pa.string()),
        ("rep_created_at", _TS),
    ]
)


def copy_rows(
    table: pa.Table, column: str, *, new: bool, buckets: int
) -> Iterator[tuple[int, pa.Table]]:
    """(bucket, rows ``(sig, post, post_id, created_at, new)``): each post's signature key
    (``minhash.signature_keys``), split into buckets by it; posts without shingles give none."""
    if table.num_rows == 0:
        return
    sig = signature_keys(signature_matrix(table.column(column)))
    present = sig != 0
    if not present.any():
        return
    # Only the columns the rows need are filtered (the signatures are most of the table).
    rows = table.select([c for c in ("post_id", "created_at", "_post") if c in table.column_names])
    if not present.all():
        rows, sig = rows.filter(pa.array(present)), sig[present]
    rows = pa.table(
        [
            pa.array(sig),
            pa.array(_keys_of(rows)),
            rows.column("post_id"),
            rows.column("created_at").cast(_TS),
            pa.array(np.full(len(sig), new)),
        ],
        schema=_SIG_ROW_SCHEMA,
    )
    for bucket, part in bucket_positions(sig, buckets):
        yield bucket, rows.take(pa.array(part))


def split_copies(tables: Sequence[pa.Table]) -> pa.Table:
    """The new posts of ``tables`` (one bucket's ``copy_rows``) whose signature an earlier post
    has (``COPY_SCHEMA``): the first of a signature is a committed post if there is one, else
    the earliest by (``created_at``, ``post_id``); every other new post is its copy."""
    rows = pa.concat_tables([*tables, _SIG_ROW_SCHEMA.empty_table()])
    if rows.num_rows < 2:
        return COPY_SCHEMA.empty_table()
    rows = rows.sort_by(
        [
            ("sig", "ascending"),
            ("new", "ascending"),
            ("created_at", "ascending"),
            ("post_id", "ascending"),
        ]
    )
    sig = rows.column("sig").to_numpy()
    post = rows.column("post").to_numpy()
    # Each post once (a runner may repeat elements; see ``candidate_pairs``).
    once = np.concatenate(([True], (sig[1:] != sig[:-1]) | (post[1:] != post[:-1])))
    rows, sig = rows.filter(pa.array(once)), sig[once]
    starts = np.concatenate(([True], sig[1:] != sig[:-1]))
    first = np.maximum.accumulate(np.where(starts, np.arange(len(sig)), 0))
    new = rows.column("new").to_numpy(zero_copy_only=False)
    copy = ~starts & new
    if not copy.any():
        return COPY_SCHEMA.empty_table()
    which, rep = pa.array(np.flatnonzero(copy)), pa.array(first[copy])
    return pa.table(
        [
            rows.column("post").take(which),
            rows.column("post_id").take(which),
            rows.column("created_at").take(which),
            rows.column("post_id").take(rep),
            rows.column("created_at").take(rep),
        ],
        schema=COPY_SCHEMA,
    )


def expand_removals(removed: pa.Table, copies: Sequence[pa.Table], run_id: str) -> pa.Table:
    """``removed`` (``choose_removals`` of the first posts of each signature) with every copy
    added: removed for its first post's twin when that post was removed, else for the first
    post itself (estimate 1.0). Sorted by (``created_at``, ``post_id``)."""
    table = pa.concat_tables([*copies, COPY_SCHEMA.empty_table()])
    if table.num_rows == 0:
        return removed
    _, once = np.unique(table.column("post").to_numpy(), return_index=True)
    table = table.take(pa.array(np.sort(once)))
    where = pc.index_in(table.column("rep_post_id"), value_set=removed.column("post_id"))
    gone = pc.is_valid(where)
    twin = pc.if_else(
        gone, pc.take(removed.column("kept_post_id"), where), table.column("rep_post_id")
    )
    twin_at = pc.if_else(
        gone, pc.take(removed.column("kept_created_at"), where), table.column("rep_created_at")
    )
    est = pc.if_else(
        gone,
        pc.take(removed.column("estimated_jaccard"), where),
        pa.scalar(1.0, pa.float32()),
    )
    added = pa.table(
        [
            table.column("post_id"),
            table.column("created_at"),
            twin,
            twin_at,
            est,
            pa.array([run_id] * table.num_rows, pa.string()),
        ],
        schema=NEAR_DUPLICATES_SCHEMA,
    )
    return pa.concat_tables([removed, added]).sort_by(
        [("created_at", "ascending"), ("post_id", "ascending")]
    )


def removed_keys(
    removed: pa.Table, members: Sequence[pa.Table], copies: Sequence[pa.Table]
) -> np.ndarray:
    """The post keys of every post ``expand_removals`` lists, sorted, each once: of
    ``removed`` (``choose_removals`` of ``members``, whose rows hold their keys) and of every
    copy (each is removed). Looked up where they are, not hashed again from the post ids."""
    found = [np.empty(0, np.uint64), *(t.column("post").to_numpy() for t in copies)]
    if removed.num_rows:
        for table in members:
            hit = pc.is_in(table.column("post_id"), value_set=removed.column("post_id"))
            found.append(table.column("post").filter(hit).to_numpy())
    return unique_keys(np.concatenate(found))


def signature_column(
    texts: pa.ChunkedArray | pa.Array,
    text_hashes: np.ndarray | None = None,
    cache: SignatureCache | None = None,
) -> pa.FixedSizeListArray:
    """The MinHash signatures of ``texts`` as an Arrow column (``schemas.near_dup``). Given
    each text's ``text_hash`` (``dedup_hash``: of the same normal form), each distinct text is
    signed once (reposts and copies share it), and not at all when ``cache`` has it."""
    if text_hashes is not None and len(text_hashes):
        distinct, first, back = np.unique(text_hashes, return_index=True, return_inverse=True)

        def sign(which: np.ndarray) -> np.ndarray:
            return signatures(texts.take(pa.array(first[which])).to_pylist())

        sig = sign(np.arange(len(first))) if cache is None else cache.signatures(distinct, sign)
        sig = sig[back.reshape(-1)]
        sig[np.asarray(text_hashes) == 0] = signatures([""])[0]  # no text left
    else:
        sig = signatures(texts.to_pylist())
    return pa.FixedSizeListArray.from_arrays(pa.array(sig.reshape(-1), pa.uint32()), SIGNATURE_SIZE)


class SignatureCache:
    """The signatures of texts signed before, by ``text_hash`` (``signature_column``).

    A worker that stages chunk after chunk meets the same texts again -- a post copied into
    many pages and files, reposts, copy-paste -- and signs each once while it is remembered
    (a quarter of the texts of a 1 M-line stream). A text's slot is its hash's low bits (the
    hashes are uniform): each slot remembers the last text signed into it, and its owner says
    which. Looked up and filled with whole-array operations: with a dict finding each text's
    slot, the lookups cost a third of what they saved."""

    def __init__(self, size: int = 1 << 17):
        if size < 1 or size & (size - 1):
            raise ValueError(f"size={size}: expected a power of two")
        self._rows = np.empty((size, SIGNATURE_SIZE), np.uint32)
        # The text hash each slot holds. At first, slot i holds i + 1: its low bits are not i,
        # so it is no text's hash and matches nothing.
        self._owner = np.arange(1, size + 1, dtype=np.uint64)

    def signatures(self, hashes: np.ndarray, sign) -> np.ndarray:
        """``uint32[len(hashes), SIGNATURE_SIZE]``: the signature of each of the distinct text
        hashes ``hashes``, those not remembered from ``sign(their positions in hashes)``."""
        hashes = np.asarray(hashes, np.uint64)
        slot = (hashes & np.uint64(len(self._owner) - 1)).astype(np.intp)
        hit = self._owner[slot] == hashes
        out = np.empty((len(hashes), SIGNATURE_SIZE), np.uint32)
        out[hit] = self._rows[slot[hit]]
        missing = np.flatnonzero(~hit)
        if len(missing):
            out[missing] = sign(missing)
            # Texts of this call that share a slot: the last one keeps it, signature and owner.
            slots = slot[missing][::-1]
            _, last = np.unique(slots, return_index=True)
            keep = missing[::-1][last]
            self._rows[slot[keep]], self._owner[slot[keep]] = out[keep], hashes[keep]
        return out


def signature_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A signature column -> ``uint32[rows, SIGNATURE_SIZE]``."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], SIGNATURE_TYPE)
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, np.uint32).reshape(-1, SIGNATURE_SIZE)


def post_keys(ids: pa.ChunkedArray | pa.Array | Sequence[str]) -> np.ndarray:
    """A 64-bit key per post id (the same in every process): what band rows and pairs carry."""
    # The ids' UTF-8 bytes straight from Arrow, the digests joined and read as one array: no
    # str, no int per id.
    if hasattr(ids, "cast"):
        values = ids.cast(pa.binary()).to_pylist()
    else:
        values = [v.encode() for v in ids]
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(v, digest_size=8).digest() for v in values])
    return np.frombuffer(digests, "<u8").astype(np.uint64)


def with_post_keys(table: pa.Table) -> pa.Table:
    """``table`` with its post keys as column ``_post`` (computed once, read by every step)."""
    if "_post" in table.column_names:
        return table
    return table.append_column("_post", pa.array(post_keys(table.column("post_id")), pa.uint64()))


def _keys_of(table: pa.Table) -> np.ndarray:
    if "_post" in table.column_names:
        return table.column("_post").to_numpy()
    return post_keys(table.column("post_id"))


def unique_keys(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys``, ascending. A sort and a comparison of neighbours: numpy
    2.4's ``np.unique`` hashes first and took 5 s on a million keys repeated, a sort 0.1 s."""
    keys = np.sort(keys)
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first]


def members_of(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` are in ``sorted_keys`` (ascending): a binary search for each, where
    ``np.isin`` sorted both arrays together on every call -- with the posts of every candidate
    pair as ``sorted_keys``, once per batch of kept keys, that was most of a step's time."""
    if not len(sorted_keys):
        return np.zeros(len(keys), bool)
    return sorted_keys[_search(sorted_keys, keys)] == keys


def _search(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Where each of ``keys`` is, or would go, in ``sorted_keys`` (non-empty; past the end:
    the last position). The keys are looked up in ascending order: searches that follow each
    other walk the same path through ``sorted_keys`` and find it in the CPU's cache (random
    64-bit keys in their own order took 3.5x as long, at a million)."""
    order = np.argsort(keys)
    at = np.empty(len(keys), np.intp)
    at[order] = np.searchsorted(sorted_keys, keys[order])
    return np.minimum(at, len(sorted_keys) - 1)


def low_bits(sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bits 0 and 1 of each value of each signature in ``sig``, 64 values to a ``uint64``:
    16 bytes a post that bound the estimate of a pair from above (``_may_reach``)."""
    sig = np.asarray(sig, np.uint32).reshape(-1, SIGNATURE_SIZE)
    both = (sig & 3).astype(np.uint8)  # narrowed once, for both bits
    return tuple(
        np.packbits(bits, axis=1, bitorder="little").view(np.uint64).reshape(-1)
        for bits in (both & 1, both >> 1)
    )


def _may_reach(low0: np.ndarray, low1: np.ndarray, i, j, threshold: float) -> np.ndarray:
    """Whether the estimate of the pairs of rows ``i[k]``, ``j[k]`` (with their ``low_bits``)
    can be ``>= threshold``: two equal values have equal low bits, so the values whose low bits
    agree are at least the values that agree (``estimated_jaccard`` counts those). The pairs
    left out could never be verified; at 0.8 three in four candidate pairs are."""
    differ = (low0[i] ^ low0[j]) | (low1[i] ^ low1[j])
    agree = SIGNATURE_SIZE - np.bitwise_count(differ).astype(np.int64)
    return agree / SIGNATURE_SIZE >= threshold


def band_rows(
    table: pa.Table,
    column: str,
    params: LshParams,
    *,
    new: bool,
    buckets: int,
    skip: np.ndarray | None = None,
) -> Iterator[tuple[int, pa.Table]]:
    """(bucket, rows ``(key, post, new, low0, low1)``) for every band key of the posts of
    ``table`` (with ``post_id`` and the signature column ``column``) but those whose post key
    is in ``skip`` (sorted: copies, see ``split_copies``); posts without shingles give none.
    ``low0``, ``low1``: the post's ``low_bits``, for ``candidate_pairs`` to leave out pairs
    that cannot be near-duplicates."""
    if table.num_rows == 0:
        return
    ids = _keys_of(table)
    sig = signature_matrix(table.column(column))
    if skip is not None and len(skip):
        keep = ~members_of(ids, skip)
        sig, ids = sig[keep], ids[keep]
        if not len(ids):
            return
    keys = band_keys(sig, params).reshape(-1)  # post after post: key k is post k // bands's
    low0, low1 = low_bits(sig)
    for bucket, part in bucket_positions(keys, buckets):
        if bucket == 0:
            part = part[keys[part] != 0]  # key 0, "no key", falls in bucket 0 only
            if not len(part):
                continue
        # Each row's post values gathered once, not repeated for every band and then filtered.
        post = part // params.bands
        columns = [keys[part], ids[post], np.full(len(part), new), low0[post], low1[post]]
        yield bucket, pa.table([pa.array(c) for c in columns], schema=_BAND_SCHEMA)


def candidate_pairs(tables: Sequence[pa.Table], threshold: float | None = None) -> pa.Table:
    """Pairs ``(a, b)`` (post keys, ``a < b``, each once, sorted) of posts sharing a band key in
    ``tables`` (one bucket's band rows), at least one of them new. Given ``threshold``, only
    pairs whose ``low_bits`` allow an estimate of at least ``threshold``: the others would
    never be verified (``choose_removals``), so leaving them out changes no removal."""
    if not tables:
        return _PAIR_SCHEMA.empty_table()
    rows = pa.concat_tables(tables)
    if rows.num_rows == 0:
        return _PAIR_SCHEMA.empty_table()
    keys = rows.column("key").to_numpy()
    posts = rows.column("post").to_numpy()
    new = rows.column("new").to_numpy(zero_copy_only=False)
    if threshold is None:
        low = np.zeros((2, len(keys)), np.uint64)  # every pair may reach it
    else:
        low = np.stack([rows.column("low0").to_numpy(), rows.column("low1").to_numpy()])
    # Most band keys are one post's alone (nine in ten at 1 M lines) and give no pair: found by
    # one plain sort, they are left out before the rows are sorted by (key, post).
    shared = _repeated(keys)
    if not shared.any():
        return _PAIR_SCHEMA.empty_table()
    keys, posts, new, low = keys[shared], posts[shared], new[shared], low[:, shared]
    order = np.lexsort((posts, keys))
    keys, posts, new, low = keys[order], posts[order], new[order], low[:, order]
    # Each (key, post) once: a runner may hand a step the same element twice (Beam's Dask
    # runner repeats elements of side inputs it computes inside a task), and a repeated post
    # must not make a group look larger than it is.
    once = np.concatenate(([True], (keys[1:] != keys[:-1]) | (posts[1:] != posts[:-1])))
    keys, posts, new, low = keys[once], posts[once], new[once], low[:, once]
    # Vectorized over all groups at once: in a group of up to _ALL_PAIRS posts, each post
    # with each later one (offsets 1.._ALL_PAIRS-1 in the sorted rows); in a larger one, each
    # post with the group's first. Only groups of several posts, one of them new, give pairs.
    starts, group, first, size = _groups(keys)
    fresh = np.bincount(group, weights=new.astype(np.int64))[group] > 0
    several = (size > 1) & fresh
    keys, posts, new, low = keys[several], posts[several], new[several], low[:, several]
    starts, group, first, size = _groups(keys)
    # Pairs are collected as row numbers: each post's rank among the posts here, so that a
    # pair is one integer and dropping the pairs found in several bands is one plain sort.
    rank, distinct = _ranks(posts)
    n = len(distinct)

    def cells_of(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        keep = new[i] | new[j]
        if threshold is not None:
            keep &= _may_reach(low[0], low[1], i, j, threshold)
        return _cells(rank, i[keep], j[keep], n)

    cells = []
    small = size <= _ALL_PAIRS
    for d in range(1, min(_ALL_PAIRS, int(size[small].max(initial=1)))):
        i = np.flatnonzero(small[:-d] & (group[:-d] == group[d:]))
        cells.append(cells_of(i, i + d))
    j = np.flatnonzero((size > _ALL_PAIRS) & ~starts)
    cells.append(cells_of(first[group[j]], j))
    cell = unique_keys(np.concatenate([np.empty(0, np.int64), *cells]))
    if not len(cell):
        return _PAIR_SCHEMA.empty_table()
    # Ranks follow the post keys, so (a, b) by rank is (a, b) by key, sorted.
    a, b = distinct[cell // n], distinct[cell % n]
    return pa.table([pa.array(a), pa.array(b)], schema=_PAIR_SCHEMA)


def _repeated(values: np.ndarray) -> np.ndarray:
    """Which of ``values`` occur more than once (a sort and a comparison of neighbours)."""
    order = np.argsort(values)
    ordered = values[order]
    equal = ordered[1:] == ordered[:-1]
    repeated = np.zeros(len(values), bool)
    repeated[1:] |= equal
    repeated[:-1] |= equal
    out = np.empty(len(values), bool)
    out[order] = repeated
    return out


def _ranks(posts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each row's rank among the distinct values of ``posts``; those values, ascending)."""
    order = np.argsort(posts)
    ordered = posts[order]
    firsts = np.ones(len(posts), bool)
    firsts[1:] = ordered[1:] != ordered[:-1]
    rank = np.empty(len(posts), np.int64)
    rank[order] = np.cumsum(firsts) - 1
    return rank, ordered[firsts]


def _cells(rank: np.ndarray, i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Rows ``i[k]`` and ``j[k]`` paired, as ``min rank * n + max rank``."""
    ri, rj = rank[i], rank[j]
    return np.minimum(ri, rj) * np.int64(n) + np.maximum(ri, rj)


def _groups(keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """For sorted ``keys``: (where each run of equal keys starts, each row's run number, each
    run's first row, each row's run length)."""
    if not len(keys):
        none = np.zeros(0, np.int64)
        return np.zeros(0, bool), none, none, none
    starts = np.concatenate(([True], keys[1:] != keys[:-1]))
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    size = np.diff(np.append(first, len(keys)))[group]
    return starts, group, first, size


def _pair_estimates(sig: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """``estimated_jaccard`` of the signatures of rows ``ia[k]`` and ``ib[k]``, a block of pairs
    at a time: gathering both signatures of millions of pairs at once took gigabytes."""
    out = np.empty(len(ia), np.float64)
    for start in range(0, len(ia), _PAIR_BLOCK):
        block = slice(start, start + _PAIR_BLOCK)
        out[block] = estimated_jaccard(sig[ia[block]], sig[ib[block]])
    return out


def member_rows(table: pa.Table, column: str, members: np.ndarray, *, new: bool) -> pa.Table:
    """The rows of ``table`` whose post key is in ``members`` (sorted): ``post``, ``post_id``,
    ``created_at``, ``edit_root``, ``new`` and the signature as ``minhash``."""
    keys = _keys_of(table) if table.num_rows else np.empty(0, np.uint64)
    hit = members_of(keys, members)
    if not hit.any():
        return _member_schema().empty_table()
    root = "edit_root" if "edit_root" in table.column_names else "edit_history_ids"
    rows = table.select(["post_id", "created_at", root, column]).filter(pa.array(hit))
    roots = rows.column("edit_root") if "edit_root" in rows.column_names else edit_root_array(rows)
    return pa.table(
        [
            pa.array(keys[hit]),
            rows.column("post_id"),
            rows.column("created_at"),
            roots,
            pa.array(np.full(rows.num_rows, new)),
            rows.column(column),
        ],
        schema=_member_schema(),
    )


def _member_schema() -> pa.Schema:
    return pa.schema(
        [
            ("post", pa.uint64()),
            ("post_id", pa.string()),
            ("created_at", pa.timestamp("ms", tz="UTC")),
            ("edit_root", pa.string()),
            ("new", pa.bool_()),
            ("minhash", SIGNATURE_TYPE),
        ]
    )


def choose_removals(
    pairs: Sequence[pa.Table], members: Sequence[pa.Table], threshold: float, run_id: str
) -> pa.Table:
    """The posts of this run to remove, each with its kept twin (``NEAR_DUPLICATES_SCHEMA``);
    see the module docstring for the rule."""
    pairs = [t for t in pairs if t.num_rows]
    info = pa.concat_tables([*members, _member_schema().empty_table()])
    if not pairs or info.num_rows == 0:
        return NEAR_DUPLICATES_SCHEMA.empty_table()
    # A committed post may be listed twice (its signature file and a rewrite): first wins.
    _, first = np.unique(info.column("post").to_numpy(), return_index=True)
    first = np.sort(first)
    # Posts numbered in the order the rule decides them: committed ones first (they stay
    # whatever their time), then this run's by (created_at, post_id). Sorted on the three
    # columns, then the table taken once: the signatures are most of it.
    decide = pc.sort_indices(
        info.select(["new", "created_at", "post_id"]).take(pa.array(first)),
        [("new", "ascending"), ("created_at", "ascending"), ("post_id", "ascending")],
    )
    info = info.take(pa.array(first[decide.to_numpy()]))
    keys = info.column("post").to_numpy()
    order = np.argsort(keys)
    sorted_keys = keys[order]
    n = np.int64(len(keys))
    # Each pair as one integer (its posts' numbers, earlier first), a table of pairs at a
    # time: arrays of a few MB that malloc reuses, where millions of pairs at once had every
    # temporary mapped anew.
    cells = [np.empty(0, np.int64)]
    for table in pairs:
        a = table.column("a").to_numpy()
        b = table.column("b").to_numpy()
        at_a, at_b = _search(sorted_keys, a), _search(sorted_keys, b)
        known = (sorted_keys[at_a] == a) & (sorted_keys[at_b] == b)
        ia, ib = order[at_a[known]], order[at_b[known]]
        cells.append(np.minimum(ia, ib) * n + np.maximum(ia, ib))
    # Each pair once (a pair shares several bands; a runner may repeat elements, see
    # ``candidate_pairs``): one sort of one integer per pair.
    cell = unique_keys(np.concatenate(cells))
    if not len(cell):
        return NEAR_DUPLICATES_SCHEMA.empty_table()
    ia, ib = cell // n, cell % n
    sig = signature_matrix(info.column("minhash"))
    est = _pair_estimates(sig, ia, ib)
    roots = pc.dictionary_encode(info.column("edit_root").combine_chunks()).indices.to_numpy()
    new = info.column("new").to_numpy(zero_copy_only=False)
    verified = (est >= threshold) & new[ib] & (roots[ia] != roots[ib])
    gone, twin, e = _ordered_rule(new, ia[verified], ib[verified], est[verified])
    return pa.table(
        [
            info.column("post_id").take(gone),
            info.column("created_at").take(gone),
            info.column("post_id").take(twin),
            info.column("created_at").take(twin),
            pa.array(e, pa.float32()),
            pa.array([run_id] * len(gone), pa.string()),
        ],
        schema=NEAR_DUPLICATES_SCHEMA,
    )


def _ordered_rule(
    new: np.ndarray, u: np.ndarray, v: np.ndarray, est: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rule of the module docstring over verified pairs ``(u, v)`` of posts numbered in
    decision order (``u < v``, ``v`` new): (removed posts, ascending; the twin of each: its
    earliest kept pair mate; that pair's estimate).

    Decided in rounds over all undecided posts at once, not one post after another: a post is
    removed as soon as one earlier mate is known kept, and kept once every earlier mate is
    known removed (a committed post, or one without earlier mates, is kept from the start). A
    round settles every post whose earlier mates are settled, so there are as many rounds as
    the longest chain of alternating decisions (A kept, B removed, C kept, ...) -- a few."""
    kept = np.zeros(len(new), bool)
    removed = np.zeros(len(new), bool)
    kept[~new] = True
    has_earlier = np.zeros(len(new), bool)
    has_earlier[v] = True
    kept[~has_earlier] = True
    open_ = ~(kept | removed)
    eu, ev = u, v
    while open_.any():
        live = open_[ev]
        eu, ev = eu[live], ev[live]
        removed[ev[kept[eu]]] = True
        # Kept when no earlier mate is kept or still open.
        blocking = np.zeros(len(new), bool)
        blocking[ev[~removed[eu]]] = True
        kept |= open_ & ~blocking & ~removed
        settled = open_ & (kept | removed)
        if not settled.any():  # cannot happen: the earliest open post has only settled mates
            raise AssertionError("near-duplicate rule made no progress")
        open_ &= ~settled
    # The twin of a removed post: its earliest kept mate (the smallest number).
    hit = kept[u] & removed[v]
    tu, tv, te = u[hit], v[hit], est[hit]
    by = np.lexsort((tu, tv))
    tu, tv, te = tu[by], tv[by], te[by]
    first = np.ones(len(tv), bool)
    first[1:] = tv[1:] != tv[:-1]
    return tv[first], tu[first], te[first]


def minhash_rows(kept: pa.Table, column: str = "_minhash") -> pa.Table:
    """The ``MINHASH_SCHEMA`` rows of kept resolution keys (what a run stores for later runs)."""
    return pa.table(
        [
            kept.column("post_id"),
            kept.column("created_at"),
            kept.column("author_id"),
            edit_root_array(kept),
            kept.column(column),
        ],
        schema=MINHASH_SCHEMA,
    )


def live_signatures(table: pa.Table, removals: Removals) -> pa.Table:
    """Committed signature rows without the posts compliance has removed since (deleted,
    dropped, superseded by an edit, or by a blocked author): a removed post never removes a
    new one."""
    if table.num_rows == 0:
        return table
    gone = None
    for column, name in (
        ("post_id", "posts"),
        ("edit_root", "posts"),
        ("post_id", "superseded"),
        ("author_id", "authors"),
    ):
        keys, _ = removals.array(name)
        if not len(keys):
            continue
        hit = pc.fill_null(pc.is_in(table.column(column), value_set=keys), False)
        gone = hit if gone is None else pc.or_(gone, hit)
    return table if gone is None else table.filter(pc.invert(gone))
