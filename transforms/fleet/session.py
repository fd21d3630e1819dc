"""One recording session -> aligned windows (clips rows), rejects and counts (plain functions).

Windows are cut on wall-clock time from the earliest camera frame. In each window the sample
times are ``start + j / fps``; for every sample time each camera contributes its frame nearest
in time, if one lies within a frame period (its real time goes to ``frame_ts_us``). Only those
frames are decoded. A window is a record: it is written, or rejected when no camera has a frame
in it (a run of such windows is one record). Every input problem (a camera file that cannot be
opened, breaks off or whose clock jumps, a broken ``event.json``, a telemetry row that cannot be
read) is a record of its own, rejected with the file, the time or row, and the decoder's or
parser's message.
"""

from __future__ import annotations

import io
import itertools
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from transforms.fleet.discover import SessionSpec, open_source
from transforms.fleet.quality import blur_score, is_black, luma, nearly_same
from transforms.fleet.telemetry import SIGNALS, Telemetry, load_telemetry
from transforms.fleet.video import CameraFile, VideoError

__all__ = ["FleetOptions", "WindowPiece", "clip_id", "ingest_session"]


@dataclass(frozen=True)
class FleetOptions:
    """What decides the clips a session gives.

    Args:
        window_s: window length, seconds.
        fps: samples per second in a window.
        size: output frame size (width, height); frames are scaled to it (no crop).
        jpeg_quality: 1-95.
        keyframes_only: take the nearest keyframe instead of the nearest frame (cheapest).
    """

    window_s: float = 10.0
    fps: float = 2.0
    size: tuple[int, int] = (224, 224)
    jpeg_quality: int = 90
    keyframes_only: bool = False


@dataclass
class WindowPiece:
    """What one step of a session produced: at most one row, rejects, counts."""

    row: dict | None = None
    rejects: list[dict] = field(default_factory=list)
    tally: Counter = field(default_factory=Counter)


def clip_id(spec: SessionSpec, window: int) -> str:
    return f"{spec.vehicle_id or '-'}/{spec.session_id}/{window:05d}"


class _Camera:
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


def _reject(piece: WindowPiece, uri: str, locator: str, reason: str, message: str) -> None:
    piece.tally["records_in"] += 1
    piece.rejects.append(
        {"source_uri": uri, "locator": locator, "reason": reason, "message": message}
    )


def _event(spec: SessionSpec, so: Mapping[str, Any], piece: WindowPiece) -> dict | None:
    if not spec.event:
        return None
    try:
        with open_source(spec.event, so) as f:
            obj = json.loads(f.read())
        if not isinstance(obj, dict):
            raise ValueError("expected a JSON object")

        def num(key):
            value = obj.get(key)
            return None if value in (None, "") else float(value)

        return {
            "reason": obj.get("reason"),
            "city": obj.get("city"),
            "lat": num("est_lat"),
            "lon": num("est_lon"),
        }
    except (ValueError, TypeError, OSError) as exc:
        _reject(piece, spec.event, "file", "event_json_invalid", f"{type(exc).__name__}: {exc}")
        return None


