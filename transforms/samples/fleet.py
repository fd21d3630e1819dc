"""Synthetic fleet recordings in both layouts of DESIGN.md §4, with a truth file for tests.

``teslacam``: ``TeslaCam/{SavedClips,SentryClips,RecentClips}/<event>/<YYYY-MM-DD_HH-MM-SS>-<camera>.mp4``
plus ``event.json`` (Saved and Sentry clips) -- names and ``event.json`` in the car's local time,
as Tesla writes them; each MP4's ``creation_time`` is UTC. Saved and recent clips carry Tesla's
per-frame SEI telemetry in every camera (``transforms.samples.drive``: autosteer, then a
disengagement; a blinker), as cars on firmware 2025.44.25+ write it; sentry clips (a parked car)
carry none.

``generic``: ``<vehicle>/<YYYY-MM-DDTHH-MM-SSZ>/<camera>.mp4`` plus ``telemetry.{csv,jsonl,parquet}``
(``timestamp`` in UTC, ``speed_kph``, ``steering_deg``, ``lat``, ``lon``, ``heading_deg``,
``accel_mps2``). The rear camera runs at 3/4 of the others' frame rate.

Cameras of a session start a few hundred milliseconds apart: a camera's first frame has a
presentation time equal to its offset from the session start. Every frame shows its time since
the session start in pixels (``frame_clock``). ``_SAMPLE.json`` (ignored by discovery, like every
name starting with ``_`` or ``.``) records what was generated, for tests to check against.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.samples.drive import DriveScript, drive_script, sei_fields
from transforms.samples.scene import Scene
from transforms.samples.seeds import rng_for
from transforms.samples.telemetry import Track, simulate_track
from transforms.samples.video import encode_mp4

__all__ = ["FleetSampleConfig", "generate_fleet_sample"]

TESLA_CAMERAS = ("front", "back", "left_repeater", "right_repeater")
GENERIC_CAMERAS = ("front", "rear", "left", "right")
# (city, UTC offset in November, lat, lon)
CITIES = (
    ("San Francisco", -8, 37.7749, -122.4194),
    ("Berlin", 1, 52.5200, 13.4050),
    ("Tokyo", 9, 35.6762, 139.6503),
    ("Austin", -6, 30.2672, -97.7431),
)
TESLA_REASONS = {
    "SavedClips": ("user_interaction_dashcam_icon_tapped", "user_interaction_honk"),
    "SentryClips": ("sentry_aware_object_detection", "sentry_aware_accel_0.35"),
}
_DAY0 = datetime(2026, 11, 16, tzinfo=timezone.utc)
_TELEMETRY_FORMATS = ("csv", "jsonl", "parquet")


@dataclass(frozen=True)
class FleetSampleConfig:
    """What ``generate_fleet_sample`` makes.

    Args:
        vehicles / sessions: generic layout: vehicles, and sessions per vehicle.
        events / segments: teslacam layout: event folders, and files per camera per event.
        duration_s: seconds per generic session and per teslacam segment.
        fps / width / height / gop_s: video parameters (rear camera: 3/4 of ``fps``).
        cameras: cameras per session (at most 4).
        noise: standard deviation of fresh per-frame sensor noise (0-255 scale; 0: none).
            Real dashcam footage is noisy and costs several Mb/s; 8 at 640x480 @ 30 fps
            gives ~6 Mb/s. Noise makes the frame clock unreadable, so tests keep 0.
        layout: ``teslacam``, ``generic`` or ``both``.
        broken: add broken inputs (truncated, empty and fake MP4s, a broken ``event.json``,
            a bad telemetry row), each recorded in ``_SAMPLE.json``.
        sei: teslacam saved and recent clips carry Tesla SEI telemetry per frame.
        seed: everything derives from it.
    """

    vehicles: int = 2
    sessions: int = 2
    events: int = 3
    segments: int = 2
    duration_s: float = 8.0
    fps: float = 10.0
    width: int = 320
    height: int = 240
    gop_s: float = 1.0
    cameras: int = 4
    noise: float = 0.0
    layout: str = "both"
    broken: bool = False
    sei: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.layout not in ("teslacam", "generic", "both"):
            raise ValueError(f"layout={self.layout!r}: expected teslacam, generic or both")
        if not 1 <= self.cameras <= 4:
            raise ValueError(f"cameras={self.cameras}: expected 1 to 4")
        for name in ("vehicles", "sessions", "events", "segments"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected >= 0")
        if self.noise < 0:
            raise ValueError(f"noise={self.noise}: expected >= 0")
        if self.duration_s <= 0 or self.fps <= 0:
            raise ValueError("duration_s and fps must be positive")
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 4:
            raise ValueError(
                f"size {self.width}x{self.height}: expected at least 64x64, an even width and a "
                f"height divisible by 4 (yuv420p)"
            )


def _iso_utc(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sei(sei, fps, offset_s, end_s, clock_base_s) -> dict[int, dict]:
    """Each frame's SEI fields by pts (ms), the frames of ``_camera_frames``; the car counts
    frames from the session's start."""
    track, script = sei
    out = {}
    for i in range(int((end_s - offset_s) * fps)):
        t = offset_s + i / fps
        seq = round((clock_base_s + t) * fps)
        out[round(t * 1000)] = sei_fields(track, script, clock_base_s + t, seq)
    return out


