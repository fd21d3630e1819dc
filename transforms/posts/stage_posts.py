"""``StagePosts``: parsed chunks -> their rows in the run's staging area, keys by bucket.

After parsing, the posts of a chunk are written once to the staging area (``catalog.staging``)
and leave the pipeline's data plane: what flows on is a ``StagedChunk`` holding one reference
to the chunk's resolution keys (``StagedKeys``: a file with one record batch per bucket), plus
the chunk's compliance events, rejects and counts (small). ``ResolvePosts`` reads the batch of
its bucket from every chunk's keys; ``WriteShards`` reads the rows that survive.

With ``--dedup-near``, each post's MinHash signature is staged too, in a file of its own
(``<chunk>.minhash.arrow``, batch for batch and row for row as the keys): resolving never
reads them, and ``DedupNear`` reads those of the kept posts (``read_signatures``).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog.staging import StagedRows, read_staged, staged_batches, staging_dir, write_staged
from catalog.storage import open_url
from schemas import POSTS
from transforms.partitioning import split_partitions
from transforms.posts.compliance import Event
from transforms.posts.minhash import SIGNATURE_SIZE
from transforms.posts.near_dup import SignatureCache, signature_column, signature_matrix
from transforms.posts.parse_posts import ParsedChunk
from transforms.posts.resolve import resolution_keys
from transforms.posts.rows import edit_roots, split_buckets

__all__ = ["StagePosts", "StagedChunk", "StagedKeys", "read_signatures", "stage_chunk"]

_SIG = "_minhash"


@dataclass(frozen=True)
class StagedKeys:
    """Where a chunk's resolution keys are staged (``resolution_keys`` plus ``_file``,
    ``_batch``, ``_row``, ``_dt``: where each row is staged and its partition): ``path``, one
    record batch per bucket that holds any, ``buckets[i]`` (ascending) being batch ``i``'s
    bucket.

    One reference a chunk, not one a bucket: every bucket's reference to every chunk crossed
    the shuffle before, and the local runner holds all of them in memory -- chunks times
    buckets, both growing with the input (18,800 references at 2 M lines: the runner process
    held 226 MiB while resolving them, 203 MiB with one reference a chunk)."""

    path: str
    buckets: tuple[int, ...]

    def of_bucket(self, bucket: int) -> StagedRows | None:
        """The keys of ``bucket`` (None: the chunk has none)."""
        # Bisected: every bucket asks every chunk, and a chunk holds up to all the buckets.
        i = bisect.bisect_left(self.buckets, bucket)
        if i == len(self.buckets) or self.buckets[i] != bucket:
            return None
        return StagedRows(self.path, i)


@dataclass
class StagedChunk:
    """A ``ParsedChunk`` whose posts are staged: ``keys`` says where its resolution keys are
    (None: it has no posts)."""

    keys: StagedKeys | None
    deletes: list[str]
    rejects: list[dict]
    tally: dict[str, int]
    events: list[Event] = field(default_factory=list)


def _chunk_name(posts: pa.Table) -> str:
    # Chunks of a source are disjoint runs of lines: (source, first line) names a chunk, the
    # same way on a retry, whichever worker parses it.
    first = f"{posts.column('source_uri')[0].as_py()}\0{posts.column('source_line')[0].as_py()}"
    return hashlib.sha256(first.encode("utf-8")).hexdigest()[:24]


def stage_chunk(
    fs,
    root: str,
    run_id: str,
    chunk: ParsedChunk,
    buckets: int,
    *,
    minhash: bool = False,
    signature_cache: SignatureCache | None = None,
) -> StagedChunk:
    """Write ``chunk``'s posts (one batch per ``dt``) and their keys (one batch per bucket of
    edit root) to the staging area of ``run_id``. With ``minhash``, each post's MinHash
    signature (``transforms.posts.near_dup``) too -- computed here, where the text is at hand,
    and in the parsing worker, so it scales with parsing -- in ``<chunk>.minhash.arrow``, where
    the keys' ``_sig_batch`` and ``_sig_row`` find it (``read_signatures``); texts
    ``signature_cache`` remembers are not signed again."""
    out = StagedChunk(None, chunk.deletes, chunk.rejects, chunk.tally, chunk.events)
    posts = chunk.posts
    if posts.num_rows == 0:
        return out
    base = f"{staging_dir(run_id)}/{_chunk_name(posts)}"
    parts = list(split_partitions(posts, POSTS))
    write_staged(fs, root, f"{base}.rows.arrow", [rows for _, rows in parts])
    keys = []
    for batch, (dt, rows) in enumerate(parts):
        n = rows.num_rows
        located = {
            "_file": pa.array([f"{base}.rows.arrow"] * n, pa.string()),
            "_batch": pa.array(np.full(n, batch, np.int32)),
            "_row": pa.array(np.arange(n, dtype=np.int32)),
            "_dt": pa.array([dt] * n, pa.string()),
        }
        part = resolution_keys(rows)
        if minhash:
            texts = rows.column("text")
            hashes = pc.fill_null(rows.column("text_hash"), 0).to_numpy()
            part = part.append_column(_SIG, signature_column(texts, hashes, signature_cache))
        for name, values in located.items():
            part = part.append_column(name, values)
        keys.append(part)
    keys = pa.concat_tables(keys)
    by_bucket = list(split_buckets(keys, edit_roots(keys), buckets))
    if minhash:
        # Split with the keys, so that batch i, row j of both files is the same post.
        sigs = [pa.table({_SIG: part.column(_SIG)}) for _, part in by_bucket]
        by_bucket = [
            (bucket, _locate_signatures(part, i)) for i, (bucket, part) in enumerate(by_bucket)
        ]
        # Random 32-bit values: LZ4 finds nothing to shrink in them.
        write_staged(fs, root, f"{base}.minhash.arrow", sigs, compress=False)
    write_staged(fs, root, f"{base}.keys.arrow", [part for _, part in by_bucket])
    out.keys = StagedKeys(f"{base}.keys.arrow", tuple(int(b) for b, _ in by_bucket))
    return out


def _locate_signatures(keys: pa.Table, batch: int) -> pa.Table:
    """``keys`` (batch ``batch`` of a chunk's keys) without their signatures, but with where
    they are staged: the same batch and row of ``<chunk>.minhash.arrow``."""
    n = keys.num_rows
    return (
        keys.drop_columns([_SIG])
        .append_column("_sig_batch", pa.array(np.full(n, batch, np.int32)))
        .append_column("_sig_row", pa.array(np.arange(n, dtype=np.int32)))
    )


def read_signatures(fs, root: str, keys: pa.Table) -> pa.FixedSizeListArray:
    """The signatures ``stage_chunk(minhash=True)`` staged for the posts of ``keys`` (its
    resolution keys, any subset in any order), in the order of ``keys``."""
    out = np.empty((keys.num_rows, SIGNATURE_SIZE), np.uint32)
    if keys.num_rows == 0:
        return pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1)), SIGNATURE_SIZE)
    rows = keys.column("_sig_row").to_numpy()
    batches = keys.column("_sig_batch").to_numpy()
    for path, batch, group in staged_batches(keys.column("_file"), batches):
        # read_staged maps a local file: only the pages of the rows taken are read (with
        # --dedup-text, kept keys are grouped by text, and each group takes a few rows of
        # every batch).
        staged = StagedRows(path.removesuffix(".rows.arrow") + ".minhash.arrow", batch)
        out[group] = signature_matrix(read_staged(fs, root, staged).column(0))[rows[group]]
    return pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1)), SIGNATURE_SIZE)


class _StageFn(beam.DoFn):
    def __init__(self, url, storage_options, run_id, buckets, minhash):
        self._url, self._storage_options = url, storage_options
        self._run_id, self._buckets, self._minhash = run_id, buckets, minhash

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)
        # One per worker: the chunks it stages share many texts (see SignatureCache).
        self._signatures = SignatureCache() if self._minhash else None

    def process(self, chunk: ParsedChunk):
        yield stage_chunk(
            self._fs,
            self._root,
            self._run_id,
            chunk,
            self._buckets,
            minhash=self._minhash,
            signature_cache=self._signatures,
        )


class StagePosts(beam.PTransform):
    """``ParsedChunk`` s -> ``StagedChunk`` s: posts written to the staging area of ``run_id``
    in ``dataset``, keys split into ``buckets`` by edit root (see ``stage_chunk``); with
    ``minhash``, the keys carry each post's MinHash signature (``--dedup-near``).

    Example::

        staged = chunks | StagePosts("/data/posts", run_id=run_id, buckets=8)
    """

    def __init__(
        self,
        dataset: str,
        *,
        run_id: str,
        buckets: int,
        storage_options: Mapping[str, Any] | None = None,
        minhash: bool = False,
    ):
        super().__init__()
        if buckets < 1:
            raise ValueError(f"buckets={buckets}: expected >= 1")
        self._fn = _StageFn(dataset, dict(storage_options or {}), run_id, buckets, minhash)

    def expand(self, chunks):
        return chunks | "Stage" >> beam.ParDo(self._fn)
