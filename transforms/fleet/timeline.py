"""Where a camera file's time 0 lies, by container: the rules that make frame times wall-clock.

* MP4/MOV, Matroska/WebM, AVI: the timeline starts at 0 by definition; FFmpeg applies an MP4
  edit list (a leading empty edit delays the video, a trimmed start hides frames, which it
  flags as discarded), so a frame's presentation time is its offset from the file's start.
* MPEG-TS: timestamps are a free-running 90 kHz clock that starts anywhere (FFmpeg's muxer
  starts at 1.4 s, recorders at their uptime): the file starts at its earliest stream's start.
* Raw H.264/HEVC: no timestamps at all. Frames are numbered in display order and spaced by the
  frame rate: ``--raw-fps`` when given, else the rate the stream declares (the timing info of
  its SPS/VPS), else the file is rejected ``no_frame_rate``.
"""

from __future__ import annotations

from fractions import Fraction

from transforms.fleet.video_error import VideoError

__all__ = ["MAX_RAW_FPS", "RAW_FORMATS", "origin_pts", "raw_rate"]

RAW_FORMATS = ("h264", "hevc")
# A declared rate above this is a clock tick, not a frame rate: FFmpeg's libx264 writes the
# encoder's time base there (1000 for a millisecond clock).
MAX_RAW_FPS = 240.0


def origin_pts(fmt: str, container_start_us: int | None, time_base: Fraction) -> int:
    """The pts (in ``time_base``) at the file's time 0: the start of an MPEG-TS, else 0."""
    if fmt != "mpegts" or container_start_us is None:
        return 0
    return round(Fraction(container_start_us, 1_000_000) / time_base)


def raw_rate(fmt: str, declared: Fraction | None, raw_fps: float | None) -> float:
    """Frames per second of a raw stream: ``raw_fps`` if given, else the declared rate."""
    if raw_fps:
        return float(raw_fps)
    name = {"h264": "H.264", "hevc": "HEVC"}[fmt]
    if not declared:
        raise VideoError(
            "no_frame_rate",
            f"a raw {name} stream without timing info declares no frame rate: give --raw-fps",
        )
    if not 0 < declared <= MAX_RAW_FPS:
        raise VideoError(
            "no_frame_rate",
            f"a raw {name} stream declaring {float(declared):g} fps (a clock rate, not a frame "
            f"rate, above {MAX_RAW_FPS:g}): give --raw-fps",
        )
    return float(declared)
