"""Hive ``dt=`` partitions and writer buckets: which file a row goes to."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from schemas import KindSpec

__all__ = ["partition_dir", "split_partitions", "writer_bucket"]


def split_partitions(table: pa.Table, spec: KindSpec) -> Iterator[tuple[str, pa.Table]]:
    """Split ``table`` by its kind's partition: yields ``(dt, rows)`` (``dt`` is ``""`` if none).

    ``dt`` is the UTC date of the kind's ``partition_by`` timestamp, as ``YYYY-MM-DD``.
    """
    if spec.partition_by is None or table.num_rows == 0:
        yield "", table
        return
    ts = table.column(spec.partition_by)
    days = pc.strftime(pc.cast(ts, pa.timestamp(ts.type.unit, tz="UTC")), format="%Y-%m-%d")
    unique = pc.unique(days).to_pylist()
    if len(unique) == 1:
        yield unique[0], table
        return
    for day in sorted(unique):
        yield day, table.filter(pc.equal(days, day))


def partition_dir(dt: str) -> str:
    """The data directory of a partition, relative to the dataset root."""
    return f"data/dt={dt}" if dt else "data"


def writer_bucket(table: pa.Table, key: str, writers: int) -> int:
    """A deterministic writer for ``table``: from its first key, so reruns spread rows the same way."""
    if writers <= 1 or table.num_rows == 0:
        return 0
    first = str(table.column(key)[0].as_py())
    return zlib.crc32(first.encode("utf-8")) % writers
