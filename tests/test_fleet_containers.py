"""Every container the README lists ingests with true wall-clock frame times: MPEG-TS (its
clock starts anywhere), raw H.264 and HEVC (no times at all: numbered at the rate the stream
declares, or ``--raw-fps``), MP4 with an edit list (a delayed and a trimmed start), MOV,
Matroska, WebM (VP8 and VP9), AVI, and all of them in one session.

Every frame shows its own session time (``read_clock``): a frame taken from the wrong place,
or placed at the wrong time, fails the test; so does a camera missing from a window."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from tablegen import read_version
from videogen import mp4_box, replace_mp4_box

from catalog import Dataset
from pipelines.ingest_fleet import IngestFleetConfig, run
from runners.options import beam_options
from transforms.fleet import CameraFile
from transforms.samples import read_clock
from transforms.samples.scene import Scene
from transforms.samples.video import rgb_to_yuv420p

BIN = Path(sys.executable).parent / "shardsmith"
SESSION = "2026-11-20T10-00-00Z"  # no file here has a creation_time: this is time 0
T0 = int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp() * 1e6)
WINDOW_S, FPS = 2.0, 2.0  # samples at 0, 500, 1000, 1500 ms of each window
CLOCKS = list(range(0, 4000, 100))  # 10 fps for 4 s: two whole windows
HIDDEN = 9999  # the clock drawn on frames an edit list hides: never to be seen


def _clip(path, frames, *, fmt, codec="libx264", fps=10, ms_pts=True, options=None, camera=""):
    """Encode ``frames`` as ``(pts_ms, clock_ms)`` pairs: each frame shows ``clock_ms``.

    ``ms_pts``: a millisecond time base; else 1/fps, which libx264 declares as the frame rate
    in the SPS of a raw stream (with 1/1000 it declares 1000)."""
    scene = Scene(160, 120, camera or path.stem, np.random.default_rng(1))
    tb = Fraction(1, 1000) if ms_pts else Fraction(1, fps)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        stream.codec_context.gop_size = fps
        for pts_ms, clock in frames:
            rgb = scene.frame(clock, clock / 100.0, 0.0, clock / 1000)
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")
            frame.pts, frame.time_base = round(pts_ms / 1000 / tb), tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _at(clocks, shift_ms=0):
    """Frames whose pts is their clock plus ``shift_ms``."""
    return [(c + shift_ms, c) for c in clocks]


def _edit_listed(path, *, delay_ms, trim_ms, camera=""):
    """An MP4 whose edit list delays the video by ``delay_ms`` (an empty edit) and hides its
    first ``trim_ms`` (the media starts later): each shown frame's clock is its time in the
    session, each hidden frame shows ``HIDDEN``."""
    frames = [(c, c - trim_ms + delay_ms if c >= trim_ms else HIDDEN) for c in CLOCKS]
    _clip(path, frames, fmt="mp4", camera=camera)
    data = path.read_bytes()
    elst = "moov/trak/edts/elst"  # libx264's B-frames make FFmpeg write one (media delay)
    at = mp4_box(data, elst)[0]
    media_delay = struct.unpack(">i", data[at + 20 : at + 24])[0]  # its one entry's media_time
    timescale = struct.unpack(">I", data[mp4_box(data, "moov/trak/mdia/mdhd")[0] + 20 :][:4])[0]
    shown_ms = CLOCKS[-1] + 100 - trim_ms
    entries = [(delay_ms, -1), (shown_ms, media_delay + trim_ms * timescale // 1000)]
    body = bytes(4) + struct.pack(">I", len(entries))
    body += b"".join(struct.pack(">IiI", d, m, 0x10000) for d, m in entries)
    path.write_bytes(replace_mp4_box(data, elst, body))


def _session(root: Path) -> Path:
    d = root / "src" / "generic" / "veh-1" / SESSION
    d.mkdir(parents=True)
    return d


def _ingest(root: Path, name="clips", **kw):
    kw = {"window_s": WINDOW_S, "fps": FPS, "size": (160, 120), "max_reject_rate": 1.0} | kw
    config = IngestFleetConfig(source=str(root / "src"), dataset=str(root / name), **kw)
    report = run(config, beam_options("local", 1, ["--direct_running_mode=in_memory"]))
    ds = Dataset.open(str(root / name))
    rows = sorted(read_version(ds).to_pylist(), key=lambda r: r["clip_id"])
    rejects = []
    for entry in ds.manifest(report.version).rejects:
        with ds.fs.open(ds.path(entry.path), "rb") as f:
            rejects.extend(pq.read_table(f).to_pylist())
    return report, rows, rejects


def _cli(root: Path, name: str) -> list[str]:
    return [str(BIN), "ingest", "fleet", str(root / "src"), "--to", str(root / name)]


def _frames(rows) -> dict[str, list[tuple[int, int]]]:
    """Per camera, every frame as ``(ms since T0 by frame_ts_us, ms its pixels show)``."""
    out: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        for cam in row["cameras"]:
            for ts, jpeg in zip(cam["frame_ts_us"], cam["frames"], strict=True):
                shown = read_clock(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))
                out.setdefault(cam["camera"], []).append(((ts - T0) / 1000, shown))
    return out


def _assert_true_times(rows, cameras, spans=None):
    """Each camera's frames were taken at the times they are placed at, one at every sample
    time from its first to its last frame (``spans``: ms, default ``CLOCKS``' 0 to 3900)."""
    samples = [(t - T0) / 1000 for r in rows for t in r["telemetry"]["ts_us"]]
    frames = _frames(rows)
    assert sorted(frames) == sorted(cameras)
    for name, got in frames.items():
        first, last = (spans or {}).get(name, (0, 3900))
        assert got == [(t, t) for t in samples if first <= t <= last], name


def test_ts_times_start_at_the_file_start(tmp_path):
    d = _session(tmp_path)
    _clip(d / "front.mp4", _at(CLOCKS), fmt="mp4")
    _clip(d / "rear.ts", _at(CLOCKS), fmt="mpegts")  # FFmpeg's muxer adds its own delay
    _clip(d / "left.ts", _at(CLOCKS, 3_600_000), fmt="mpegts")  # a recorder's clock: 1 h
    for name, at_least in (("rear.ts", 0.1), ("left.ts", 3600)):
        with av.open(str(d / name)) as c:
            assert c.start_time / 1e6 >= at_least  # the case this test is about
    report, rows, rejects = _ingest(tmp_path)
    assert rejects == [] and report.records_written == len(rows) == 2
    _assert_true_times(rows, ["front", "rear", "left"])
    assert all(r["quality"]["camera_skew_ms"] == 0 for r in rows)


def test_raw_streams_run_at_the_rate_they_declare(tmp_path):
    d = _session(tmp_path)
    _clip(d / "front.h264", _at(CLOCKS), fmt="h264", ms_pts=False)
    _clip(d / "rear.hevc", _at(CLOCKS), fmt="hevc", codec="libx265", ms_pts=False)
    for name in ("front.h264", "rear.hevc"):
        with av.open(str(d / name)) as c:
            s = c.streams.video[0]
            assert s.codec_context.framerate == 10  # declared in the SPS/VPS
            assert all(p.pts is None for p in c.demux(s))  # and no times at all
    report, rows, rejects = _ingest(tmp_path)
    assert rejects == [] and report.records_written == 2
    _assert_true_times(rows, ["front", "rear"])
    assert {c["codec"]: c["source_fps"] for r in rows for c in r["cameras"]} == {
        "h264": 10.0,
        "hevc": 10.0,
    }


def test_raw_streams_without_a_frame_rate_need_raw_fps(tmp_path):
    d = _session(tmp_path)
    _clip(d / "front.mp4", _at(CLOCKS), fmt="mp4")
    no_timing = {"x265-params": "vui-timing-info=0:log-level=error"}
    _clip(d / "rear.hevc", _at(CLOCKS), fmt="hevc", codec="libx265", options=no_timing)
    _clip(d / "left.h264", _at(CLOCKS), fmt="h264")  # ms time base: declares 1000 fps
    report, rows, rejects = _ingest(tmp_path)
    assert {(Path(r["source_uri"]).name, r["reason"]) for r in rejects} == {
        ("rear.hevc", "no_frame_rate"),
        ("left.h264", "no_frame_rate"),
    }
    assert all("--raw-fps" in r["message"] for r in rejects)
    assert "declaring 1000 fps" in next(r["message"] for r in rejects if "left" in r["source_uri"])
    _assert_true_times(rows, ["front"])  # the good camera keeps every frame
    assert report.records_in == report.records_written + report.records_rejected == 4

    out = subprocess.run(
        [
            *_cli(tmp_path, "cli"),
            "--window",
            "2",
            "--fps",
            "2",
            "--size",
            "160x120",
            "--raw-fps=10",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = read_version(Dataset.open(str(tmp_path / "cli"))).to_pylist()
    _assert_true_times(sorted(rows, key=lambda r: r["clip_id"]), ["front", "rear", "left"])

    bad = subprocess.run(
        [*_cli(tmp_path, "x"), "--raw-fps", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.strip().endswith(
        "--raw-fps 0.0: expected more than 0, at most 1000"
    )


def test_mp4_edit_list_delays_and_trims(tmp_path):
    d = _session(tmp_path)
    _clip(d / "front.mp4", _at(CLOCKS), fmt="mp4")
    _edit_listed(d / "left.mp4", delay_ms=700, trim_ms=500)
    with av.open(str(d / "left.mp4")) as c:
        s = c.streams.video[0]
        assert c.start_time == 700_000  # FFmpeg read the edit list
        assert sum(p.is_discard for p in c.demux(s)) == 5  # and hides the first 0.5 s
    report, rows, rejects = _ingest(tmp_path)
    # Shown from 700 to 4100 ms: the samples at 0 and 500 ms have no frame of it; a third
    # window holds only its last frame; the frame at 1000 ms is decoded from a keyframe the
    # edit list hides.
    assert rejects == [] and report.records_written == 3
    _assert_true_times(rows, ["front", "left"], {"left": (700, 4100)})
    left = [c for r in rows for c in r["cameras"] if c["camera"] == "left"]
    assert [c["dropped_frames"] for c in left] == [2, 0, 0]
    assert [len(r["telemetry"]["ts_us"]) for r in rows] == [4, 4, 1]


def test_every_container_in_one_session(tmp_path):
    d = _session(tmp_path)
    _clip(d / "front.mp4", _at(CLOCKS), fmt="mp4")
    _clip(d / "rear.ts", _at(CLOCKS, 1400), fmt="mpegts")
    _clip(d / "left.h264", _at(CLOCKS), fmt="h264", ms_pts=False)
    _clip(d / "right.hevc", _at(CLOCKS), fmt="hevc", codec="libx265", ms_pts=False)
    _edit_listed(d / "pillar.mp4", delay_ms=0, trim_ms=300)
    _clip(d / "cabin.mov", _at(CLOCKS), fmt="mov")
    _clip(d / "mirror.mkv", _at(CLOCKS), fmt="matroska")
    _clip(d / "roof.webm", _at(CLOCKS), fmt="webm", codec="libvpx-vp9")
    _clip(d / "bumper.webm", _at(CLOCKS), fmt="webm", codec="libvpx")
    _clip(d / "dash.avi", _at(CLOCKS), fmt="avi", codec="mpeg4", ms_pts=False)  # frame-based
    report, rows, rejects = _ingest(tmp_path)
    assert rejects == [] and report.records_written == len(rows) == 2
    cameras = [
        "front",
        "rear",
        "left",
        "right",
        "pillar",
        "cabin",
        "mirror",
        "roof",
        "bumper",
        "dash",
    ]
    # The trimmed camera shows its media from 300 ms on at time 0: it ends 300 ms early.
    _assert_true_times(rows, cameras, {"pillar": (0, 3600)})
    codecs = {c["camera"]: c["codec"] for r in rows for c in r["cameras"]}
    assert codecs == {
        "front": "h264",
        "rear": "h264",
        "left": "h264",
        "right": "hevc",
        "pillar": "h264",
        "cabin": "h264",
        "mirror": "h264",
        "roof": "vp9",
        "bumper": "vp8",
        "dash": "mpeg4",
    }
    assert all(r["quality"]["camera_skew_ms"] == 0 for r in rows)


def test_a_raw_stream_decodes_in_order_forward_again_and_back(tmp_path):
    """Frame numbers are display positions whatever is asked: forward, the same frame again
    (two windows' samples nearest one frame), and back to an earlier one (from the start)."""
    path = tmp_path / "front.hevc"
    _clip(path, _at(CLOCKS), fmt="hevc", codec="libx265", ms_pts=False)
    f = CameraFile(str(path), {}, T0)
    try:
        assert f.fps == 10 and list(f.pts) == list(range(40))
        for wanted in ([5, 12], [12, 20], [39], [3, 4], [0]):
            got = {n: read_clock(rgb) for n, rgb in f.decode(wanted, (160, 120))}
            assert got == {n: 100 * n for n in wanted}, wanted
    finally:
        f.close()
