"""Examples re-packed without some documents: compliance removals reaching a ``tokens`` dataset.

An example's ``sources`` name every span of its tokens (dataset, document id, offset inside the
document, length), in order. Removing a document drops its spans and their tokens; what is left
keeps its order and exact provenance (offsets are the documents' own, so they do not change):

* ``concat``: the remaining spans close up and the example gets shorter by the removed tokens
  (a reader pads it, as it pads the last example of a shard file);
* ``pad``: one document per example, so the example goes with it;
* an example left with no span is removed. A re-packed example takes the id of its new start
  (``pack.example_id``). Media entries stay: removed documents are posts, which carry none.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import TOKENS
from transforms.tokenize.pack import example_id

__all__ = ["RepackOptions", "Repacked", "removed_spans", "repack_without"]


@dataclass(frozen=True)
class RepackOptions:
    """The tokens dataset's ``seed``, ``seq_len`` and pack ``mode`` (from its manifest):
    what example ids are made of."""

    seed: int
    seq_len: int
    mode: str


@dataclass
class Repacked:
    """A file's examples without the removed documents, and what went."""

    table: pa.Table
    counts: dict[str, int] = field(default_factory=dict)
    documents: set[tuple[str, str]] = field(default_factory=set)


def removed_spans(sources: pa.ChunkedArray | pa.ListArray, removed: Mapping[str, Set[str]]):
    """``(span is removed: bool array over the flattened spans, row of each span)``."""
    if isinstance(sources, pa.ChunkedArray):
        sources = sources.combine_chunks()
    spans = sources.flatten()
    datasets, ids = spans.field("dataset"), spans.field("id")
    hit = np.zeros(len(spans), bool)
    for label, doc_ids in removed.items():
        if not doc_ids:
            continue
        mine = pc.fill_null(pc.equal(datasets, label), False)
        found = pc.fill_null(pc.is_in(ids, value_set=pa.array(sorted(doc_ids), pa.string())), False)
        hit |= pc.and_(mine, found).to_numpy(zero_copy_only=False)
    rows = pc.list_parent_indices(sources).to_numpy(zero_copy_only=False)
    return hit, rows


def _repack_row(row: dict, gone: np.ndarray, opts: RepackOptions) -> tuple[dict | None, int]:
    """``row`` without its spans marked in ``gone`` (None if none is left); tokens removed."""
    tokens = row["input_ids"]
    kept_ids, kept_spans, at, removed = [], [], 0, 0
    for span, drop in zip(row["sources"], gone, strict=True):
        piece = tokens[at : at + span["length"]]
        at += span["length"]
        if drop:
            removed += len(piece)
        else:
            kept_ids += piece
            kept_spans.append(span)
    if not kept_spans:
        return None, removed
    first = kept_spans[0]
    new_id = example_id(
        opts.seed, opts.seq_len, opts.mode, first["dataset"], first["id"], first["offset"]
    )
    return {
        "example_id": new_id,
        # Tokens after the last span (pad mode's padding) stay where they were.
        "input_ids": kept_ids + tokens[at:],
        "doc_lens": [s["length"] for s in kept_spans],
        "sources": kept_spans,
        "media": row["media"],
    }, removed


def repack_without(
    table: pa.Table, removed: Mapping[str, Set[str]], opts: RepackOptions
) -> Repacked:
    """``table`` (``tokens`` rows, in file order) without the documents ``removed`` (dataset
    label -> document ids); rows keep their order, untouched rows their bytes."""
    hit, rows = removed_spans(table.column("sources"), removed)
    affected = np.unique(rows[hit])
    if not len(affected):
        return Repacked(table, {"examples_in": table.num_rows})
    sources = table.column("sources").combine_chunks()
    starts = sources.offsets.to_numpy()
    new_rows, tokens_removed, dropped = [], 0, 0
    replace: dict[int, int] = {}
    documents: set[tuple[str, str]] = set()
    for r in affected.tolist():
        row = table.slice(r, 1).to_pylist()[0]
        gone = hit[starts[r] - starts[0] : starts[r + 1] - starts[0]]
        documents |= {
            (s["dataset"], s["id"]) for s, g in zip(row["sources"], gone, strict=True) if g
        }
        new, n = _repack_row(row, gone, opts)
        tokens_removed += n
        if new is None:
            dropped += 1
            continue
        replace[r] = table.num_rows + len(new_rows)
        new_rows.append(new)
    gone_rows = set(affected.tolist()) - set(replace)
    order = [replace.get(r, r) for r in range(table.num_rows) if r not in gone_rows]
    merged = pa.concat_tables([table, pa.Table.from_pylist(new_rows, schema=TOKENS.schema)])
    return Repacked(
        merged.take(pa.array(order, pa.int64())),
        {
            "examples_in": table.num_rows,
            "examples_removed": dropped,
            "examples_repacked": len(new_rows),
            "spans_removed": int(hit.sum()),
            "tokens_removed": tokens_removed,
        },
        documents,
    )