def _camera_frames(
    scene: Scene,
    track: Track,
    fps: float,
    offset_s: float,
    end_s: float,
    clock_base_s: float,
    black: tuple[float, float] | None,
    frozen: tuple[float, float] | None,
    noise: _Noise | None = None,
):
    """``(pts_ms, rgb)`` from ``offset_s`` to ``end_s`` (times relative to the file's start)."""
    n = int((end_s - offset_s) * fps)
    held = None
    for i in range(n):
        t = offset_s + i / fps
        session_t = clock_base_s + t
        if black and black[0] <= session_t < black[1]:
            img = np.full((scene.height, scene.width, 3), 16, np.uint8)
        elif frozen and frozen[0] <= session_t < frozen[1]:
            if held is None:
                _, steering, dist = track.at(session_t)
                held = scene.frame(round(session_t * 1000), dist, steering, session_t)
            img = held
        else:
            _, steering, dist = track.at(session_t)
            img = scene.frame(round(session_t * 1000), dist, steering, session_t)
        yield round(t * 1000), noise.add(img, i) if noise else img


class _Noise:
    """Per-frame sensor noise, cheap to add: a bank of noise fields, each frame a different one
    at a different offset (so no frame repeats another's noise and the encoder pays for it)."""

    _BANK = 7

    def __init__(self, sigma: float, height: int, width: int, rng: np.random.Generator):
        shape = (self._BANK, 2 * height, 2 * width, 1)
        self._bank = np.round(rng.normal(0.0, sigma, shape)).astype(np.int16)
        self._offsets = rng.integers(0, [height, width], size=(1024, 2))

    def add(self, img: np.ndarray, i: int) -> np.ndarray:
        h, w = img.shape[:2]
        dy, dx = self._offsets[i % len(self._offsets)]
        field = self._bank[i % self._BANK, dy : dy + h, dx : dx + w]
        return np.clip(img + field, 0, 255).astype(np.uint8)


def _write_telemetry(path: str, fmt: str, start: datetime, track: Track, bad_row: int | None):
    stamps = [start + timedelta(seconds=float(t)) for t in track.t_s]
    cols = {
        "speed_kph": np.round(track.speed_mps * 3.6, 3),
        "steering_deg": np.round(track.steering_deg, 3),
        "lat": np.round(track.lat, 7),
        "lon": np.round(track.lon, 7),
        "heading_deg": np.round(track.heading_deg, 3),
        "accel_mps2": np.round(track.accel_mps2, 4),
    }
    if fmt == "parquet":
        table = pa.table({"timestamp": pa.array(stamps, pa.timestamp("ms", tz="UTC")), **cols})
        pq.write_table(table, path)
        return
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        if fmt == "csv":
            f.write("timestamp," + ",".join(cols) + "\n")
        for i, ts in enumerate(stamps):
            values = {k: float(v[i]) for k, v in cols.items()}
            if i == bad_row:
                values["speed_kph"] = "n/a"
            if fmt == "csv":
                f.write(_iso_utc(ts) + "," + ",".join(str(v) for v in values.values()) + "\n")
            else:
                f.write(json.dumps({"timestamp": _iso_utc(ts), **values}) + "\n")


