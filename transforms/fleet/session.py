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

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transforms.fleet.ahead import decode_ahead
from transforms.fleet.camera import Camera, CameraPart
from transforms.fleet.discover import SessionSpec, open_source
from transforms.fleet.sei_telemetry import sei_telemetry
from transforms.fleet.tags import TagThresholds, tag_moments, window_tags
from transforms.fleet.telemetry import SIGNALS, Telemetry, load_telemetry
from transforms.fleet.telemetry_ext import resample_ext
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
        raw_fps: frame rate of raw H.264/HEVC streams (they carry no times); None: the rate
            each declares, and a stream declaring none is rejected ``no_frame_rate``.
        tags: the thresholds of the clips' ``tags`` (``transforms.fleet.tags``).
    """

    window_s: float = 10.0
    fps: float = 2.0
    size: tuple[int, int] = (224, 224)
    jpeg_quality: int = 90
    keyframes_only: bool = False
    raw_fps: float | None = None
    tags: TagThresholds = field(default_factory=TagThresholds)


@dataclass
class WindowPiece:
    """What one step of a session produced: at most one row, rejects, counts, and how much
    of the session's time is done with it (0 to 1; for progress reports)."""

    row: dict | None = None
    rejects: list[dict] = field(default_factory=list)
    tally: Counter = field(default_factory=Counter)
    session_done: float = 0.0


def clip_id(spec: SessionSpec, window: int) -> str:
    return f"{spec.vehicle_id or '-'}/{spec.session_id}/{window:05d}"


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


def ingest_session(
    spec: SessionSpec,
    options: FleetOptions,
    storage_options: Mapping[str, Any],
    *,
    skip_clip_ids: frozenset[str] = frozenset(),
) -> Iterator[WindowPiece]:
    """Yield one ``WindowPiece`` per window, one per run of windows without any frame, and one
    first for input problems.

    Memory is bounded by a few windows, whatever the session's length: files stay open and
    each camera decodes in a thread of its own, at most two windows ahead (``decode_ahead``).
    Windows whose clip id is in ``skip_clip_ids`` (already committed) are counted as
    deduplicated and not decoded.
    """
    first = WindowPiece()
    event = _event(spec, storage_options, first)
    tel = _telemetry(spec, storage_options, first)
    fallback = int(spec.name_time.timestamp() * 1e6) if spec.name_time else 0
    cameras: list[Camera] = []
    opened: list[CameraFile] = []
    try:
        for name, urls in sorted(spec.cameras.items()):
            files = []
            for url in urls:
                try:
                    cf = CameraFile(url, storage_options, fallback, raw_fps=options.raw_fps)
                except VideoError as exc:
                    _reject(first, url, "file", exc.reason, str(exc))
                    continue
                files.append(cf)
                for p in cf.problems:  # breaks off: the frames before still count
                    _reject(first, url, f"t={p.at_s:.3f}s", p.reason, str(p))
                for frame, at_s, message in cf.sei_invalid:  # the frame itself still counts
                    _reject(first, url, f"frame {frame} (t={at_s:.3f}s)", "sei_invalid", message)
            opened.extend(files)
            if files:
                cameras.append(Camera(name, files))
        # SEI is per frame and from the car itself: where a session has it, it wins over a
        # sidecar (whose unreadable rows are still rejected above).
        tel = sei_telemetry([(c.name, c.files) for c in cameras]) or tel
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
        # Which windows are cut is known before any frame is decoded: the cameras decode
        # those in threads of their own, a few windows ahead of the pieces yielded here.
        cut: list[tuple[int, int, np.ndarray]] = []
        for k in held:
            ws = t0 + k * window_us
            we = min(ws + window_us, t_end)
            if clip_id(spec, k) not in skip_clip_ids:
                cut.append((ws, we, (ws + np.arange(0, we - ws, step_us)).astype(np.int64)))
        parts = decode_ahead(cameras, cut, options)
        try:
            yield from _pieces(
                spec,
                held,
                cut,
                parts,
                t0=t0,
                span_us=t_end - t0,
                window_us=window_us,
                skip_clip_ids=skip_clip_ids,
                event=event,
                tel=tel,
                moments=tag_moments(tel, options.tags),
            )
        finally:
            parts.close()  # the threads stop before the files close
    finally:
        for f in opened:
            f.close()


def _resampled(tel: Telemetry | None, samples: np.ndarray) -> dict:
    values = tel.resample(samples) if tel is not None else dict.fromkeys(SIGNALS)
    return {"ts_us": samples.tolist(), **values}


def _pieces(spec, held, cut, parts, *, t0, span_us, window_us, skip_clip_ids, event, tel, moments):
    """The pieces of the windows ``held`` (and of the runs without any between them), in
    order; ``parts`` gives the cameras' parts of each window of ``cut``, in order."""
    cut_at = iter(cut)
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
            gap.session_done = min(1.0, k * window_us / span_us)
            yield gap
        piece = WindowPiece(session_done=min(1.0, (k + 1) * window_us / span_us))
        piece.tally["records_in"] += 1
        if clip_id(spec, k) in skip_clip_ids:
            piece.tally["deduplicated:clip_id"] += 1
            yield piece
            continue
        ws, we, samples = next(cut_at)
        row = _window(spec, k, ws, we, next(parts), piece)
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
            row["telemetry_ext"] = resample_ext(tel, samples)
            row["tags"] = window_tags(moments, ws, we, (event or {}).get("reason"))
            piece.row = row
        yield piece


def _window(spec, k, ws, we, parts: list[CameraPart], piece: WindowPiece) -> dict | None:
    """The row of window ``k`` from its cameras' parts (None: no camera has a frame)."""
    for part in parts:
        for uri, locator, reason, message in part.rejects:
            _reject(piece, uri, locator, reason, message)
    kept = [part for part in parts if part.entry is not None]
    if not kept:
        return None
    skews = []
    for column in zip(*(part.sample_ts for part in parts), strict=True):
        present = [t for t in column if t is not None]
        if len(present) > 1:
            skews.append(max(present) - min(present))
    black = [b for part in kept for b in part.black]
    blurs = [b for part in kept for b in part.blur]
    same_pairs = sum(part.same_pairs for part in kept)
    frozen_pairs = sum(part.frozen_pairs for part in kept)
    return {
        "clip_id": clip_id(spec, k),
        "vehicle_id": spec.vehicle_id,
        "session_id": spec.session_id,
        "start_time": int(ws),
        "duration_s": (we - ws) / 1e6,
        "cameras": [part.entry for part in kept],
        "quality": {
            "black_fraction": sum(black) / len(black),
            "blur_score": float(np.mean(blurs)),
            "frozen_fraction": frozen_pairs / same_pairs if same_pairs else 0.0,
            "camera_skew_ms": max(skews) / 1000 if skews else 0.0,
            "dropped_frames": sum(part.gaps for part in parts),
        },
    }
