"""Encoding synthetic frames as H.264 MP4 with PyAV."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction

import av
import numpy as np

from transforms.samples.sei import packet_with_sei

__all__ = ["encode_mp4", "rgb_to_yuv420p"]

_TIME_BASE = Fraction(1, 1000)


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB -> the ``(H * 3 / 2) x W`` uint8 planes of a yuv420p frame.

    BT.601 limited range in integer arithmetic (as FFmpeg's C path), done here rather than by
    libswscale at encode time so that a seed's frames are bit-identical from run to run
    (swscale's SIMD paths are not).
    """
    h, w = rgb.shape[:2]
    c = rgb.astype(np.int32)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    # Chroma from the mean colour of each 2x2 block.
    q = c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2]
    r, g, b = q[..., 0], q[..., 1], q[..., 2]  # 4x the block mean
    u = ((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128
    v = ((112 * r - 94 * g - 18 * b + 512) >> 10) + 128
    planes = [y, u.reshape(h // 4, w), v.reshape(h // 4, w)]
    return np.concatenate([np.clip(p, 0, 255).astype(np.uint8) for p in planes])


def encode_mp4(
    path: str,
    frames: Iterable[tuple[int, np.ndarray]],
    *,
    width: int,
    height: int,
    fps: float,
    gop_s: float = 1.0,
    creation_time: str | None = None,
    sei: Mapping[int, Mapping[str, int | float | bool] | bytes] | None = None,
    codec: str = "libx264",
    container_format: str = "mp4",
) -> int:
    """Encode ``(pts_ms, rgb)`` frames to an H.264 MP4 at ``path``; returns the frame count.

    A first ``pts_ms`` above zero is kept as the stream's start offset (an MP4 edit list), which
    is how the cameras of one session start a few hundred milliseconds apart. ``gop_s`` sets the
    keyframe interval; B-frames are on, as in real dashcam streams. One encoder thread and x264's
    ``cpu-independent`` mode keep the bytes identical from run to run and from machine to machine.

    ``sei``: Tesla SEI telemetry per frame, by ``pts_ms`` (``SeiMetadata`` fields), written
    before each such frame's slices as a Tesla car does (bytes: a message as it is, to make
    broken ones). ``codec``: ``libx264`` or ``libx265`` (HEVC); ``container_format``: ``mp4``,
    ``matroska`` (length-prefixed NAL units), ``mpegts``, ``h264``/``hevc`` (Annex-B).
    """
    hevc = codec == "libx265"
    count = 0
    with av.open(path, "w", format=container_format) as container:
        if creation_time:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = _TIME_BASE
        ctx = stream.codec_context
        ctx.time_base = _TIME_BASE
        ctx.gop_size = max(1, round(gop_s * fps))
        ctx.thread_count = 1
        # cpu-independent: x264 uses the same algorithms on every CPU rather than the ones it
        # picks for this one. Without it, identical frames gave different bytes now and then on
        # a busy machine (6 in ~29,000 encodes; none in ~40,000 with it; the cause is inside
        # x264's CPU-specific code, not found).
        ctx.options = (
            {
                "preset": "veryfast",
                "crf": "23",
                "bf": "2",
                "sc_threshold": "0",
                "threads": "1",
                "x264-params": "cpu-independent=1",
            }
            if not hevc
            else {
                "preset": "veryfast",
                "crf": "28",
                "x265-params": "pools=1:frame-threads=1:log-level=error",
            }
        )

        def mux(packets):
            for packet in packets:
                fields = sei.get(packet.pts) if sei else None
                if fields is not None:
                    packet = packet_with_sei(packet, fields, hevc=hevc)
                container.mux(packet)

        for pts_ms, rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")
            frame.pts, frame.time_base = pts_ms, _TIME_BASE
            mux(stream.encode(frame))
            count += 1
        mux(stream.encode())
    return count
