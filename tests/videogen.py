"""Camera clips made inside tests: any codec and container PyAV can write, frames that show
their own time (``read_clock``), optional blur, variable frame rate, faststart."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from transforms.samples.scene import Scene
from transforms.samples.video import rgb_to_yuv420p


def encode_clip(
    path,
    pts_ms,
    *,
    fmt="mp4",
    codec="libx264",
    size=(160, 120),
    fps=10,
    creation_time=None,
    camera="front",
    blur=False,
    faststart=False,
):
    """Encode frames at ``pts_ms`` (ms since the session start, also drawn as the clock)."""
    w, h = size
    scene = Scene(w, h, camera, np.random.default_rng(1))
    frame_based = fmt == "avi"  # AVI knows only a constant frame rate
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as out:
        if creation_time:
            out.metadata["creation_time"] = creation_time
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        tb = Fraction(1, fps) if frame_based else Fraction(1, 1000)
        stream.time_base = tb
        stream.codec_context.time_base = tb
        stream.codec_context.gop_size = fps
        for ms in pts_ms:
            rgb = scene.frame(ms, ms / 100.0, 0.0, ms / 1000)
            if blur:  # 4x4 box blur, the clock band kept sharp so the time still reads
                band = h // 6
                body = rgb[band:].astype(np.float32)
                k = 4
                hh, ww = (body.shape[0] // k) * k, (w // k) * k
                small = body[:hh, :ww].reshape(hh // k, k, ww // k, k, 3).mean(axis=(1, 3))
                rgb[band : band + hh, :ww] = np.repeat(np.repeat(small, k, 0), k, 1).astype(
                    np.uint8
                )
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")
            frame.pts = round(ms * fps / 1000) if frame_based else ms
            frame.time_base = tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
