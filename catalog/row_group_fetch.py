"""``read_row_group``: one row group of a Parquet file in one ranged request (``fetch_row_group``
then ``decode_row_group``, so the request can run in another thread than the decoding).

Through a file object, pyarrow reads a row group column chunk by column chunk: on object storage
that is a request, and its latency, per column. The footer already says where the chunks are, so
this fetches the byte range that holds every wanted chunk at once (``cat_file`` with
``start``/``end``: one ranged GET on S3) and lets pyarrow decode from memory. No file handle
outlives the call, so threads and forked DataLoader workers can read at the same time.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

__all__ = ["FetchedRowGroup", "decode_row_group", "fetch_row_group", "read_row_group"]


def _chunk_span(meta: pq.FileMetaData, group: int, columns: Sequence[str]) -> tuple[int, int]:
    """``[start, stop)`` bytes of the file holding the chunks of ``columns`` in row group ``group``."""
    row_group = meta.row_group(group)
    spans = []
    for i in range(row_group.num_columns):
        chunk = row_group.column(i)
        if chunk.path_in_schema.split(".")[0] not in columns:
            continue
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and chunk.dictionary_page_offset:
            start = min(start, chunk.dictionary_page_offset)
        spans.append((start, start + chunk.total_compressed_size))
    return min(a for a, _ in spans), max(b for _, b in spans)


class _Window(io.RawIOBase):
    """A read-only file of ``size`` bytes of which ``data`` (from byte ``offset``) is in memory;
    a read outside it (a writer whose offsets the footer does not describe exactly) is fetched."""

    def __init__(self, data: bytes, offset: int, size: int, fetch: Callable[[int, int], bytes]):
        super().__init__()
        self._data = memoryview(data)
        self._offset = offset
        self._size = size
        self._fetch = fetch
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + pos
        return self._pos

    def read(self, n: int = -1):
        stop = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        if stop <= self._pos:
            return b""
        first, last = self._pos - self._offset, stop - self._offset
        # A memoryview slice: pyarrow wraps it without copying the chunk.
        out = self._data[first:last] if first >= 0 and last <= len(self._data) else None
        if out is None:
            out = self._fetch(self._pos, stop)
        self._pos = stop
        return out

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class FetchedRowGroup:
    """The bytes ``[start, start + len(data))`` of a Parquet file holding a row group's chunks."""

    path: str
    group: int
    start: int
    data: bytes


def fetch_row_group(
    fs: AbstractFileSystem,
    path: str,
    *,
    metadata: pq.FileMetaData,
    group: int,
    columns: Sequence[str],
) -> FetchedRowGroup:
    """The bytes of row group ``group``'s ``columns`` in ``path``, in one ranged request (no
    decoding: this is what runs in read-ahead threads, waiting on the store, not the CPU)."""
    start, stop = _chunk_span(metadata, group, columns)
    return FetchedRowGroup(path, group, start, fs.cat_file(path, start=start, end=stop))


def decode_row_group(
    fetched: FetchedRowGroup,
    fs: AbstractFileSystem,
    *,
    size: int,
    metadata: pq.FileMetaData,
    columns: Sequence[str],
) -> pa.Table:
    """The table of ``fetched`` (a file of ``size`` bytes, footer ``metadata``), decoded in the
    calling thread."""
    path = fetched.path
    window = _Window(
        fetched.data, fetched.start, size, lambda a, b: fs.cat_file(path, start=a, end=b)
    )
    parquet = pq.ParquetFile(window, metadata=metadata, pre_buffer=False)
    # One thread: the caller decides what runs at once.
    return parquet.read_row_group(fetched.group, columns=list(columns), use_threads=False)


def read_row_group(
    fs: AbstractFileSystem,
    path: str,
    *,
    size: int,
    metadata: pq.FileMetaData,
    group: int,
    columns: Sequence[str],
) -> pa.Table:
    """Row group ``group`` of the Parquet file ``path`` (``size`` bytes, footer ``metadata``),
    only ``columns``, read with one ranged request and decoded in the calling thread."""
    fetched = fetch_row_group(fs, path, metadata=metadata, group=group, columns=columns)
    return decode_row_group(fetched, fs, size=size, metadata=metadata, columns=columns)
