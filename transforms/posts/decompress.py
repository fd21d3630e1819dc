"""Opening a source through a gzip or zstd decoder, with limits against compression bombs and a
check that a zstd stream does not end inside a frame."""

from __future__ import annotations

import gzip
import io
from typing import BinaryIO

import zstandard

__all__ = ["MAX_EXPANSION", "DecompressedTooLarge", "open_decompressed"]

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_BLOCK = 1 << 20
# Real post streams expand 7-18:1 (gzip -9 and zstd -19 --long on the sample generator's pages,
# stream and twarc files); deflate cannot pass ~1032:1, so a limit that is to catch gzip bombs
# must sit well below that. 200:1 leaves ten times the headroom of the most compressible source.
# Synthetic files come closer: one post repeated with counting ids expands 107:1 (zstd -3) and
# 135:1 (zstd -19); one line repeated verbatim needs a higher limit or none.
MAX_EXPANSION = 200.0
# Below this much output the ratio is not checked: a small file of blank or repeated lines may
# expand far more than 200:1, and 16 MiB costs nothing to read.
_GRACE = 16 << 20


class DecompressedTooLarge(Exception):
    """A compressed source expands past a limit of ``open_decompressed``: a compression bomb,
    or a file to read with a higher limit. Nothing after the point it was noticed is read."""

    reason = "decompressed_too_large"


def open_decompressed(
    raw: BinaryIO,
    *,
    max_decompressed_bytes: int | None = None,
    max_expansion: float | None = MAX_EXPANSION,
) -> BinaryIO:
    """Wrap ``raw`` in a gzip or zstd decoder if its first bytes say it is compressed.

    The magic bytes decide, not the file name, so a ``.jsonl`` that is really gzip still reads.
    Decoding streams (memory stays at one block), but a bomb would still cost time and fill the
    dataset with rejects, so the decoder raises ``DecompressedTooLarge`` before handing over the
    block that passes either limit; a plain file is never limited (it costs what it weighs). A
    stream cut short raises ``EOFError`` after its last whole block, for zstd as for gzip.

    Args:
        max_decompressed_bytes: most bytes one file may decompress to (``None``: no cap). An
            absolute cap would also stop legitimate multi-GiB archives, so it is off unless set.
        max_expansion: most decompressed bytes per compressed byte the decoder has pulled
            (default 200; it reads ahead up to 128 KiB), checked once 16 MiB came out; ``None``
            turns it off. It keeps the work of reading a file proportional to its size.
    """
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, _BLOCK)
    head = buffered.peek(4)[:4]
    if head.startswith(_GZIP):
        counted = _Counted(buffered, None)
        decoder = gzip.GzipFile(fileobj=counted, mode="rb")
    elif head.startswith(_ZSTD) or _skippable(head):
        counted = _Counted(buffered, _ZstdFrames())
        decoder = zstandard.ZstdDecompressor().stream_reader(counted, read_across_frames=True)
    else:
        return buffered
    return _Decoded(decoder, counted, max_decompressed_bytes, max_expansion)


def _skippable(magic: bytes) -> bool:
    """A zstd skippable frame (pzstd starts its files with one): 0x184D2A50-0x184D2A5F."""
    return len(magic) == 4 and magic[1:] == b"\x2a\x4d\x18" and magic[0] & 0xF0 == 0x50


class _Counted:
    """The compressed side of a decoder: counts the bytes it pulled (and shows them to a
    ``_ZstdFrames``)."""

    def __init__(self, raw: BinaryIO, frames: _ZstdFrames | None):
        self._raw = raw
        self.frames = frames
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        if self.frames is not None:
            self.frames.feed(data)
        return data

    def close(self) -> None:
        self._raw.close()


class _Decoded:
    """The decompressed side: checks the limits on every block handed over, and at the end that
    a zstd stream ended between frames."""

    def __init__(self, decoder, counted: _Counted, max_bytes: int | None, ratio: float | None):
        self._decoder, self._counted = decoder, counted
        self._max_bytes, self._ratio = max_bytes, ratio
        self.count = 0

    def read1(self, size: int = -1) -> bytes:
        return self._check(self._decoder.read1(size))

    def read(self, size: int = -1) -> bytes:
        return self._check(self._decoder.read(size))

    def close(self) -> None:
        self._decoder.close()

    def _check(self, block: bytes) -> bytes:
        if not block:
            frames = self._counted.frames
            if frames is not None and not frames.complete:
                # python-zstandard's reader ends quietly where the input ends, even mid-frame.
                raise EOFError("zstd stream ended inside a frame: the file is cut short")
            return block
        self.count += len(block)
        if self._max_bytes is not None and self.count > self._max_bytes:
            raise DecompressedTooLarge(
                f"decompressed past {self._max_bytes} bytes (max_decompressed_bytes) "
                f"from {self._counted.count} compressed bytes"
            )
        if (
            self._ratio is not None
            and self.count > _GRACE
            and self.count > self._ratio * self._counted.count
        ):
            raise DecompressedTooLarge(
                f"{self.count} bytes decompressed from {self._counted.count} compressed bytes, "
                f"more than {self._ratio:g}:1 (max_expansion)"
            )
        return block


class _ZstdFrames:
    """Follows the frame and block headers of a zstd stream (RFC 8878) as its bytes go by, to
    tell a stream that ends between frames from one cut inside a frame. Anything it does not
    know (legacy frames, trailing junk) is left to the decoder to judge."""

    def __init__(self):
        self.state = "magic"  # the header expected next: magic, skippable, descriptor, block
        self._header = b""  # the bytes of that header seen so far
        self._need = 4  # its length
        self._skip = 0  # bytes of content to pass over first
        self._checksum = False

    @property
    def complete(self) -> bool:
        return self.state == "unknown" or (
            self.state == "magic" and not self._header and not self._skip
        )

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data) and self.state != "unknown":
            if self._skip:
                n = min(self._skip, len(data) - pos)
                self._skip -= n
                pos += n
                continue
            take = self._need - len(self._header)
            self._header += data[pos : pos + take]
            pos += take
            if len(self._header) == self._need:
                header, self._header = self._header, b""
                self._advance(header)

    def _advance(self, h: bytes) -> None:
        if self.state == "magic":
            if h == _ZSTD:
                self.state, self._need = "descriptor", 1
            elif _skippable(h):
                self.state, self._need = "skippable", 4
            else:
                self.state = "unknown"
        elif self.state == "skippable":
            self._skip = int.from_bytes(h, "little")
            self.state, self._need = "magic", 4
        elif self.state == "descriptor":
            d = h[0]
            single_segment = d >> 5 & 1
            content_size = (single_segment, 2, 4, 8)[d >> 6]
            self._checksum = bool(d >> 2 & 1)
            self._skip = (1 - single_segment) + (0, 1, 2, 4)[d & 3] + content_size
            self.state, self._need = "block", 3
        else:  # a block header: last-block bit, type (raw, RLE, compressed), size
            v = int.from_bytes(h, "little")
            self._skip = 1 if (v >> 1 & 3) == 1 else v >> 3
            if v & 1:
                self._skip += 4 if self._checksum else 0
                self.state, self._need = "magic", 4
