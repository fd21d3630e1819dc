"""Posts rows to Arrow, and splitting tables into hash buckets.

A row is what ``parse.map_tweet`` makes, a dict of the posts schema's columns, or, as parsing
handles it, the list of those values in the schema's column order. ``parse.Chunk`` keeps the
values of its rows in one list, row after row: a fraction of the memory of a dict per row, and
each column is one slice of it (``values_to_table``), with no lookup by name."""

from __future__ import annotations

import operator
import zlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import POSTS

__all__ = [
    "COLUMN",
    "bucket_of",
    "bucket_positions",
    "edit_root_array",
    "edit_roots",
    "row_dicts",
    "row_values",
    "rows_to_table",
    "split_buckets",
    "values_to_table",
]


_NAMES = POSTS.schema.names
_ROW_VALUES = operator.itemgetter(*_NAMES)
# Where each column's value is in a row's list of values.
COLUMN = {name: i for i, name in enumerate(_NAMES)}


def row_values(row: dict) -> list:
    """A row (a dict of every column) as the list of its values in schema order."""
    return list(_ROW_VALUES(row))


def row_dicts(values: list) -> list[dict]:
    """The rows whose values ``values`` holds, row after row (as ``values_to_table`` takes
    them), as dicts of their columns."""
    n = len(_NAMES)
    return [dict(zip(_NAMES, values[i : i + n], strict=True)) for i in range(0, len(values), n)]


def values_to_table(values: list) -> pa.Table:
    """The values of rows, row after row, each in schema order -> a table of exactly the posts
    schema."""
    n = len(_NAMES)
    if len(values) % n:
        raise ValueError(f"{len(values)} values are no whole number of rows of {n} columns")
    # A column is every n-th value: one slice, reading the list in order. (Column lists convert
    # several times faster than a list of rows.)
    return pa.Table.from_arrays(
        [pa.array(values[i::n], f.type) for i, f in enumerate(POSTS.schema)],
        schema=POSTS.schema,
    )


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Rows from ``parse.map_tweet`` -> a table of exactly the posts schema."""
    try:
        return values_to_table([v for row in rows for v in _ROW_VALUES(row)])
    except KeyError:  # a row without some column: that column is null there
        return pa.Table.from_pylist(rows, schema=POSTS.schema)


def bucket_of(key: str, buckets: int) -> int:
    """A stable bucket for a string key (the same in every process, unlike ``hash``)."""
    return zlib.crc32(key.encode("utf-8")) % buckets


def edit_roots(table: pa.Table) -> list[str]:
    """Each row's edit root: the first id of its edit history (all versions share it), or its
    own id when the history is empty or null."""
    return edit_root_array(table).to_pylist()


def edit_root_array(table: pa.Table) -> pa.Array:
    """``edit_roots`` as an Arrow string array."""
    # In Arrow: listing every history as Python lists cost three times as much.
    histories = table.column("edit_history_ids").combine_chunks()
    has_history = pc.fill_null(pc.greater(pc.list_value_length(histories), 0), False)
    placeholder = pa.scalar([""], histories.type)  # list_element needs a first id everywhere
    first = pc.list_element(pc.if_else(has_history, histories, placeholder), 0)
    return pc.if_else(has_history, first, table.column("post_id").combine_chunks())


def bucket_positions(hashes: np.ndarray, buckets: int) -> Iterator[tuple[int, np.ndarray]]:
    """(bucket, the positions of the ``hashes`` (uint64) that fall in it, ascending) for every
    bucket that holds some, in bucket order."""
    # As small integers: numpy's stable sort of those is a radix sort, 7x faster than of int64.
    small = np.uint16 if buckets <= 1 << 16 else np.int64
    return _by_index((hashes % np.uint64(buckets)).astype(small))


def split_buckets(table: pa.Table, keys, buckets: int) -> Iterator[tuple[int, pa.Table]]:
    """Split ``table`` by the bucket of each row's key (strings, or uint64 hashes)."""
    if table.num_rows == 0:
        return
    if isinstance(keys, np.ndarray):
        parts = bucket_positions(keys, buckets)
    else:
        parts = _by_index(np.fromiter((bucket_of(k, buckets) for k in keys), np.int64, len(keys)))
    for bucket, part in parts:
        yield bucket, table.take(pa.array(part))


def _by_index(index: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    order = np.argsort(index, kind="stable")
    for part in np.split(order, np.flatnonzero(np.diff(index[order])) + 1):
        if len(part):
            yield int(index[part[0]]), part
