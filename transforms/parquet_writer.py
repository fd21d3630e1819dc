"""Rolling zstd Parquet files of a target size, with the SHA-256 of every byte written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from schemas import FileEntry

__all__ = ["RollingParquetWriter", "WrittenFile"]

_MiB = 1 << 20


@dataclass(frozen=True)
class WrittenFile:
    """A file a writer produced: its manifest entry, and its rejects' reasons when it holds rejects."""

    entry: FileEntry
    reasons: tuple[tuple[str, int], ...] = ()


class _HashingSink:
    """A write-only file object that forwards to ``raw`` and hashes and counts what passes."""

    def __init__(self, raw):
        self._raw = raw
        self._sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        data = memoryview(data)
        self._sha.update(data)
        self._raw.write(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._raw.close()

    @property
    def checksum(self) -> str:
        return "sha256:" + self._sha.hexdigest()


class RollingParquetWriter:
    """Writes tables into Parquet files of about ``target_file_bytes``, one row group at a time.

    Tables are buffered until ``row_group_rows`` rows or ``row_group_bytes`` Arrow bytes, then
    written as one row group (sorted by ``sort_by`` if given); a file is closed once it has
    reached ``target_file_bytes`` on disk. Memory is bounded by one row group, whatever the
    input size.

    Args:
        fs: the filesystem to write to.
        root: the dataset root on ``fs``.
        directory: directory relative to ``root`` (``data/dt=2026-11-21``, ``rejects``).
        name: ``name(seq)`` gives the file name of the ``seq``-th file (0, 1, ...).
        schema: the exact schema of every file.
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        root: str,
        directory: str,
        name: Callable[[int], str],
        schema: pa.Schema,
        *,
        target_file_bytes: int = 256 * _MiB,
        row_group_rows: int = 1_000_000,
        row_group_bytes: int = 128 * _MiB,
        sort_by: tuple[str, ...] = (),
        compression_level: int = 3,
    ):
        self._fs = fs
        self._root = root
        self._directory = directory
        self._name = name
        self._schema = schema
        self._target = target_file_bytes
        self._rg_rows = row_group_rows
        self._rg_bytes = row_group_bytes
        self._sort_by = sort_by
        self._level = compression_level
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._seq = 0
        self._sink: _HashingSink | None = None
        self._writer: pq.ParquetWriter | None = None
        self._rel_path = ""
        self._rows_in_file = 0
        self.written: list[FileEntry] = []

    def write(self, table: pa.Table) -> None:
        """Add ``table`` (already conformed to the schema)."""
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        if self._buffered_rows >= self._rg_rows or self._buffered_bytes >= self._rg_bytes:
            self._flush_row_group()

    def close(self) -> list[FileEntry]:
        """Write what is buffered, close the open file, and return every file written."""
        self._flush_row_group()
        self._close_file()
        return self.written

    def _flush_row_group(self) -> None:
        if not self._buffer:
            return
        table = _combine(self._buffer, self._sort_by)  # empties the buffer
        self._buffered_rows, self._buffered_bytes = 0, 0
        # A row group never exceeds the limits, even when one input table did.
        step = self._rg_rows
        if table.nbytes > self._rg_bytes:
            step = max(1, min(step, table.num_rows * self._rg_bytes // table.nbytes))
        for offset in range(0, table.num_rows, step):
            chunk = table.slice(offset, step)
            if self._writer is None:
                self._open_file()
            self._writer.write_table(chunk, row_group_size=chunk.num_rows)
            self._rows_in_file += chunk.num_rows
            if self._sink.tell() >= self._target:
                self._close_file()
        # Hand the row group's freed buffers back to the OS now: Arrow's allocator keeps them,
        # and a writer's RSS then crept up row group after row group (at 1M posts: 460 -> 580
        # MiB over 8 row groups; with this it stays at 440-470).
        del table, chunk
        pa.default_memory_pool().release_unused()

    def _open_file(self) -> None:
        self._rel_path = f"{self._directory}/{self._name(self._seq)}"
        self._seq += 1
        path = f"{self._root}/{self._rel_path}"
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self._sink = _HashingSink(self._fs.open(path, "wb"))
        self._writer = pq.ParquetWriter(
            self._sink,
            self._schema,
            compression="zstd",
            compression_level=self._level,
            write_statistics=True,
        )
        self._rows_in_file = 0

    def _close_file(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._sink.close()
        self.written.append(
            FileEntry(self._rel_path, self._rows_in_file, self._sink.size, self._sink.checksum)
        )
        self._writer = None
        self._sink = None


def _combine(tables: list[pa.Table], sort_by: tuple[str, ...]) -> pa.Table:
    """``tables`` as one table (the list is emptied), its rows sorted by ``sort_by`` (ascending,
    stable, nulls last: as ``Table.sort_by``).

    Sorted column by column, each column's sorted copy taking the place of the column it was
    made from: a row group is held once and one column more while it is sorted, not twice
    (``Table.sort_by`` copies every column before any is freed). At 1 M posts that was a
    writer's peak: 33 MiB of rows to sort raised its RSS by 60 MiB.
    """
    table = pa.concat_tables(tables)
    tables.clear()
    if not sort_by:
        return table
    order = pc.sort_indices(table, sort_keys=[(name, "ascending") for name in sort_by])
    schema, columns = table.schema, table.columns
    del table  # the list of columns holds the only references to the unsorted rows now
    for i, column in enumerate(columns):
        columns[i] = column.take(order)
    return pa.Table.from_arrays(columns, schema=schema)
