"""Reading a source line by line, whatever its compression, never a whole file or line in memory."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

__all__ = ["Line", "open_decompressed", "read_lines"]

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_BLOCK = 1 << 20
_KEEP = 64 * 1024  # of an over-long line, this much is kept for the reject's payload


class Line:
    """One line: its 1-based number and bytes (without ``\\n``); ``too_long`` lines keep only
    their first 64 KiB, with ``length`` the full length."""

    __slots__ = ("data", "length", "number", "too_long")

    def __init__(self, number: int, data: bytes, length: int, too_long: bool):
        self.number, self.data, self.length, self.too_long = number, data, length, too_long


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """Wrap ``raw`` in a gzip or zstd decoder if its first bytes say it is compressed.

    The magic bytes decide, not the file name, so a ``.jsonl`` that is really gzip still reads.
    """
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, _BLOCK)
    head = buffered.peek(4)[:4]
    if head.startswith(_GZIP):
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    if head.startswith(_ZSTD):
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


def read_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[Line]:
    """Yield every line of ``stream``; a line longer than ``max_line_bytes`` is cut short and
    flagged, and its remainder is skipped without ever being held in memory."""
    number = 0
    pending = b""
    skipping: Line | None = None
    # read1 hands over what one read decoded, so a stream that breaks off (a truncated gzip)
    # still yields every complete line before the break.
    read = getattr(stream, "read1", stream.read)
    while True:
        block = read(_BLOCK)
        if not block:
            break
        start = 0
        while True:
            end = block.find(b"\n", start)
            if end < 0:
                break
            number += 1
            if skipping is not None:
                skipping.length += end - start
                skipping.number = number
                yield skipping
                skipping = None
            else:
                data = pending + block[start:end] if pending else block[start:end]
                pending = b""
                yield _line(number, data, max_line_bytes)
            start = end + 1
        tail = block[start:]
        if skipping is not None:
            skipping.length += len(tail)
        elif len(pending) + len(tail) > max_line_bytes:
            whole = pending + tail
            skipping = Line(0, whole[:_KEEP], len(whole), True)
            pending = b""
        else:
            pending += tail
    if skipping is not None:
        skipping.number = number + 1
        yield skipping
    elif pending:
        yield _line(number + 1, pending, max_line_bytes)


def _line(number: int, data: bytes, limit: int) -> Line:
    if data.endswith(b"\r"):
        data = data[:-1]
    if len(data) > limit:
        return Line(number, data[:_KEEP], len(data), True)
    return Line(number, data, len(data), False)
