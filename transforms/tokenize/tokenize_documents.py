"""``TokenizeDocuments``: dataset versions -> tokenized documents, keyed by output shard."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog.staging import StagedRows, staging_dir, write_staged
from catalog.storage import open_url
from transforms.progress import ProgressTarget, Reporter
from transforms.read_shards import read_row_group, row_groups
from transforms.run_report import tally
from transforms.tokenize.documents import (
    Rendered,
    clip_documents,
    docs_table,
    post_documents,
    thread_documents,
)
from transforms.tokenize.shuffle import shuffle_keys
from transforms.tokenize.tokenizer import TokenizerSpec, encode_texts

__all__ = ["DocumentOptions", "InputVersion", "StageTo", "TokenizeDocuments", "TokenizedChunk"]

_COLUMNS = {
    "posts": ["post_id", "text"],
    "threads": ["post_id", "text", "created_at", "conversation_id"],
    "clips": ["clip_id", "cameras", "event", "tags"],
}
_THREAD_BUCKETS = 64


@dataclass(frozen=True)
class InputVersion:
    """One input: a ``posts`` or ``clips`` dataset at a pinned version.

    ``label`` names it in the ``sources`` of every example (the URL without credentials);
    ``files`` are the data files to read (relative to the root). Posts left out, counted as
    skipped: ``removed``, removed from the dataset since ``version`` (compliance;
    ``removed_since_version``), and ``held``, that the tokens dataset holds already (rows an
    ingest carried into a rewritten file; ``already_tokenized``).
    """

    url: str
    label: str
    kind: str
    version: int
    schema: pa.Schema
    files: tuple[str, ...]
    removed: frozenset[str] = frozenset()
    held: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DocumentOptions:
    """What decides the documents and their order: the tokenizer, the shuffle ``seed``, the
    number of output ``shards``, the ``patch`` size, and ``threads`` (a reply thread is one
    document)."""

    tokenizer: TokenizerSpec
    seed: int
    shards: int
    patch: int = 16
    threads: bool = False


@dataclass(frozen=True)
class StageTo:
    """Where tokenized documents wait for packing: the staging area of run ``run_id`` in the
    dataset ``url`` (``catalog.staging``; removed when the run commits or fails)."""

    url: str
    run_id: str


@dataclass
class TokenizedChunk:
    """What tokenizing one row group gives: ``(shard, documents)`` pieces and a tally. A
    piece's documents are a table, or ``StagedRows`` naming where they were staged."""

    pieces: list[tuple[int, pa.Table | StagedRows]] = field(default_factory=list)
    tally: dict[str, int] = field(default_factory=dict)
    tokens: int = 0  # in the documents (for progress reports)


def _stage(chunk: TokenizedChunk, fs, root: str, path: str) -> TokenizedChunk:
    """``chunk`` with its tables written to ``path`` (one record batch per shard) and its
    pieces turned into references: only a few bytes per piece cross Beam's data plane, not
    every token id, and the runner never holds the run's documents in memory."""
    if not chunk.pieces:
        return chunk
    write_staged(fs, root, path, [table for _, table in chunk.pieces])
    pieces = [(shard, StagedRows(path, b)) for b, (shard, _) in enumerate(chunk.pieces)]
    return TokenizedChunk(pieces, chunk.tally, chunk.tokens)


def _staged_name(run_id: str, *parts) -> str:
    # One file per unit of work, named after the unit: a retried bundle rewrites its own file.
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=10).hexdigest()
    return f"{staging_dir(run_id)}/docs-{digest}.arrow"


def tokenize_rendered(
    rendered: Rendered, kind: str, label: str, opts: DocumentOptions, tokenizer, records_in: int
) -> TokenizedChunk:
    """Encode rendered documents, key them for the shuffle and split them by shard."""
    ids = None
    if kind != "clips":
        ids = encode_texts(tokenizer, rendered.texts, opts.tokenizer.special_ids["eos"])
    keys = shuffle_keys(opts.seed, kind, rendered.doc_ids)
    docs = docs_table(rendered, keys, label, ids)
    pieces = [(0, docs)] if opts.shards == 1 else _by_shard(docs, keys % np.uint64(opts.shards))
    written = sum(rendered.records)
    tokens = pc.sum(pc.list_value_length(docs.column("input_ids"))).as_py() or 0
    return TokenizedChunk(
        pieces, tally(records_in=records_in, written=written, skipped=rendered.skipped), tokens
    )


