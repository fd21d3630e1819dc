"""Opening camera files safely, indexing their frames, and decoding only the frames asked for.

Inputs are opened only through fsspec file objects, with the demuxer chosen from the file's own
first bytes out of an allow-list (MP4/MOV, Matroska/WebM, AVI, MPEG-TS, raw H.264/HEVC). A
playlist, a concat list or anything else is refused before FFmpeg sees it, so no input can make
the decoder open another file or URL. Frame times count from the file's start as each
container defines it (``timeline``); a raw stream has none and is decoded in order
(``InOrderDecoder``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from transforms.fleet.discover import NotARegularFile, open_source
from transforms.fleet.in_order import InOrderDecoder
from transforms.fleet.sei import SeiError, decode_metadata, length_size, packet_sei
from transforms.fleet.timeline import RAW_FORMATS, origin_pts, raw_rate
from transforms.fleet.video_error import VideoError

__all__ = ["CameraFile", "FrameAt", "VideoError", "sniff_format"]

_MAX_PIXELS = 8192 * 8192  # refuse absurd headers before any frame is allocated
# Frames of one file further apart than this are a broken clock or index, not a recording: the
# file is cut there (its longest steady run is kept).
_MAX_JUMP_S = 60.0
_MAX_OFFSET_S = 2.0**31  # 68 years after the file's start: no recording, and far from overflow


def sniff_format(head: bytes) -> str | None:
    """The allowed demuxer for a file starting with ``head``, or None."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "mpegts"
    if head.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")):
        nal = head[4] if head.startswith(b"\x00\x00\x00\x01") else head[3]
        return "hevc" if (nal >> 1) & 0x3F in (32, 33, 34) else "h264"
    return None


@dataclass
class FrameAt:
    """A decoded frame: its presentation time (µs, wall clock) and RGB pixels at output size."""

    ts_us: int
    rgb: np.ndarray


