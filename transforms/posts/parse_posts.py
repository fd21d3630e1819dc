"""``ParsePosts``: source files -> chunks of parsed posts, delete events, rejects and counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow as pa
import zstandard

from transforms.posts.lines import open_decompressed, read_lines
from transforms.posts.parse import Chunk, ParseOptions, parse_line
from transforms.posts.rows import rows_to_table

__all__ = ["ParsePosts", "ParsedChunk", "parse_source"]

_READ_ERRORS = (OSError, EOFError, zstandard.ZstdError)


@dataclass
class ParsedChunk:
    """A few thousand lines of one source, parsed: the unit that flows through the pipeline."""

    posts: pa.Table
    deletes: list[str]
    rejects: list[dict]
    tally: dict[str, int]


def _finish(chunk: Chunk) -> ParsedChunk:
    return ParsedChunk(rows_to_table(chunk.rows), chunk.deletes, chunk.rejects, dict(chunk.counts))


def parse_source(
    stream, uri: str, options: ParseOptions, *, max_line_bytes: int, chunk_records: int = 10_000
):
    """Parse an open (possibly compressed) source, yielding a ``ParsedChunk`` every
    ``chunk_records`` records (and one at the end).

    A file that breaks off (a truncated gzip, a read error) keeps every line read before the
    break; the break itself is one ``read_error`` reject at the line where it happened.
    """
    chunk = Chunk(uri)
    number = 0
    try:
        for line in read_lines(open_decompressed(stream), max_line_bytes):
            number = line.number
            if line.too_long:
                chunk.reject(
                    f"line {line.number}",
                    "line_too_long",
                    f"{line.length} bytes, more than --max-line-bytes {max_line_bytes}",
                    line.data,
                )
            else:
                parse_line(line.data, line.number, chunk, options)
            if chunk.counts["records_in"] >= chunk_records:
                yield _finish(chunk)
                chunk = Chunk(uri)
    except _READ_ERRORS as exc:
        chunk.reject(f"line {number + 1}", "read_error", f"{type(exc).__name__}: {exc}", b"")
    if chunk.counts:
        yield _finish(chunk)


class _ParseSourceFn(beam.DoFn):
    def __init__(self, options, storage_options, max_line_bytes):
        self._options = options
        self._storage_options = storage_options
        self._max_line_bytes = max_line_bytes

    def process(self, uri: str):
        try:
            with fsspec.open(uri, "rb", **self._storage_options) as raw:
                yield from parse_source(
                    raw, uri, self._options, max_line_bytes=self._max_line_bytes
                )
        except (OSError, EOFError, ValueError, zstandard.ZstdError) as exc:
            # A file that breaks off (truncated gzip, unreadable) keeps what was read before;
            # the break itself is one reject naming the file.
            chunk = Chunk(uri)
            chunk.reject("file", "read_error", f"{type(exc).__name__}: {exc}", b"")
            yield _finish(chunk)


class ParsePosts(beam.PTransform):
    """Parse post-stream sources (URIs) into ``ParsedChunk`` elements.

    Each source is read line by line (plain, gzip or zstd, detected from its first bytes);
    every line is parsed on its own, so one bad line costs one reject.

    Args:
        options: what parsing keeps (``ParseOptions``).
        storage_options: fsspec options for the sources.
        max_line_bytes: longer lines are rejected (``line_too_long``) without being loaded.
    """

    def __init__(
        self,
        options: ParseOptions,
        *,
        storage_options: Mapping[str, Any] | None = None,
        max_line_bytes: int = 16 << 20,
    ):
        super().__init__()
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes={max_line_bytes}: expected a positive size")
        self._fn = _ParseSourceFn(options, dict(storage_options or {}), max_line_bytes)

    def expand(self, uris):
        return uris | "Redistribute" >> beam.Reshuffle() | "Parse" >> beam.ParDo(self._fn)