def _by_shard(docs: pa.Table, shard: np.ndarray) -> list[tuple[int, pa.Table]]:
    """``docs`` split by ``shard``, each piece in row order: one stable sort and slices, not a
    filter (a copy of the whole table) per shard."""
    if not len(shard):  # every row skipped (empty texts, posts held already): no piece
        return []
    order = np.argsort(shard, kind="stable")
    grouped = docs.take(pa.array(order))
    shards, starts = np.unique(shard[order], return_index=True)
    ends = [*starts[1:], len(order)]
    return [
        (int(s), grouped.slice(int(a), int(b - a)))
        for s, a, b in zip(shards, starts, ends, strict=True)
    ]


class _ReadFn(beam.DoFn):
    """Reads one row group of one input: ``(input index, path, row group) -> table``."""

    def __init__(self, inputs, storage_options, columns, progress=None):
        self._inputs, self._storage_options, self._columns = inputs, storage_options, columns
        self._progress = progress

    def setup(self):
        self._fs = [open_url(i.url, self._storage_options) for i in self._inputs]
        self._reporter = Reporter(self._progress)

    def teardown(self):
        self._reporter.close()

    def _key(self, unit) -> tuple[str, str]:
        # The file's URI in the plan's sources (pipelines.tokenize.plan), and the row group.
        return f"{self._inputs[unit[0]].label}/{unit[1]}", str(unit[2])

    def _read(self, unit) -> pa.Table:
        i, path, index = unit
        fs, root = self._fs[i]
        spec = self._inputs[i]
        return read_row_group(fs, root, path, index, spec.schema, self._columns[spec.kind])


class _Stager:
    """Stages a DoFn's chunks in ``stage_to`` (passes them on as they are without one)."""

    def __init__(self, stage_to: StageTo | None, storage_options):
        self._stage_to, self._stage_options = stage_to, storage_options

    def setup(self):
        if self._stage_to is not None:
            self._stage_fs = open_url(self._stage_to.url, self._stage_options)

    def staged(self, chunk: TokenizedChunk, *unit) -> TokenizedChunk:
        if self._stage_to is None:
            return chunk
        fs, root = self._stage_fs
        return _stage(chunk, fs, root, _staged_name(self._stage_to.run_id, *unit))


class _TokenizeRowGroupFn(_ReadFn):
    def __init__(self, inputs, storage_options, opts: DocumentOptions, stage_to, progress=None):
        super().__init__(inputs, storage_options, _COLUMNS, progress)
        self._opts = opts
        self._stager = _Stager(stage_to, storage_options)

    def setup(self):
        super().setup()
        self._stager.setup()
        self._tok = self._opts.tokenizer.backend()

    def process(self, unit):
        i, path, _ = unit
        spec = self._inputs[i]
        key = self._key(unit)
        self._reporter.start(*key)
        table = self._read(unit)
        if spec.kind == "clips":
            special = self._opts.tokenizer.special_ids
            rendered = clip_documents(table, path, self._tok, special, self._opts.patch)
        else:
            rendered = _post_documents(table, path, spec)
        chunk = tokenize_rendered(
            rendered, spec.kind, spec.label, self._opts, self._tok, table.num_rows
        )
        self._reporter.stop(*key, rows=table.num_rows, tokens=chunk.tokens)
        yield self._stager.staged(chunk, *unit)


def _post_documents(table: pa.Table, path: str, spec: InputVersion) -> Rendered:
    """The post documents of ``table`` but the ``removed`` and ``held`` ones (counted)."""
    skipped = {}
    for reason, ids in (("removed_since_version", spec.removed), ("already_tokenized", spec.held)):
        if ids:
            hit = pc.is_in(table.column("post_id"), value_set=pa.array(sorted(ids), pa.string()))
            skipped[reason] = pc.sum(hit).as_py() or 0
            table = table.filter(pc.invert(hit))
    rendered = post_documents(table, path)
    rendered.skipped.update({k: n for k, n in skipped.items() if n})
    return rendered


class _ThreadBucketsFn(_ReadFn):
    """Posts of one row group, split by a hash of their thread so that whole threads meet."""

    def __init__(self, inputs, storage_options, progress=None):
        super().__init__(inputs, storage_options, {"posts": _COLUMNS["threads"]}, progress)

    def process(self, unit):
        i, path, _ = unit
        key = self._key(unit)
        self._reporter.start(*key)
        table = self._read(unit)
        self._reporter.stop(*key, rows=table.num_rows)
        table = table.append_column("source", pa.array([path] * table.num_rows, pa.string()))
        thread = pc.coalesce(table.column("conversation_id"), table.column("post_id"))
        bucket = shuffle_keys(0, "thread", thread.to_pylist()) % np.uint64(_THREAD_BUCKETS)
        for b in np.unique(bucket):
            yield (i, int(b)), table.filter(pa.array(bucket == b))