class CameraFile:
    """One camera file, open for the whole session: probe, frame index, sparse decoding.

    Args:
        url: the file (any fsspec URL).
        storage_options: fsspec options.
        fallback_start_us: wall-clock time (µs, UTC) of presentation time 0, used when the
            file's own ``creation_time`` is missing.
        raw_fps: frame rate of a raw H.264/HEVC stream; None: the rate it declares
            (``timeline.raw_rate``).

    ``problems`` lists where the file breaks off, is cut short or its clock jumps: each is a
    reject, and the frames kept still count. ``sei`` holds the Tesla SEI telemetry of the
    frames kept, ``(frame_ts_us, fields)`` in time order (``transforms.fleet.sei``), read from
    the packets indexing demuxes anyway; ``sei_invalid`` the SEI messages that could not be
    read, ``(frame number, seconds from the file's start, message)`` -- their frames count.
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any],
        fallback_start_us: int,
        *,
        raw_fps: float | None = None,
    ):
        self.url = url
        try:
            self._file = open_source(url, storage_options)
        except NotARegularFile as exc:
            raise VideoError("not_a_file", str(exc)) from None
        head = self._file.read(512)
        if not head:
            self._file.close()
            raise VideoError("empty_file", "the file is empty")
        fmt = sniff_format(head)
        if fmt is None:
            self._file.close()
            raise VideoError(
                "unsupported_container",
                f"not an allowed video container (starts with {head[:16]!r})",
            )
        declared_end = _matroska_end(head) if fmt == "matroska" else None
        size = getattr(self._file, "size", None)  # fsspec files know theirs
        self._file.seek(0)
        # max_pixels reaches the decoder that probes the stream while opening: a header that
        # declares a huge picture fails there, before a frame buffer is allocated.
        limits = {"max_pixels": str(_MAX_PIXELS)}
        try:
            self._container = av.open(
                self._file, format=fmt, options={"enable_drefs": "0", **limits}
            )
            streams = self._container.streams.video
            if not streams:
                raise VideoError("no_video_stream", "the container has no video stream")
            self._stream = streams[0]
            ctx = self._stream.codec_context
            if ctx is None or ctx.codec is None:
                raise VideoError("unsupported_codec", "no decoder for the video stream's codec")
            if ctx.width * ctx.height > _MAX_PIXELS:
                raise VideoError("frame_too_large", f"declared size {ctx.width}x{ctx.height}")
            ctx.thread_count = 1
            ctx.options = limits  # and a new size in mid-stream fails the same way
            self.codec = ctx.name
            self.width, self.height = ctx.width, ctx.height
            self._raw = fmt in RAW_FORMATS
            if self._raw:  # no timestamps: frames are numbered, 1/fps apart (once counted)
                self._rate_of = (fmt, ctx.framerate, raw_fps)
                self.fps, self._tb, self._origin = 0.0, 1.0, 0
            else:
                rate = self._stream.average_rate or self._stream.guessed_rate
                self.fps = float(rate) if rate else 0.0
                self._tb = float(self._stream.time_base)
                self._origin = origin_pts(fmt, self._container.start_time, self._stream.time_base)
            # FFmpeg seeks an MPEG-TS by decoding time, to whichever packet is there, not to a
            # keyframe's presentation time: it is sought at its keyframes' decoding times.
            self._key_dts: dict[int, int] | None = {} if fmt == "mpegts" else None
            self.start_us = _creation_us(self._container.metadata) or fallback_start_us
            self._index()
            if declared_end and size and declared_end > size and not self.problems:
                self.problems.append(
                    VideoError(
                        "truncated",
                        f"the file ends at byte {size}, its Segment at byte {declared_end}",
                        at_s=float((self.pts[-1] - self._origin) * self._tb),
                    )
                )
        except VideoError:
            self.close()
            raise
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            self.close()
            raise VideoError("open_error", f"{type(exc).__name__}: {exc}") from None

    def _index(self) -> None:
        """Demux (no decoding) to list every frame's pts and the keyframes."""
        pts, keys, corrupt = [], [], []
        # Frames before an MP4 edit list's start: decoded (others refer to them), never shown.
        hidden, hidden_keys = 0, []
        o, tb = self._origin, self._tb
        # Where the file breaks off or its clock jumps: the frames kept still count.
        self.problems: list[VideoError] = []
        self._sei_setup()
        try:
            if self._raw:
                self._number_frames(pts)
                keys = pts
            else:
                for packet in self._container.demux(self._stream):
                    if packet.pts is None or packet.size == 0:
                        continue
                    if packet.is_discard:
                        hidden += 1
                        if packet.is_keyframe:
                            hidden_keys.append(packet.pts)
                        continue
                    if packet.is_corrupt:  # cut short by the end of the file, or damaged
                        corrupt.append((packet.pts - o) * tb)
                        continue
                    pts.append(packet.pts)
                    if self._sei_codec is not None:
                        self._read_sei(packet, packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
                        if self._key_dts is not None and packet.dts is not None:
                            self._key_dts[packet.pts] = packet.dts
        except (av.error.FFmpegError, ValueError) as exc:
            at = (max(pts) - o) * tb if pts else 0.0
            self.problems.append(
                VideoError("decode_error", f"{type(exc).__name__}: {exc}", at_s=at)
            )
        declared = self._stream.frames
        if not self.problems and declared and len(pts) + hidden < declared:
            self.problems.append(
                VideoError(
                    "truncated",
                    f"{declared} frames declared, the data ends after {len(pts) + hidden}",
                    at_s=(max(pts, default=o) - o) * tb,
                )
            )
        if corrupt and not self.problems:
            self.problems.append(
                VideoError(
                    "corrupt_frames",
                    f"{len(corrupt)} frames with cut or damaged data left out, the first at "
                    f"{min(corrupt):.3f}s",
                    at_s=min(corrupt),
                )
            )
        if not pts and self.problems:
            raise self.problems[0]
        if not pts:
            raise VideoError("no_frames", "no video frames in the file")
        if self._raw:
            if not self.width:  # its packets are whatever lies between start codes
                raise VideoError("no_frames", "no video frames in the file (no SPS)")
            self.fps = raw_rate(*self._rate_of)
            self._tb = tb = 1.0 / self.fps
            for p in self.problems:  # counted in frames until the rate was known
                p.at_s = p.at_s * tb if p.at_s is not None else None
        self.pts = self._steady(np.array(pts, dtype=np.int64))
        kept = set(self.pts.tolist())
        self.keyframes = self._seek_points(keys, kept, hidden_keys)
        # Time 0 of the file (``origin_pts``) is its wall-clock start.
        self.frame_ts_us = self.start_us + np.round((self.pts - o) * tb * 1e6).astype(np.int64)
        self._sei_on_timeline()
        gaps = np.diff(self.pts)
        step = np.median(gaps) if len(gaps) else 0
        # Frames missing from the stream: a gap of more than 1.5 frame durations.
        self.gap_frames = (np.round(gaps / step).astype(np.int64) - 1).clip(0) if step else gaps * 0
        if not self.fps and step:
            self.fps = 1.0 / (step * self._tb)
        self.keyframe_interval_s = (
            float(np.median(np.diff(self.keyframes))) * self._tb
            if len(self.keyframes) > 1
            else None
        )
        # One scaler for the file: VideoFrame.reformat sets up a new swscale context for every
        # frame, with a pool of threads (threads=0), which cost several times the scaling
        # itself. Same filter, same output bytes; the cameras' own threads use the cores.
        self._scaler = VideoReformatter()
        self._position = None  # pts of the last packet fed to the decoder
        self._last_out = -(2**62)  # pts of the last frame it gave back (display order)
        self._iter = None
        self._in_order = (
            InOrderDecoder(self._container, self._stream, self._scaler, self.fps)
            if self._raw
            else None
        )

    def _number_frames(self, numbers: list[int]) -> None:
        """Number a raw stream's frames into ``numbers``: one per packet, in display order
        (``InOrderDecoder``). All count as keyframes: the stream is decoded in order, any
        frame is as cheap to reach as any other."""
        for packet in self._container.demux(self._stream):
            if packet.size:
                if self._sei_codec is not None:
                    self._read_sei(packet, len(numbers))
                numbers.append(len(numbers))

    def _sei_setup(self) -> None:
        codec = self._stream.codec_context.name
        self._sei_codec = codec if codec in ("h264", "hevc") else None
        hevc = codec == "hevc"
        self._sei_size = (
            length_size(self._stream.codec_context.extradata, hevc) if not self._raw else 0
        )
        self._sei_raw: dict[int, dict] = {}  # pts -> fields
        self._sei_bad: dict[int, str] = {}  # pts -> message

    def _read_sei(self, packet: av.Packet, pts: int) -> None:
        """The Tesla SEI of one demuxed packet (a frame), if any: header bytes only."""
        try:
            for message in packet_sei(packet, self._sei_size, self._sei_codec == "hevc"):
                self._sei_raw[pts] = decode_metadata(message)
        except SeiError as exc:
            self._sei_bad[pts] = str(exc)

    def _sei_on_timeline(self) -> None:
        """SEI of the frames kept, at their wall-clock times; bad SEI with frame and time."""
        self.sei: list[tuple[int, dict]] = []
        if self._raw and self._sei_raw:
            # A raw stream's packets are numbered in decoding order, its frames in display
            # order (B-frames): the messages go to the frames in the order the car counted them.
            numbers = sorted(self._sei_raw)
            # (proto3: an absent frame_seq_no is 0; the sort is stable.)
            by_seq = sorted(self._sei_raw.values(), key=lambda m: m.get("frame_seq_no", 0))
            self._sei_raw = dict(zip(numbers, by_seq, strict=True))
        if self._sei_raw:
            at = np.searchsorted(self.pts, np.array(sorted(self._sei_raw), dtype=np.int64))
            for p, i in zip(sorted(self._sei_raw), at.tolist(), strict=True):
                if i < len(self.pts) and self.pts[i] == p:
                    self.sei.append((int(self.frame_ts_us[i]), self._sei_raw[p]))
        self.sei_invalid: list[tuple[int, float, str]] = []
        for p in sorted(self._sei_bad):
            frame = int(np.searchsorted(self.pts, p))
            self.sei_invalid.append((frame, float((p - self._origin) * self._tb), self._sei_bad[p]))
        del self._sei_raw, self._sei_bad

    def _seek_points(self, keys: list[int], kept: set[int], hidden_keys: list[int]) -> list[int]:
        """The keyframes decoding may start at: those of the frames kept, and those an edit
        list hides (a trimmed start hides the keyframe its first shown frames come from)."""
        first, last = int(self.pts[0]), int(self.pts[-1])
        shown = [k for k in keys if k in kept]
        lead = max((k for k in hidden_keys if k <= first), default=None)
        if lead is not None:
            shown += [k for k in hidden_keys if lead <= k <= last]
        return sorted(shown) or [first]

    def _steady(self, pts: np.ndarray) -> np.ndarray:
        """The longest run of distinct pts (sorted) without a jump in time; a cut is a problem."""
        t = (pts - self._origin) * self._tb
        inside = np.abs(t) <= _MAX_OFFSET_S
        if not inside.any():
            raise VideoError("bad_timestamps", f"frame times out of range (first {t[0]:.6g}s)")
        pts = np.unique(pts[inside])  # two frames at one time: one of them cannot be had
        t = (pts - self._origin) * self._tb
        cuts = np.flatnonzero(np.diff(t) > _MAX_JUMP_S) + 1
        runs = np.split(np.arange(len(pts)), cuts)
        best = max(runs, key=len)
        if len(best) < len(inside):
            self.problems.append(
                VideoError(
                    "bad_timestamps",
                    f"frame times repeat, jump by more than {_MAX_JUMP_S:.0f}s or lie beyond "
                    f"{_MAX_OFFSET_S:.0f}s: kept {len(best)} of {len(inside)} frames "
                    f"({t[best[0]]:.3f}s to {t[best[-1]]:.3f}s)",
                    at_s=float(t[best[-1]] if best is runs[0] else t[best[0]]),
                )
            )
        return pts[best]

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
        self._file.close()

    def decode(
        self, wanted_pts: list[int], size: tuple[int, int]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(pts, rgb)`` for each wanted pts that the stream holds, resized by libswscale.

        Seeks to the keyframe before a wanted frame when a keyframe lies between the decoder's
        position and that frame (or the frame is behind it); otherwise decodes on. Packets of
        frames nothing refers to are skipped unless wanted. Raises ``VideoError`` with the time
        if the stream breaks off.
        """
        if self._in_order is not None:  # a raw stream: no times to seek by
            yield from self._in_order.decode(wanted_pts, size)
            return
        width, height = size
        ctx = self._stream.codec_context
        pending = sorted(set(wanted_pts))
        while pending:
            target = pending[0]
            key = self._key_for(target)
            wanted = set(pending)
            unfed = set(pending)  # wanted frames whose packet the decoder has not had yet
            progressed = False  # a frame was found since the last seek (no seek loop)
            try:
                if self._iter is None or target <= self._last_out or key > self._last_out:
                    self._seek(key)
                for packet in self._iter:
                    if packet.pts is not None:
                        self._position = packet.pts
                        unfed.discard(packet.pts)
                    keep = packet.pts is None or packet.pts in wanted
                    ctx.skip_frame = "DEFAULT" if keep else "NONREF"
                    frames = packet.decode()
                    if keep and self._drain_now(packet.pts, unfed):
                        # The decoder holds frames back to put them in display order: it
                        # would give this one only after decoding the next reference frames,
                        # which nothing needs. Draining hands it over at once; the next
                        # wanted frame is past a keyframe, so a seek follows anyway.
                        frames += ctx.decode(None)
                        self._iter = None
                    for frame in frames:
                        if frame.pts is None:
                            continue
                        self._last_out = frame.pts
                        while pending and pending[0] < frame.pts:
                            wanted.discard(pending.pop(0))  # not in the stream after all
                        if frame.pts in wanted:
                            rgb = self._scaler.reformat(
                                frame,
                                width=width,
                                height=height,
                                format="rgb24",
                                interpolation="AREA",
                                threads=1,
                            )
                            yield frame.pts, rgb.to_ndarray()
                            wanted.discard(frame.pts)
                            pending.pop(0)
                            progressed = True
                    if self._iter is None:
                        # Drained: a wanted frame fed but not given back is not to be had
                        # (a damaged packet); seek on to the next wanted frame's keyframe.
                        pending = [p for p in pending if p in unfed]
                        if not pending:
                            return
                        break
                    if not pending:
                        return
                    if progressed and self._key_for(pending[0]) > (self._position or 0):
                        break  # a keyframe lies ahead: seeking beats decoding through
                else:
                    self._iter = None  # end of stream: what was not found does not exist
                    return
            except (av.error.FFmpegError, ValueError) as exc:
                at = ((self._position or self._origin) - self._origin) * self._tb
                self._iter = None
                raise VideoError("decode_error", f"{type(exc).__name__}: {exc}", at_s=at) from None

    def _drain_now(self, pts: int | None, unfed: set[int]) -> bool:
        """Whether every wanted frame before the next keyframe has been fed (at ``pts``)."""
        if pts is None or self.problems:
            # A file that breaks off is decoded on as it always was: reading past the last
            # wanted frame is where its break shows (a reject), and draining would change
            # which of its frames are kept.
            return False
        nearest = min(unfed, default=None)
        return nearest is None or self._key_for(nearest) > pts

    def _key_for(self, pts: int) -> int:
        """The last keyframe at or before ``pts``."""
        return self.keyframes[max(0, bisect.bisect_right(self.keyframes, pts) - 1)]

    def _seek(self, key_pts: int) -> None:
        at = key_pts if self._key_dts is None else self._key_dts.get(key_pts, key_pts)
        self._container.seek(at, stream=self._stream, backward=True, any_frame=False)
        self._stream.codec_context.flush_buffers()
        self._iter = self._container.demux(self._stream)
        self._position = None
        self._last_out = -(2**62)


def _matroska_end(head: bytes) -> int | None:
    """The byte where the Matroska Segment opened in ``head`` ends, if its size is known."""
    at = 0
    for element in (b"\x1a\x45\xdf\xa3", b"\x18\x53\x80\x67"):  # EBML header, Segment
        if head[at : at + 4] != element or at + 4 >= len(head) or not head[at + 4]:
            return None
        n = 9 - head[at + 4].bit_length()  # a variable-length size: n bytes, n-1 zero bits
        unknown = (1 << (7 * n)) - 1
        value = int.from_bytes(head[at + 4 : at + 4 + n], "big") & unknown
        if value == unknown:
            return None
        at += 4 + n + (value if element == b"\x1a\x45\xdf\xa3" else 0)
    return at + value


def _creation_us(metadata: Mapping[str, str]) -> int | None:
    value = metadata.get("creation_time")
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(ts.timestamp() * 1_000_000)
