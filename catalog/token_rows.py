"""``TokenRows``: one row group of a ``tokens`` dataset unpacked for batching, and the batches
``TokenReader`` assembles from them.

Unpacking does the per-row work once per row group, vectorized (padding to ``seq_len``, real
lengths, the checks), so it runs in the read-ahead threads; a batch is then a few gathers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from catalog.dataset import DatasetError

__all__ = ["TokenRows", "assemble", "unpack"]


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array; a row group's usually is one chunk already, and combine_chunks
    would copy it."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _list_parts(arr: pa.ListArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, starts, lengths) of a list<int32> array, as numpy (nulls count as empty)."""
    if arr.null_count == 0:  # the usual case: straight from the offsets, no compute kernel
        offsets = arr.offsets.to_numpy().astype(np.int64)
        lengths = np.diff(offsets)
        starts = offsets[:-1] - offsets[0]
    else:
        lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
        lengths = lengths.astype(np.int64)
        starts = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return values, starts, lengths


@dataclass
class TokenRows:
    """One row group in memory (at ``slot`` of the epoch's order of row groups): ``tokens`` is
    int32 ``[rows, seq_len]`` padded, ``lengths`` the real tokens of each row, ``order`` the
    rows in epoch order; row ``r``'s doc_lens are ``doc_values[doc_starts[r]:doc_stops[r]]``."""

    slot: int
    where: str
    order: np.ndarray
    example_id: list[str]
    tokens: np.ndarray
    lengths: np.ndarray
    doc_values: np.ndarray
    doc_starts: list[int]
    doc_stops: list[int]
    media: pa.ListArray | None


def unpack(
    table: pa.Table, *, slot: int, where: str, order: np.ndarray, seq_len: int, pack: str, pad: int
) -> TokenRows:
    """The rows of ``table`` (a row group's ``example_id``, ``input_ids``, ``doc_lens`` and
    ``media``), checked: ``DatasetError`` naming the first bad example."""
    example_id = table.column("example_id").to_pylist()
    ids = _one_array(table.column("input_ids"))
    if ids.null_count:
        raise DatasetError(f"{where}: {ids.null_count} examples have null input_ids")
    values, _, lengths = _list_parts(ids)
    rows = len(lengths)
    long = np.flatnonzero(lengths > seq_len)
    if long.size:
        r = int(long[0])
        raise DatasetError(
            f"{where}: example {example_id[r]!r} has {lengths[r]} tokens, more than seq_len {seq_len}"
        )
    if values.size == rows * seq_len:  # every example full (packed): a view, no copy
        tokens = values.reshape(rows, seq_len)
    else:
        tokens = np.full((rows, seq_len), pad, dtype=np.int32)
        tokens[np.arange(seq_len) < lengths[:, None]] = values
    doc_lens = _list_parts(_one_array(table.column("doc_lens")))
    real = lengths
    if pack == "pad":  # the packer's pad tokens are not real: the documents' lengths are
        dv, ds, dl = doc_lens
        sums = np.concatenate([[0], np.cumsum(dv, dtype=np.int64)])
        real = sums[ds + dl] - sums[ds]
        over = np.flatnonzero(real > lengths)
        if over.size:
            r = int(over[0])
            raise DatasetError(
                f"{where}: example {example_id[r]!r} has doc_lens summing to {real[r]}, "
                f"more than its {lengths[r]} tokens"
            )
    media = _one_array(table.column("media"))
    has_media = media.null_count < len(media) and bool(
        media.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).any()
    )
    return TokenRows(
        slot=slot,
        where=where,
        order=order,
        example_id=example_id,
        tokens=tokens,
        lengths=real.astype(np.int32),
        doc_values=doc_lens[0],
        # Python ints: slicing with them is 3x faster than with numpy scalars, once per example.
        doc_starts=doc_lens[1].tolist(),
        doc_stops=(doc_lens[1] + doc_lens[2]).tolist(),
        media=media if has_media else None,
    )


def assemble(parts: list[tuple[TokenRows, np.ndarray]], index: int, seq_len: int) -> dict:
    """Batch ``index`` from ``(row group, its rows)`` parts, in order (see ``TokenReader``)."""
    tokens = [unit.tokens[rows] for unit, rows in parts]
    lengths = [unit.lengths[rows] for unit, rows in parts]
    input_ids = tokens[0] if len(tokens) == 1 else np.concatenate(tokens)
    lengths = lengths[0] if len(lengths) == 1 else np.concatenate(lengths)
    doc_lens, example_id, media = [], [], []
    for unit, rows in parts:
        values, starts, stops = unit.doc_values, unit.doc_starts, unit.doc_stops
        for r in rows.tolist():
            example_id.append(unit.example_id[r])
            doc_lens.append(values[starts[r] : stops[r]].copy())
            if unit.media is not None:
                where = f"{unit.where} example {unit.example_id[r]!r}"
                media.append(_decode_media(unit.media[r], where))
            else:
                media.append([])
    if lengths.min() == seq_len:  # packed examples: the common case, and 15x cheaper
        mask = np.ones((len(lengths), seq_len), dtype=np.uint8)
    else:
        mask = (np.arange(seq_len) < lengths[:, None]).view(np.uint8)
    batch: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": mask,
        "lengths": lengths,
        "doc_lens": doc_lens,
        "example_id": example_id,
        "batch_index": index,
    }
    if any(media):
        batch["media"] = media
    return batch


def _decode_media(items: pa.Scalar, where: str) -> list[dict[str, Any]]:
    """The media of one example: ``{"kind", "patches"}`` with patches as shaped uint8 arrays."""
    if not items.is_valid:
        return []
    out = []
    for item in items.values:
        kind = item["kind"].as_py()
        shape = item["shape"].as_py()
        patches = item["patches"]
        data = patches.as_buffer() if patches.is_valid else pa.py_buffer(b"")
        if shape is None or any(d is None or d < 0 for d in shape):
            raise DatasetError(f"{where}: media {kind!r} has shape {shape!r}")
        if math.prod(shape) != data.size:
            raise DatasetError(
                f"{where}: media {kind!r} has shape {shape} ({math.prod(shape)} bytes) "
                f"but {data.size} bytes of patches"
            )
        # A copy, so the array is writable (torch.from_numpy warns on read-only memory).
        array = np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()
        out.append({"kind": kind, "patches": array})
    return out
