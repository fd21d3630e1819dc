"""One camera of a session: its files on one timeline, and its share of a window.

``sample_window`` does everything a window needs from one camera -- picking the frames nearest
the sample times, decoding them, JPEG, luma-based quality numbers -- and touches nothing
shared, so the cameras of a session can each run it in a thread of their own (``decode_ahead``).
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from transforms.fleet.quality import blur_score, is_black, luma, nearly_same
from transforms.fleet.video import CameraFile, VideoError

__all__ = ["Camera", "CameraPart", "sample_window"]


class Camera:
    """A camera's files on one timeline: frame times (µs) with the file and pts of each."""

    def __init__(self, name: str, files: list[CameraFile]):
        self.name, self.files = name, files
        self.ts = np.concatenate([f.frame_ts_us for f in files])
        self.file_of = np.concatenate([np.full(len(f.pts), i) for i, f in enumerate(files)])
        self.pts = np.concatenate([f.pts for f in files])
        self.keyframe = np.concatenate([np.isin(f.pts, f.keyframes) for f in files])
        gaps = [np.concatenate([f.gap_frames, [0]]) for f in files]
        self.gap_after = np.concatenate(gaps)
        order = np.argsort(self.ts, kind="stable")
        for name_ in ("ts", "file_of", "pts", "keyframe", "gap_after"):
            setattr(self, name_, getattr(self, name_)[order])
        fps = max(f.fps for f in files) or 1.0
        self.frame_us = 1e6 / fps
        self.broken: set[int] = set()

    def nearest(self, at_us: np.ndarray, keyframes_only: bool) -> list[int | None]:
        """For each time, the index of the nearest frame, or None where the camera has none.

        A camera covers a time when the frames around it are no further apart than 2.5 typical
        frame periods (so variable frame rates are covered, a dropout is not), or, before its
        first or after its last frame, when one lies within half a period.
        """
        index = np.flatnonzero(self.keyframe) if keyframes_only else np.arange(len(self.ts))
        ts = self.ts[index]
        period = float(np.median(np.diff(ts))) if len(ts) > 1 else self.frame_us
        out: list[int | None] = []
        for t, p in zip(at_us, np.searchsorted(ts, at_us), strict=True):
            before, after = (p - 1 if p > 0 else None), (p if p < len(ts) else None)
            if before is not None and after is not None:
                covered = ts[after] - ts[before] <= 2.5 * period
                best = before if t - ts[before] <= ts[after] - t else after
            else:
                best = before if before is not None else after
                covered = abs(ts[best] - t) <= period / 2 + 1000
            out.append(int(index[best]) if covered else None)
        return out


@dataclass
class CameraPart:
    """What one camera gives one window.

    ``entry`` is the camera's item of the row's ``cameras`` list (None without a frame);
    ``sample_ts`` the time of the frame taken for each sample time (None: none); the quality
    numbers are per kept frame, in order; ``rejects`` are (uri, locator, reason, message) of
    files that broke off while decoding.
    """

    entry: dict | None = None
    sample_ts: list[int | None] = field(default_factory=list)
    gaps: int = 0
    black: list[bool] = field(default_factory=list)
    blur: list[float] = field(default_factory=list)
    frozen_pairs: int = 0
    same_pairs: int = 0
    rejects: list[tuple[str, str, str, str]] = field(default_factory=list)


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def sample_window(cam: Camera, ws: int, we: int, samples: np.ndarray, options) -> CameraPart:
    """Camera ``cam``'s share of the window ``[ws, we)`` sampled at ``samples`` (µs).

    ``options`` is the run's ``FleetOptions``.
    """
    part = CameraPart()
    picks = cam.nearest(samples, options.keyframes_only)
    by_file: dict[int, list[int]] = {}
    for i in picks:
        if i is not None and int(cam.file_of[i]) not in cam.broken:
            by_file.setdefault(int(cam.file_of[i]), []).append(int(cam.pts[i]))
    frames: dict[tuple[int, int], np.ndarray] = {}
    for fi, pts in by_file.items():
        f = cam.files[fi]
        try:
            for p, rgb in f.decode(pts, options.size):
                frames[(fi, p)] = rgb
        except VideoError as exc:
            cam.broken.add(fi)
            part.rejects.append((f.url, f"t={exc.at_s:.3f}s", exc.reason, str(exc)))
    got_ts, jpegs, ys = [], [], []
    uri = None
    seen = set()
    for i in picks:
        key = None if i is None else (int(cam.file_of[i]), int(cam.pts[i]))
        if key is None or key not in frames:
            part.sample_ts.append(None)
            continue
        part.sample_ts.append(int(cam.ts[i]))
        if key in seen:  # two samples nearest to one frame: keep it once
            continue
        seen.add(key)
        rgb = frames[key]
        got_ts.append(int(cam.ts[i]))
        jpegs.append(_jpeg(rgb, options.jpeg_quality))
        ys.append(luma(rgb.astype(np.float32)))
        uri = uri or cam.files[key[0]].url
    in_window = (cam.ts >= ws) & (cam.ts < we)
    part.gaps = int(cam.gap_after[in_window].sum())
    if not got_ts:
        return part
    for a, b in itertools.pairwise(ys):
        part.same_pairs += 1
        part.frozen_pairs += nearly_same(a, b)
    part.black = [is_black(y) for y in ys]
    part.blur = [blur_score(y) for y in ys]
    f0 = cam.files[0]
    part.entry = {
        "camera": cam.name,
        "codec": f0.codec,
        "width": f0.width,
        "height": f0.height,
        "source_fps": round(f0.fps, 3),
        "frame_ts_us": got_ts,
        "frames": jpegs,
        "source_uri": uri,
        "dropped_frames": len(samples) - len(got_ts),
    }
    return part
