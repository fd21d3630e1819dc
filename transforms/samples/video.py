"""Encoding synthetic frames as H.264 MP4 with PyAV."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np

__all__ = ["encode_mp4", "rgb_to_yuv420p"]

_TIME_BASE = Fraction(1, 1000)
# BT.601, limited range: what H.264 dashcam streams carry.
_RGB_TO_YUV = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
    np.float32,
) / np.float32(255.0)
_OFFSET = np.array([16.0, 128.0, 128.0], np.float32)


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB -> the ``(H * 3 / 2) x W`` uint8 planes of a yuv420p frame.

    Done here rather than by libswscale at encode time so that a seed's frames are bit-identical
    from run to run (swscale's SIMD paths are not).
    """
    h, w = rgb.shape[:2]
    yuv = rgb.astype(np.float32) @ _RGB_TO_YUV.T + _OFFSET
    y = np.clip(np.rint(yuv[..., 0]), 0, 255).astype(np.uint8)
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    uv = np.clip(np.rint(chroma), 0, 255).astype(np.uint8)
    u = uv[..., 0].reshape(h // 4, w)
    v = uv[..., 1].reshape(h // 4, w)
    return np.concatenate([y, u, v])


def encode_mp4(
    path: str,
    frames: Iterable[tuple[int, np.ndarray]],
    *,
    width: int,
    height: int,
    fps: float,
    gop_s: float = 1.0,
    creation_time: str | None = None,
) -> int:
    """Encode ``(pts_ms, rgb)`` frames to an H.264 MP4 at ``path``; returns the frame count.

    A first ``pts_ms`` above zero is kept as the stream's start offset (an MP4 edit list), which
    is how the cameras of one session start a few hundred milliseconds apart. ``gop_s`` sets the
    keyframe interval; B-frames are on, as in real dashcam streams. One encoder thread keeps the
    bytes identical from run to run.
    """
    count = 0
    with av.open(path, "w", format="mp4") as container:
        if creation_time:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = _TIME_BASE
        ctx = stream.codec_context
        ctx.time_base = _TIME_BASE
        ctx.gop_size = max(1, round(gop_s * fps))
        ctx.thread_count = 1
        ctx.options = {
            "preset": "veryfast",
            "crf": "23",
            "bf": "2",
            "sc_threshold": "0",
            "threads": "1",
        }
        for pts_ms, rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")
            frame.pts, frame.time_base = pts_ms, _TIME_BASE
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    return count
