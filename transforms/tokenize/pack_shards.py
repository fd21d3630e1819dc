"""``PackShards``: group tokenized documents by shard, order them by key, pack, and write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from catalog.staging import StagedRows, read_staged
from catalog.storage import open_url
from schemas import TOKENS
from transforms.parquet_writer import RollingParquetWriter, WrittenFile
from transforms.tokenize.pack import PackOptions, example_tables, layout
from transforms.tokenize.shuffle import same_source_pairs
from transforms.write_shards import shard_file_name

__all__ = ["PackShards", "PackedShard", "pack_shard", "sort_documents", "tokens_writer"]


def tokens_writer(fs, root: str, run_id: str, shard: int, shards: int, target: int):
    """The rolling Parquet writer of a tokenize run's ``shard`` of ``shards`` (``data/``, named
    like every run's shards, so unique per run), with the tokens kind's row groups."""
    return RollingParquetWriter(
        fs,
        root,
        "data",
        shard_file_name(run_id, shard, shards),
        TOKENS.schema,
        target_file_bytes=target,
        row_group_rows=TOKENS.row_group_rows,
        row_group_bytes=TOKENS.row_group_bytes,
    )


@dataclass
class PackedShard:
    """What packing one shard gives: the files written and statistics for the report."""

    files: list[WrittenFile] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


def sort_documents(tables: list[pa.Table]) -> pa.Table:
    """One shard's documents in shuffle order: by key; equal keys (a 64-bit collision, or the
    same document given twice) by dataset and id, so the order never depends on arrival."""
    docs = pa.concat_tables(tables)
    keys = docs.column("key").to_numpy()
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    if (ordered[1:] == ordered[:-1]).any():
        return docs.sort_by(
            [("key", "ascending"), ("dataset", "ascending"), ("doc_id", "ascending")]
        )
    # Distinct keys (the rule): their order is the order; numpy sorts 64-bit integers ~10x
    # faster than Arrow sorts the three columns.
    return docs.take(pa.array(order))


def pack_shard(docs: pa.Table, opts: PackOptions, writer: RollingParquetWriter) -> dict:
    """Pack the sorted ``docs`` of one shard into ``writer``; returns the shard's statistics."""
    lay = layout(docs.column("input_ids").combine_chunks(), opts)
    for table in example_tables(docs, lay, opts):
        writer.write(table)
    same, expected = same_source_pairs(docs.column("source"))
    return {
        "documents": docs.num_rows,
        "examples": lay.examples,
        "tokens": int(lay.seg_len.sum()),
        "padding_tokens": len(lay.tokens) - int(lay.seg_len.sum()),
        "patches": int((lay.tokens == opts.patch_id).sum()),
        "truncated_tokens": lay.truncated_tokens,
        "adjacent_pairs": max(0, docs.num_rows - 1),
        "adjacent_same_source": same,
        "adjacent_same_source_expected": expected,
    }


class _PackFn(beam.DoFn):
    def __init__(self, url, storage_options, run_id, shards, opts, target):
        self._url, self._storage_options = url, storage_options
        self._run_id, self._shards, self._opts, self._target = run_id, shards, opts, target

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, element):
        shard, pieces = element
        tables = [
            read_staged(self._fs, self._root, p) if isinstance(p, StagedRows) else p for p in pieces
        ]
        writer = tokens_writer(
            self._fs, self._root, self._run_id, shard, self._shards, self._target
        )
        stats = pack_shard(sort_documents(tables), self._opts, writer)
        yield PackedShard([WrittenFile(e, ()) for e in writer.close()], stats)


class PackShards(beam.PTransform):
    """Pack ``(shard, documents)`` pieces into ``tokens`` files, one group of files per shard.

    A piece's documents are a table or ``catalog.staging.StagedRows`` in ``dataset``'s staging
    area (``TokenizeDocuments(stage_to=...)``).

    Each shard's documents are sorted by shuffle key and packed (``PackOptions``); its files
    are named ``<run_id>-<nnnnn>.parquet`` with ``nnnnn`` = shard + k * shards. The output is a
    PCollection of ``PackedShard`` (files for ``WriteShards``' ``files`` input, and stats).

    Args:
        dataset: the ``tokens`` dataset URL.
        run_id: the run's id.
        shards: the number of shards the documents were keyed into.
        opts: how to pack.
        storage_options: fsspec options for ``dataset``.
        target_file_bytes: roll to a new file past this size.
    """

    def __init__(
        self,
        dataset: str,
        *,
        run_id: str,
        shards: int,
        opts: PackOptions,
        storage_options: Mapping[str, Any] | None = None,
        target_file_bytes: int = 256 << 20,
    ):
        super().__init__()
        self._fn = _PackFn(
            dataset, dict(storage_options or {}), run_id, shards, opts, target_file_bytes
        )

    def expand(self, pieces):
        return pieces | "GroupByShard" >> beam.GroupByKey() | "Pack" >> beam.ParDo(self._fn)