def _telemetry(spec: SessionSpec, so: Mapping[str, Any], piece: WindowPiece) -> Telemetry | None:
    if not spec.telemetry:
        return None
    try:
        tel = load_telemetry(spec.telemetry, so)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        _reject(piece, spec.telemetry, "file", "telemetry_invalid", str(exc))
        return None
    for row, message in tel.bad_rows:
        _reject(piece, spec.telemetry, f"row {row}", "telemetry_bad_row", message)
    return tel if len(tel.ts_us) else None


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def ingest_session(
    spec: SessionSpec,
    options: FleetOptions,
    storage_options: Mapping[str, Any],
    *,
    skip_clip_ids: frozenset[str] = frozenset(),
) -> Iterator[WindowPiece]:
    """Yield one ``WindowPiece`` per window, one per run of windows without any frame, and one
    first for input problems.

    Memory is bounded by one window: files stay open and are decoded window by window.
    Windows whose clip id is in ``skip_clip_ids`` (already committed) are counted as
    deduplicated and not decoded.
    """
    first = WindowPiece()
    event = _event(spec, storage_options, first)
    tel = _telemetry(spec, storage_options, first)
    fallback = int(spec.name_time.timestamp() * 1e6) if spec.name_time else 0
    cameras: list[_Camera] = []
    opened: list[CameraFile] = []
    try:
        for name, urls in sorted(spec.cameras.items()):
            files = []
            for url in urls:
                try:
                    cf = CameraFile(url, storage_options, fallback)
                except VideoError as exc:
                    _reject(first, url, "file", exc.reason, str(exc))
                    continue
                files.append(cf)
                for p in cf.problems:  # breaks off: the frames before still count
                    _reject(first, url, f"t={p.at_s:.3f}s", p.reason, str(p))
            opened.extend(files)
            if files:
                cameras.append(_Camera(name, files))
        yield first
        if not cameras:
            return
        t0 = min(int(c.ts[0]) for c in cameras)
        # The session ends with its last frame: no window made only of the time after it.
        t_end = max(int(c.ts[-1]) for c in cameras) + 1
        window_us = int(options.window_s * 1e6)
        step_us = 1e6 / options.fps
        # Only windows holding a frame are cut one by one; a run of windows without any (cameras
        # whose clocks disagree by years) is one rejected record, not millions.
        held = np.unique(np.concatenate([(c.ts - t0) // window_us for c in cameras])).tolist()
        for k, before in zip(held, [-1, *held], strict=False):
            if k > before + 1:
                gap = WindowPiece()
                _reject(
                    gap,
                    spec.files[0],
                    f"windows {before + 1}-{k - 1} ({(before + 1) * window_us / 1e6:.3f}s to "
                    f"{k * window_us / 1e6:.3f}s)",
                    "no_frames",
                    f"no camera has a frame in these {k - before - 1} windows",
                )
                yield gap
            ws = t0 + k * window_us
            we = min(ws + window_us, t_end)
            piece = WindowPiece()
            piece.tally["records_in"] += 1
            cid = clip_id(spec, k)
            if cid in skip_clip_ids:
                piece.tally["deduplicated:clip_id"] += 1
                yield piece
                continue
            samples = (ws + np.arange(0, we - ws, step_us)).astype(np.int64)
            row = _window(spec, k, ws, we, samples, cameras, options, piece)
            if row is None:
                _reject(
                    piece,
                    spec.files[0],
                    f"window {k} ({(ws - t0) / 1e6:.3f}s)",
                    "no_frames",
                    "no camera has a frame in this window",
                )
                piece.tally["records_in"] -= 1  # the window itself is the rejected record
            else:
                row["event"] = event
                row["telemetry"] = _resampled(tel, samples)
                piece.row = row
            yield piece
    finally:
        for f in opened:
            f.close()


def _resampled(tel: Telemetry | None, samples: np.ndarray) -> dict:
    values = tel.resample(samples) if tel is not None else dict.fromkeys(SIGNALS)
    return {"ts_us": samples.tolist(), **values}


def _window(spec, k, ws, we, samples, cameras, options, piece) -> dict | None:
    cams_out, skews = [], []
    chosen_ts: list[list[int | None]] = []
    lumas: list[np.ndarray] = []
    blurs: list[float] = []
    frozen_pairs = same_pairs = gaps = 0
    for cam in cameras:
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
                _reject(piece, f.url, f"t={exc.at_s:.3f}s", exc.reason, str(exc))
        got_ts, jpegs, ys = [], [], []
        uri = None
        per_sample: list[int | None] = []
        seen = set()
        for i in picks:
            key = None if i is None else (int(cam.file_of[i]), int(cam.pts[i]))
            if key is None or key not in frames:
                per_sample.append(None)
                continue
            per_sample.append(int(cam.ts[i]))
            if key in seen:  # two samples nearest to one frame: keep it once
                continue
            seen.add(key)
            rgb = frames[key]
            got_ts.append(int(cam.ts[i]))
            jpegs.append(_jpeg(rgb, options.jpeg_quality))
            ys.append(luma(rgb.astype(np.float32)))
            uri = uri or cam.files[key[0]].url
        chosen_ts.append(per_sample)
        in_window = (cam.ts >= ws) & (cam.ts < we)
        gaps += int(cam.gap_after[in_window].sum())
        if not got_ts:
            continue
        for a, b in itertools.pairwise(ys):
            same_pairs += 1
            frozen_pairs += nearly_same(a, b)
        lumas.extend(ys)
        blurs.extend(blur_score(y) for y in ys)
        f0 = cam.files[0]
        cams_out.append(
            {
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
        )
    if not cams_out:
        return None
    for column in zip(*chosen_ts, strict=True):
        present = [t for t in column if t is not None]
        if len(present) > 1:
            skews.append(max(present) - min(present))
    return {
        "clip_id": clip_id(spec, k),
        "vehicle_id": spec.vehicle_id,
        "session_id": spec.session_id,
        "start_time": int(ws),
        "duration_s": (we - ws) / 1e6,
        "cameras": cams_out,
        "quality": {
            "black_fraction": sum(is_black(y) for y in lumas) / len(lumas),
            "blur_score": float(np.mean(blurs)),
            "frozen_fraction": frozen_pairs / same_pairs if same_pairs else 0.0,
            "camera_skew_ms": max(skews) / 1000 if skews else 0.0,
            "dropped_frames": gaps,
        },
    }
