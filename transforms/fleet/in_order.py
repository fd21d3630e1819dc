"""``InOrderDecoder``: a raw H.264/HEVC stream decoded front to back, its frames numbered.

A raw stream carries no timestamps and no index, so nothing in it can be sought by time:
frame ``n`` is the ``n``-th frame the decoder gives back (decoders give frames in display
order, B-frames reordered). So every frame is decoded -- skipping non-reference frames would
lose the count -- and going back restarts at byte 0, which the windows, asked in order, never
need but for a frame the last request already passed.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from transforms.fleet.video_error import VideoError

__all__ = ["InOrderDecoder"]


class InOrderDecoder:
    """Decodes ``stream`` of ``container`` in order; frame numbers are display positions.

    Args:
        container / stream: the open raw stream (PyAV).
        scaler: the file's libswscale context.
        fps: the frame rate the stream is read at (for the times in errors).
    """

    def __init__(self, container, stream, scaler: VideoReformatter, fps: float):
        self._container, self._stream, self._scaler, self._fps = container, stream, scaler, fps
        self._iter = None
        self._next = 0  # number of the next frame the decoder gives back
        # The frames the last packet gave back, unconverted: a frame asked for again (two
        # windows' samples nearest the same frame) is had without starting over.
        self._held: dict[int, av.VideoFrame] = {}

    def decode(self, wanted: list[int], size: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(n, rgb)`` for each wanted frame number the stream holds, resized."""
        pending = sorted(set(wanted))
        while pending and pending[0] in self._held:
            n = pending.pop(0)
            yield n, self._rgb(self._held[n], size)
        if not pending:
            return
        if self._iter is None or pending[0] < self._next:
            self._restart()
        try:
            for packet in self._iter:
                frames = packet.decode()
                if not frames:
                    continue
                self._held = {}
                for frame in frames:  # all of them: the count must not skip one
                    n = self._next
                    self._next += 1
                    self._held[n] = frame
                    if pending and n == pending[0]:
                        pending.pop(0)
                        yield n, self._rgb(frame, size)
                if not pending:
                    return
            self._iter = None  # end of stream: what was not found does not exist
        except (av.error.FFmpegError, ValueError) as exc:
            self._iter = None
            raise VideoError(
                "decode_error", f"{type(exc).__name__}: {exc}", at_s=self._next / self._fps
            ) from None

    def _rgb(self, frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
        width, height = size
        rgb = self._scaler.reformat(
            frame, width=width, height=height, format="rgb24", interpolation="AREA", threads=1
        )
        return rgb.to_ndarray()

    def _restart(self) -> None:
        # No timestamps to seek by: back to the first byte, the decoder emptied.
        self._container.seek(0, unsupported_byte_offset=True)
        self._stream.codec_context.flush_buffers()
        self._iter = self._container.demux(self._stream)
        self._next = 0
        self._held = {}