class _Writer:
    def __init__(self, cfg: FleetSampleConfig, root: str, progress: Callable[[str], None] | None):
        self.cfg, self.root, self.progress = cfg, root, progress
        self.sessions: list[dict] = []
        self.files = 0
        self.frames = 0
        self.bytes = 0

    def _done(self, path: str) -> None:
        self.files += 1
        self.bytes += os.path.getsize(path)
        if self.progress:
            self.progress(os.path.relpath(path, self.root))

    def camera(
        self,
        path,
        scene,
        track,
        fps,
        offset_s,
        end_s,
        clock_base_s,
        created,
        black=None,
        frozen=None,
        sei: tuple[Track, DriveScript] | None = None,
    ) -> dict:
        cfg = self.cfg
        noise = None
        if cfg.noise:  # its own generator: a sample without noise stays the same
            rng = rng_for(cfg.seed, "noise", os.path.relpath(path, self.root))
            noise = _Noise(cfg.noise, cfg.height, cfg.width, rng)
        frames = encode_mp4(
            path,
            _camera_frames(scene, track, fps, offset_s, end_s, clock_base_s, black, frozen, noise),
            width=cfg.width,
            height=cfg.height,
            fps=fps,
            gop_s=cfg.gop_s,
            creation_time=created,
            sei=_sei(sei, fps, offset_s, end_s, clock_base_s) if sei else None,
        )
        self.frames += frames
        self._done(path)
        return {
            "file": os.path.relpath(path, self.root),
            "codec": "h264",
            "fps": fps,
            "offset_ms": round(offset_s * 1000),
            "frames": frames,
            "width": cfg.width,
            "height": cfg.height,
            "broken": None,
        }

    def generic(self) -> None:
        cfg = self.cfg
        cams = GENERIC_CAMERAS[: cfg.cameras]
        for v in range(cfg.vehicles):
            vehicle = f"veh-{v + 1:04d}"
            for s in range(cfg.sessions):
                rng = rng_for(cfg.seed, "generic", v, s)
                start = _DAY0 + timedelta(
                    days=s + v,
                    hours=int(rng.integers(6, 20)),
                    minutes=int(rng.integers(0, 60)),
                    seconds=int(rng.integers(0, 60)),
                )
                session = start.strftime("%Y-%m-%dT%H-%M-%SZ")
                city = CITIES[(v + s) % len(CITIES)]
                track = simulate_track(
                    rng, cfg.duration_s + 1, start_lat=city[2], start_lon=city[3]
                )
                directory = os.path.join(self.root, "generic", vehicle, session)
                os.makedirs(directory, exist_ok=True)
                idx = v * cfg.sessions + s
                black = (2.0, 3.5) if idx == 1 else None
                frozen = (4.0, 5.5) if idx == 2 else None
                cameras = []
                for c, cam in enumerate(cams):
                    fps = cfg.fps * 0.75 if cam == "rear" else cfg.fps
                    offset = 0.0 if c == 0 else float(rng.integers(50, 400)) / 1000
                    info = self.camera(
                        os.path.join(directory, f"{cam}.mp4"),
                        Scene(cfg.width, cfg.height, cam, rng),
                        track,
                        fps,
                        offset,
                        cfg.duration_s,
                        0.0,
                        _iso_utc(start),
                        black=black,
                        frozen=frozen if cam == "front" else None,
                    )
                    cameras.append({"camera": cam, **info})
                fmt = _TELEMETRY_FORMATS[idx % len(_TELEMETRY_FORMATS)]
                tel_path = os.path.join(directory, f"telemetry.{fmt}")
                bad_row = 5 if cfg.broken and idx == 0 and fmt != "parquet" else None
                _write_telemetry(tel_path, fmt, start, track, bad_row)
                self._done(tel_path)
                self.sessions.append(
                    {
                        "layout": "generic",
                        "vehicle_id": vehicle,
                        "session_id": session,
                        "start_utc": _iso_utc(start),
                        "duration_s": cfg.duration_s,
                        "cameras": cameras,
                        "telemetry": {
                            "file": os.path.relpath(tel_path, self.root),
                            "format": fmt,
                            "rows": len(track.t_s),
                            "bad_rows": [bad_row] if bad_row is not None else [],
                        },
                        "black_s": black,
                        "frozen_s": {"front": frozen} if frozen else None,
                    }
                )

    def teslacam(self) -> None:
        cfg = self.cfg
        cams = TESLA_CAMERAS[: cfg.cameras]
        folders = ("SavedClips", "SentryClips", "RecentClips")
        for e in range(cfg.events):
            rng = rng_for(cfg.seed, "teslacam", e)
            folder = folders[e % len(folders)]
            city, utc_offset, lat, lon = CITIES[e % len(CITIES)]
            tz = timezone(timedelta(hours=utc_offset))
            start = _DAY0 + timedelta(
                days=e,
                hours=int(rng.integers(6, 22)),
                minutes=int(rng.integers(0, 60)),
                seconds=int(rng.integers(0, 60)),
            )
            local = start.astimezone(tz)
            seg_s = cfg.duration_s
            event_local = local + timedelta(seconds=seg_s * cfg.segments - 2)
            event_name = event_local.strftime("%Y-%m-%d_%H-%M-%S")
            directory = os.path.join(self.root, "teslacam", "TeslaCam", folder, event_name)
            os.makedirs(directory, exist_ok=True)
            track = simulate_track(rng, seg_s * cfg.segments + 1, start_lat=lat, start_lon=lon)
            script = None
            if cfg.sei and folder != "SentryClips":  # a parked car writes no SEI
                script = drive_script(rng_for(cfg.seed, "sei", e), seg_s * cfg.segments)
            cameras = []
            for k in range(cfg.segments):
                seg_start = start + timedelta(seconds=seg_s * k)
                stem = (local + timedelta(seconds=seg_s * k)).strftime("%Y-%m-%d_%H-%M-%S")
                for c, cam in enumerate(cams):
                    offset = 0.0 if c == 0 else float(rng.integers(20, 300)) / 1000
                    info = self.camera(
                        os.path.join(directory, f"{stem}-{cam}.mp4"),
                        Scene(cfg.width, cfg.height, cam, rng),
                        track,
                        cfg.fps,
                        offset,
                        seg_s,
                        seg_s * k,
                        _iso_utc(seg_start),
                        sei=(track, script) if script else None,
                    )
                    cameras.append({"camera": cam, "segment": k, **info})
            event = None
            if folder != "RecentClips":
                reasons = TESLA_REASONS[folder]
                event = {
                    "timestamp": event_local.strftime("%Y-%m-%dT%H:%M:%S"),
                    "city": city,
                    "est_lat": f"{track.lat[-1]:.4f}",
                    "est_lon": f"{track.lon[-1]:.4f}",
                    "reason": reasons[e % len(reasons)],
                    "camera": str(e % len(cams)),
                }
                path = os.path.join(directory, "event.json")
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(event, f)
                self._done(path)
            self.sessions.append(
                {
                    "layout": "teslacam",
                    "vehicle_id": None,
                    "session_id": event_name,
                    "folder": folder,
                    "start_utc": _iso_utc(start),
                    "utc_offset_hours": utc_offset,
                    "duration_s": seg_s * cfg.segments,
                    "cameras": cameras,
                    "event": event,
                    "event_json_broken": False,
                    "sei": (
                        {"disengage_s": script.disengage_s, "blinker_left_s": script.blinker_s}
                        if script
                        else None
                    ),
                }
            )

    def break_some(self) -> list[dict]:
        """Damage a few files on purpose; each one is listed in the truth file."""
        broken = []

        def mark(session, camera, kind, path):
            for info in session["cameras"]:
                if info["file"] == camera:
                    info["broken"] = kind
            broken.append({"file": os.path.relpath(path, self.root), "kind": kind})

        generic = [s for s in self.sessions if s["layout"] == "generic"]
        tesla = [s for s in self.sessions if s["layout"] == "teslacam"]
        if generic and len(generic[0]["cameras"]) > 1:
            cam = generic[0]["cameras"][-1]["file"]
            path = os.path.join(self.root, cam)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) * 2 // 5)
            mark(generic[0], cam, "truncated", path)
        if len(generic) > 1:
            cam = generic[-1]["cameras"][-1]["file"]
            path = os.path.join(self.root, cam)
            with open(path, "w", encoding="utf-8") as f:
                f.write("this is not a video, whatever its name says\n" * 20)
            mark(generic[-1], cam, "not_video", path)
        if tesla:
            cam = tesla[0]["cameras"][-1]["file"]
            path = os.path.join(self.root, cam)
            open(path, "wb").close()
            mark(tesla[0], cam, "empty", path)
        with_event = [s for s in tesla if s["event"]]
        if with_event:
            s = with_event[-1]
            path = os.path.join(
                self.root, "teslacam", "TeslaCam", s["folder"], s["session_id"], "event.json"
            )
            with open(path, "w", encoding="utf-8") as f:
                f.write('{"timestamp": "2026-11-2')
            s["event_json_broken"] = True
            broken.append({"file": os.path.relpath(path, self.root), "kind": "bad_json"})
        for s in generic:
            if s["telemetry"]["bad_rows"]:
                broken.append(
                    {
                        "file": s["telemetry"]["file"],
                        "kind": "bad_telemetry_row",
                        "row": s["telemetry"]["bad_rows"][0],
                    }
                )
        return broken


def generate_fleet_sample(
    directory: str,
    config: FleetSampleConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write a synthetic fleet sample under ``directory``; return (and save) its truth.

    ``progress(relative_path)`` is called after each file is written.
    """
    cfg = config or FleetSampleConfig()
    os.makedirs(directory, exist_ok=True)
    writer = _Writer(cfg, directory, progress)
    if cfg.layout in ("generic", "both"):
        writer.generic()
    if cfg.layout in ("teslacam", "both"):
        writer.teslacam()
    broken = writer.break_some() if cfg.broken else []
    truth = {
        "kind": "fleet",
        "config": asdict(cfg),
        "files": writer.files,
        "frames": writer.frames,
        "bytes": writer.bytes,
        "broken": broken,
        "sessions": writer.sessions,
    }
    with open(os.path.join(directory, "_SAMPLE.json"), "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=1)
    return truth
