"""Reading a source line by line, whatever its compression, never a whole file or line in memory."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

# Re-exported: readers open a source and read its lines in one breath.
from transforms.posts.decompress import open_decompressed

__all__ = ["Line", "open_decompressed", "read_lines"]

_BLOCK = 1 << 20
_KEEP = 64 * 1024  # of an over-long line, this much is kept for the reject's payload


class Line:
    """One line: its 1-based number and bytes (without ``\\n``); ``too_long`` lines keep only
    their first 64 KiB, with ``length`` the full length. ``utf8``: the bytes are known to be
    valid UTF-8 (False: not checked)."""

    __slots__ = ("data", "length", "number", "too_long", "utf8")

    def __init__(self, number: int, data: bytes, length: int, too_long: bool, utf8: bool = False):
        self.number, self.data, self.length, self.too_long = number, data, length, too_long
        self.utf8 = utf8


def valid_utf8(data: bytes | memoryview) -> bool:
    """Whether ``data`` is valid UTF-8, as strictly as ``bytes.decode`` checks it (no overlong
    forms, no surrogates), checked by Arrow at memory speed without making a ``str``."""
    # An array of one value viewing ``data`` where it is: pa.array would first copy it.
    offsets = pa.py_buffer(struct.pack("<qq", 0, len(data)))
    one = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        one.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def read_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[Line]:
    """Yield every line of ``stream``; a line longer than ``max_line_bytes`` is cut short and
    flagged, and its remainder is skipped without ever being held in memory.

    The lines that lie whole within one read block are checked for valid UTF-8 together, once
    per block (``Line.utf8``): a newline is never part of a multi-byte character, so a valid
    block means valid lines."""
    number = 0
    # A bytearray grows in place: a long line arriving in small blocks (gzip hands over ~14 KiB
    # at a time) costs its length, not its length times the number of blocks.
    pending = bytearray()
    skipping: Line | None = None
    # read1 hands over what one read decoded, so a stream that breaks off (a truncated gzip)
    # still yields every complete line before the break.
    read = getattr(stream, "read1", stream.read)
    while True:
        block = read(_BLOCK)
        if not block:
            break
        start = 0
        # The lines that begin in this block (not the end of a line begun in the last one).
        first = block.find(b"\n") + 1 if pending or skipping is not None else 0
        last = block.rfind(b"\n")
        utf8 = last > first and valid_utf8(memoryview(block)[first:last])
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
                if pending:
                    pending += block[start:end]
                    data = bytes(pending)
                    pending.clear()
                    yield _line(number, data, max_line_bytes)
                else:
                    yield _line(number, block[start:end], max_line_bytes, utf8)
            start = end + 1
        tail = block[start:]
        if skipping is not None:
            skipping.length += len(tail)
        elif len(pending) + len(tail) > max_line_bytes + 1:  # +1: a trailing "\r" does not count
            length = len(pending) + len(tail)
            pending += tail[:_KEEP]  # no more than the payload keeps
            skipping = Line(0, bytes(pending[:_KEEP]), length, True)
            pending = bytearray()
        else:
            pending += tail
    if skipping is not None:
        skipping.number = number + 1
        yield skipping
    elif pending:
        yield _line(number + 1, bytes(pending), max_line_bytes)


def _line(number: int, data: bytes, limit: int, utf8: bool = False) -> Line:
    if data.endswith(b"\r"):
        data = data[:-1]
    if len(data) > limit:
        return Line(number, data[:_KEEP], len(data), True)
    return Line(number, data, len(data), False, utf8)
