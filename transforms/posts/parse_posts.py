"""``ParsePosts``: source files -> chunks of parsed posts, delete events, rejects and counts."""

from __future__ import annotations

import gc
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow as pa
import zstandard

from transforms.posts.compliance import Event
from transforms.posts.decompress import MAX_EXPANSION, DecompressedTooLarge, open_decompressed
from transforms.posts.lines import read_lines
from transforms.posts.parse import Chunk, ParseOptions, parse_line, parse_user_compliance_line
from transforms.posts.repeats import SeenPosts
from transforms.posts.rows import values_to_table
from transforms.progress import ProgressTarget, Reporter

__all__ = ["USER_IDS", "ParsePosts", "ParsedChunk", "parse_source"]

# What the ids of a batch compliance file are: the default (post ids) needs no mark, a user
# compliance file is the element ``(uri, USER_IDS)``.
USER_IDS = "users"

# zlib.error: a gzip whose deflate data is corrupt (not an OSError, unlike a bad header).
_READ_ERRORS = (OSError, EOFError, zlib.error, zstandard.ZstdError)


@dataclass
class ParsedChunk:
    """A few thousand lines of one source, parsed: the unit that flows through the pipeline."""

    posts: pa.Table
    deletes: list[str]
    rejects: list[dict]
    tally: dict[str, int]
    events: list[Event] = field(default_factory=list)


def _finish(chunk: Chunk) -> ParsedChunk:
    return ParsedChunk(
        values_to_table(chunk.values),
        chunk.deletes,
        chunk.rejects,
        dict(chunk.counts),
        chunk.events,
    )


class _CollectorPause:
    """The cyclic garbage collector off while a chunk is parsed, back on (if it was on) before
    the chunk is handed over. Parsing makes no reference cycles, but the tens of thousands of
    containers a chunk's rows hold set off full collections of the whole heap, which found
    nothing and took a sixth of the parse time."""

    def __init__(self):
        self._paused = False

    def pause(self) -> None:
        self._paused = gc.isenabled()
        gc.disable()

    def resume(self) -> None:
        if self._paused:
            gc.enable()
            self._paused = False


def parse_source(
    stream,
    uri: str,
    options: ParseOptions,
    *,
    max_line_bytes: int,
    chunk_records: int = 10_000,
    chunk_bytes: int = 32 << 20,
    max_decompressed_bytes: int | None = None,
    max_expansion: float | None = MAX_EXPANSION,
    drop_repeats: bool = False,
    user_ids: bool = False,
):
    """Parse an open (possibly compressed) source, yielding a ``ParsedChunk`` every
    ``chunk_records`` records or ``chunk_bytes`` bytes of lines (and one at the end), so a chunk
    of long posts stays as small as one of short ones.

    A file that breaks off (a truncated gzip, a read error) keeps every line read before the
    break; the break itself is one ``read_error`` reject at the line where it happened. A
    compressed file that expands past ``max_decompressed_bytes`` or ``max_expansion`` (see
    ``open_decompressed``) likewise ends in one ``decompressed_too_large`` reject.

    With ``drop_repeats``, later rows of a post that resolving is sure to drop are counted
    ``deduplicated:post_id`` instead of yielded (``transforms.posts.repeats``): the pipeline's
    output is the same, with less to convert, stage and resolve.

    With ``user_ids``, the source is a user batch compliance file: every line is a compliance
    event whose ids are user ids (``parse_user_compliance_line``).
    """
    seen = SeenPosts() if drop_repeats else None
    chunk = Chunk(uri, seen=seen)
    number = 0
    size = 0
    limits = {"max_decompressed_bytes": max_decompressed_bytes, "max_expansion": max_expansion}
    collector = _CollectorPause()
    collector.pause()
    try:
        for line in read_lines(open_decompressed(stream, **limits), max_line_bytes):
            number = line.number
            size += len(line.data)
            if line.too_long:
                chunk.reject(
                    f"line {line.number}",
                    "line_too_long",
                    f"{line.length} bytes, more than --max-line-bytes {max_line_bytes}",
                    line.data,
                )
            elif user_ids:
                parse_user_compliance_line(line.data, line.number, chunk, options)
            else:
                parse_line(line.data, line.number, chunk, options, utf8=line.utf8)
            if chunk.counts["records_in"] >= chunk_records or size >= chunk_bytes:
                finished = _finish(chunk)
                # The next chunk before the collector resumes: this one's rows are freed now
                # instead of being traversed by every collection while the caller works.
                chunk = Chunk(uri, seen=seen)
                size = 0
                collector.resume()
                yield finished
                collector.pause()
    except DecompressedTooLarge as exc:
        message = f"{uri}: {exc}; the rest of the file is not read"
        chunk.reject(f"line {number + 1}", exc.reason, message, b"")
    except _READ_ERRORS as exc:
        chunk.reject(f"line {number + 1}", "read_error", f"{type(exc).__name__}: {exc}", b"")
    finally:
        collector.resume()
    if chunk.counts:
        yield _finish(chunk)