class _TokenizeThreadsFn(beam.DoFn):
    def __init__(self, inputs, opts: DocumentOptions, stage_to, storage_options, progress=None):
        self._inputs, self._opts = inputs, opts
        self._stager = _Stager(stage_to, storage_options)
        self._progress = progress

    def setup(self):
        self._stager.setup()
        self._tok = self._opts.tokenizer.backend()
        self._reporter = Reporter(self._progress)

    def teardown(self):
        self._reporter.close()

    def process(self, element):
        (i, bucket), tables = element
        table = pa.concat_tables(list(tables))
        rendered = thread_documents(table)
        spec = self._inputs[i]
        chunk = tokenize_rendered(
            rendered, "threads", spec.label, self._opts, self._tok, table.num_rows
        )
        # Threads count only tokens: their rows were counted when read (no planned source).
        self._reporter.add(f"threads of {spec.label}", str(bucket), tokens=chunk.tokens)
        yield self._stager.staged(chunk, "threads", i, bucket)


class _SplitFn(beam.DoFn):
    def __init__(self, inputs, storage_options):
        self._inputs, self._storage_options = inputs, storage_options

    def setup(self):
        self._fs = [open_url(i.url, self._storage_options) for i in self._inputs]

    def process(self, file):
        i, path = file
        fs, root = self._fs[i]
        for _, index in row_groups(fs, root, path):
            yield i, path, index


class TokenizeDocuments(beam.PTransform):
    """Render, tokenize and shuffle-key every document of some ``posts``/``clips`` versions.

    The output is a PCollection of ``TokenizedChunk``: ``(shard, documents table)`` pieces
    (``transforms.tokenize.documents.DOCS_SCHEMA``) ready to be grouped by shard and packed,
    and a tally of the rows read, written as documents, or skipped (empty text, empty clip).
    With ``stage_to``, the tables are written to that run's staging area and the pieces are
    ``(shard, catalog.staging.StagedRows)`` references to them.

    Example::

        chunks = p | TokenizeDocuments(inputs, DocumentOptions(load_tokenizer(), seed=0, shards=8))

    Args:
        inputs: the versions to read (``InputVersion``).
        opts: tokenizer, seed, shards, patch size, threads.
        storage_options: fsspec options for the inputs and ``stage_to`` (never stored).
        stage_to: stage the documents there instead of passing them through Beam.
        progress: where to report the rows read and tokens made, per input file (default:
            nowhere; see ``transforms.progress``).
    """

    def __init__(
        self,
        inputs: Sequence[InputVersion],
        opts: DocumentOptions,
        *,
        storage_options: Mapping[str, Any] | None = None,
        stage_to: StageTo | None = None,
        progress: ProgressTarget | None = None,
    ):
        super().__init__()
        if opts.shards < 1:
            raise ValueError(f"shards={opts.shards}: expected >= 1")
        if opts.patch < 1:
            raise ValueError(f"patch={opts.patch}: expected >= 1")
        self._inputs = tuple(inputs)
        self._opts = opts
        self._storage_options = dict(storage_options or {})
        self._stage_to = stage_to
        self._progress = progress

    def expand(self, pbegin):
        progress = self._progress
        so = self._storage_options
        files = [(i, path) for i, spec in enumerate(self._inputs) for path in spec.files]
        units = (
            pbegin
            | "ListFiles" >> beam.Create(files)
            | "SplitRowGroups" >> beam.ParDo(_SplitFn(self._inputs, so))
            | "Redistribute" >> beam.Reshuffle()
        )
        if not self._opts.threads:
            return units | "Tokenize" >> beam.ParDo(
                _TokenizeRowGroupFn(self._inputs, so, self._opts, self._stage_to, progress)
            )
        # Threads need every post of a conversation in one place: posts datasets go through a
        # grouping by thread first; clips are tokenized as they are.
        clip_inputs = {i for i, spec in enumerate(self._inputs) if spec.kind == "clips"}
        clips = units | "ClipUnits" >> beam.Filter(lambda u: u[0] in clip_inputs)
        posts = units | "PostUnits" >> beam.Filter(lambda u: u[0] not in clip_inputs)
        threads = (
            posts
            | "ByThread" >> beam.ParDo(_ThreadBucketsFn(self._inputs, so, progress))
            | "GroupThreads" >> beam.GroupByKey()
            | "TokenizeThreads"
            >> beam.ParDo(
                _TokenizeThreadsFn(self._inputs, self._opts, self._stage_to, so, progress)
            )
        )
        return (
            threads,
            clips
            | "TokenizeClips"
            >> beam.ParDo(
                _TokenizeRowGroupFn(self._inputs, so, self._opts, self._stage_to, progress)
            ),
        ) | "AllDocuments" >> beam.Flatten()