class _ParseSourceFn(beam.DoFn):
    def __init__(self, options, storage_options, limits, progress):
        self._options = options
        self._storage_options = storage_options
        self._limits = limits  # max_line_bytes and the decompression limits
        self._progress = progress

    def setup(self):
        self._reporter = Reporter(self._progress)

    def teardown(self):
        self._reporter.close()

    def process(self, element):
        uri, ids = (element, None) if isinstance(element, str) else element
        reporter = self._reporter
        reporter.start(uri)
        try:
            with fsspec.open(uri, "rb", **self._storage_options) as raw:
                read = 0
                for chunk in parse_source(
                    raw,
                    uri,
                    self._options,
                    drop_repeats=True,
                    user_ids=ids == USER_IDS,
                    **self._limits,
                ):
                    # Bytes of the file itself (compressed, as the plan counts them): where the
                    # reader is in it. Once per chunk of thousands of lines.
                    at = _position(raw, read)
                    records = chunk.tally.get("records_in", 0)
                    reporter.add(uri, bytes=at - read, records=records)
                    read = at
                    yield chunk
        except (OSError, EOFError, ValueError, zstandard.ZstdError) as exc:
            # A file that breaks off (truncated gzip, unreadable) keeps what was read before;
            # the break itself is one reject naming the file.
            chunk = Chunk(uri)
            chunk.reject("file", "read_error", f"{type(exc).__name__}: {exc}", b"")
            yield _finish(chunk)
        reporter.done(uri)


def _position(raw, default: int) -> int:
    try:
        return raw.tell()
    except (OSError, ValueError):
        return default  # a stream that cannot tell: the source counts whole when it is done


class ParsePosts(beam.PTransform):
    """Parse post-stream sources (URIs) into ``ParsedChunk`` elements.

    An element ``(uri, USER_IDS)`` is a user batch compliance file (ids are user ids).

    Each source is read line by line (plain, gzip or zstd, detected from its first bytes);
    every line is parsed on its own, so one bad line costs one reject.

    Args:
        options: what parsing keeps (``ParseOptions``).
        storage_options: fsspec options for the sources.
        max_line_bytes: longer lines are rejected (``line_too_long``) without being loaded.
        max_decompressed_bytes: a compressed source decompressing to more bytes ends in a
            ``decompressed_too_large`` reject (default ``None``: no absolute cap).
        max_expansion: likewise for one expanding more than this many times its compressed
            size once 16 MiB came out (default 200; ``None``: off). See ``open_decompressed``.
        progress: where to report the bytes and records read, per source (default: nowhere;
            see ``transforms.progress``).

    Example::

        with beam.Pipeline() as p:
            chunks = p | beam.Create(["in/posts.jsonl.zst"]) | ParsePosts(ParseOptions())
    """

    def __init__(
        self,
        options: ParseOptions,
        *,
        storage_options: Mapping[str, Any] | None = None,
        max_line_bytes: int = 16 << 20,
        max_decompressed_bytes: int | None = None,
        max_expansion: float | None = MAX_EXPANSION,
        progress: ProgressTarget | None = None,
    ):
        super().__init__()
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes={max_line_bytes}: expected a positive size")
        if max_decompressed_bytes is not None and max_decompressed_bytes < 1:
            raise ValueError(
                f"max_decompressed_bytes={max_decompressed_bytes}: expected a positive size or None"
            )
        if max_expansion is not None and not max_expansion >= 1:
            raise ValueError(f"max_expansion={max_expansion}: expected a ratio >= 1 or None")
        limits = {
            "max_line_bytes": max_line_bytes,
            "max_decompressed_bytes": max_decompressed_bytes,
            "max_expansion": max_expansion,
        }
        self._fn = _ParseSourceFn(options, dict(storage_options or {}), limits, progress)

    def expand(self, uris):
        return uris | "Redistribute" >> beam.Reshuffle() | "Parse" >> beam.ParDo(self._fn)
