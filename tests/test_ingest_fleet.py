"""`shardsmith ingest fleet` end to end: the right frames, exact windows, aligned cameras,
exact telemetry, quality metrics, every kind of broken input, other codecs, VFR."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tablegen import read_version
from videogen import encode_clip

from catalog import Dataset
from pipelines.ingest_fleet import IngestFleetConfig, run
from runners.execute import RunFailed
from runners.options import beam_options
from transforms.fleet.telemetry import load_telemetry
from transforms.samples import FleetSampleConfig, generate_fleet_sample, read_clock

BIN = Path(sys.executable).parent / "shardsmith"
CFG = FleetSampleConfig(
    vehicles=2,
    sessions=2,
    events=2,
    segments=2,
    duration_s=6.0,
    width=160,
    height=120,
    broken=True,
    seed=2,
)
WINDOW_S, FPS = 2.0, 2.0


def _us(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1e6)


def _ingest(source, dataset, options=None, **kw):
    kw = {"window_s": WINDOW_S, "fps": FPS, "size": (160, 120), "max_reject_rate": 1.0} | kw
    config = IngestFleetConfig(source=str(source), dataset=str(dataset), **kw)
    return run(config, options or beam_options("local", 1, ["--direct_running_mode=in_memory"]))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    truth = generate_fleet_sample(str(root), CFG)
    url = root.parent / (root.name + "-clips")
    report = _ingest(root, url, options=beam_options("local", 2, []))  # worker processes
    rows = read_version(Dataset.open(str(url))).to_pylist()
    return root, truth, report, rows


def _session_rows(rows, session):
    return sorted(
        (r for r in rows if r["session_id"] == session["session_id"]), key=lambda r: r["clip_id"]
    )


def _decode(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def test_sampled_frames_are_the_right_frames(fleet):
    _, truth, _, rows = fleet
    checked = 0
    for session in truth["sessions"]:
        t0 = _us(session["start_utc"])
        for row in _session_rows(rows, session):
            for cam in row["cameras"]:
                for ts, jpeg in zip(cam["frame_ts_us"], cam["frames"], strict=True):
                    clock = read_clock(_decode(jpeg))
                    black = session.get("black_s")
                    frozen = (session.get("frozen_s") or {}).get(cam["camera"])
                    t = (ts - t0) / 1e6
                    if black and black[0] <= t < black[1]:
                        continue
                    if frozen and frozen[0] <= t < frozen[1]:
                        assert clock == round(frozen[0] * 1000)
                    else:
                        assert clock == round((ts - t0) / 1000), (cam["source_uri"], ts)
                    checked += 1
    assert checked > 100


def test_windows_are_exact_and_cameras_aligned(fleet):
    _, truth, _, rows = fleet
    for session in truth["sessions"]:
        t0 = _us(session["start_utc"])
        mine = _session_rows(rows, session)
        assert len(mine) == math.ceil(session["duration_s"] / WINDOW_S)
        for k, row in enumerate(mine):
            assert row["clip_id"].endswith(f"/{k:05d}")
            assert int(row["start_time"].timestamp() * 1e6) == t0 + int(k * WINDOW_S * 1e6)
            samples = row["telemetry"]["ts_us"]
            assert samples == [t0 + int(k * WINDOW_S * 1e6) + j * 500_000 for j in range(4)]
            periods = [1e6 / cam["source_fps"] for cam in row["cameras"]]
            assert row["quality"]["camera_skew_ms"] * 1000 <= max(periods)  # within one frame
            for cam in row["cameras"]:
                for ts in cam["frame_ts_us"]:  # frames at most 2.5 periods apart still cover
                    assert min(abs(ts - s) for s in samples) <= 1.25e6 / cam["source_fps"]


def test_telemetry_is_resampled_exactly(fleet):
    root, truth, _, rows = fleet
    for session in truth["sessions"]:
        if session["layout"] != "generic":
            continue
        tel = load_telemetry(str(root / session["telemetry"]["file"]), {})
        for row in _session_rows(rows, session):
            at = np.array(row["telemetry"]["ts_us"])
            want = np.interp(at, tel.ts_us, tel.signals["speed_mps"])
            assert row["telemetry"]["speed_mps"] == pytest.approx(want.tolist(), abs=1e-9)
            assert all(v is not None for v in row["telemetry"]["lat"])
    # TeslaCam folders have no sidecar: saved and recent clips carry SEI, sentry clips none.
    tesla = [s for s in truth["sessions"] if s["layout"] == "teslacam"]
    assert {s["sei"] is None for s in tesla} == {True, False}
    for session in tesla:
        for row in _session_rows(rows, session):
            speeds = row["telemetry"]["speed_mps"]
            assert speeds is None if session["sei"] is None else None not in speeds


def test_quality_sees_black_and_frozen_segments(fleet):
    _, truth, _, rows = fleet
    for session in truth["sessions"]:
        mine = _session_rows(rows, session)
        if session.get("black_s"):  # black from 2.0 to 3.5 s: window 1 (2-4 s)
            assert mine[1]["quality"]["black_fraction"] > 0.5
            assert mine[0]["quality"]["black_fraction"] == 0.0
        if session.get("frozen_s"):  # front frozen 4.0-5.5 s: window 2 (4-6 s)
            assert mine[2]["quality"]["frozen_fraction"] > 0
            assert mine[0]["quality"]["frozen_fraction"] == 0.0


def test_broken_inputs_are_rejects_and_nothing_else_is_lost(fleet):
    _, truth, report, rows = fleet
    assert report.status == "committed"
    assert report.records_in == report.records_written + report.records_rejected
    assert report.rejects_by_reason == {
        "open_error": 1,
        "unsupported_container": 1,
        "empty_file": 1,
        "event_json_invalid": 1,
        "telemetry_bad_row": 1,
    }
    windows = sum(math.ceil(s["duration_s"] / WINDOW_S) for s in truth["sessions"])
    assert report.records_written == windows == len(rows)
    for b in truth["broken"]:
        session = (
            next(s for s in truth["sessions"] if any(c["file"] == b["file"] for c in s["cameras"]))
            if b["kind"] in ("truncated", "not_video", "empty")
            else None
        )
        if session is None:
            continue
        mine = _session_rows(rows, session)
        cams = {c["camera"] for r in mine for c in r["cameras"]}
        assert len(cams) >= len({c["camera"] for c in session["cameras"]}) - 1 >= 3
    event_sessions = [s for s in truth["sessions"] if s.get("event") and not s["event_json_broken"]]
    for s in event_sessions:
        row = _session_rows(rows, s)[0]
        assert row["event"]["reason"] == s["event"]["reason"]
        assert row["event"]["lat"] == float(s["event"]["est_lat"])


def _session_dir(root, name="veh-9/2026-11-20T10-00-00Z"):
    d = root / "generic" / name
    d.mkdir(parents=True)
    return d


def test_other_codecs_and_variable_frame_rate(tmp_path):
    d = _session_dir(tmp_path)
    encode_clip(d / "front.avi", list(range(0, 4000, 100)), fmt="avi", codec="mpeg4")
    encode_clip(
        d / "rear.mkv", list(range(40, 3900, 100)), fmt="matroska", codec="libx265", camera="rear"
    )
    vfr = sorted({int(t) for t in np.cumsum(np.random.default_rng(3).integers(30, 140, 60))})
    encode_clip(d / "left.mp4", [t for t in vfr if t < 3800], camera="left")
    report = _ingest(tmp_path, tmp_path / "clips")
    rows = read_version(Dataset.open(str(tmp_path / "clips"))).to_pylist()
    assert report.rejects_by_reason == {}
    assert report.records_written == len(rows) == 2
    t0 = int(
        datetime(2026, 11, 20, 10, tzinfo=__import__("datetime").timezone.utc).timestamp() * 1e6
    )
    codecs = {c["camera"]: c["codec"] for r in rows for c in r["cameras"]}
    assert codecs == {"front": "mpeg4", "rear": "hevc", "left": "h264"}
    for row in rows:
        for cam in row["cameras"]:
            for ts, jpeg in zip(cam["frame_ts_us"], cam["frames"], strict=True):
                assert read_clock(_decode(jpeg)) == round((ts - t0) / 1000)


def test_mid_file_break_keeps_earlier_windows_and_blur_is_measured(tmp_path):
    d = _session_dir(tmp_path)
    encode_clip(d / "front.mp4", list(range(0, 6000, 100)), faststart=True)
    encode_clip(d / "left.mp4", list(range(0, 6000, 100)), camera="left", blur=True)
    data = (d / "front.mp4").read_bytes()
    (d / "front.mp4").write_bytes(data[: len(data) * 2 // 3])
    report = _ingest(tmp_path, tmp_path / "clips")
    rows = sorted(
        read_version(Dataset.open(str(tmp_path / "clips"))).to_pylist(), key=lambda r: r["clip_id"]
    )
    assert "truncated" in report.rejects_by_reason  # where the data ends, at what time
    assert set(report.rejects_by_reason) <= {"truncated", "decode_error"}
    assert len(rows) == 3  # windows 0-2 s, 2-4 s, 4-6 s: the left camera covers them all
    fronts = [len(c["frames"]) for r in rows for c in r["cameras"] if c["camera"] == "front"]
    assert fronts[0] == 4 and sum(fronts) < 12  # front frames before the break are kept
    sharp = [r["quality"]["blur_score"] for r in rows if len(r["cameras"]) == 2]
    only_left = [r["quality"]["blur_score"] for r in rows if len(r["cameras"]) == 1]
    assert only_left and sharp and max(only_left) < min(sharp)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("front.mp4", b"", "empty_file"),
        (
            "front.mp4",
            bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
            "unsupported_container",
        ),
        (
            "front.mp4",
            b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:2.0,\n/etc/passwd\n",
            "unsupported_container",
        ),
        ("front.mp4", b"ffconcat version 1.0\nfile '/etc/hostname'\n", "unsupported_container"),
    ],
)
def test_hostile_files_never_reach_the_decoder(tmp_path, name, content, reason):
    d = _session_dir(tmp_path)
    (d / name).write_bytes(content)
    encode_clip(d / "rear.mp4", list(range(0, 2000, 100)), camera="rear")
    report = _ingest(tmp_path, tmp_path / "clips")
    assert report.rejects_by_reason == {reason: 1} and report.records_written == 1


def test_unsupported_codec_is_a_reject(tmp_path):
    d = _session_dir(tmp_path)
    encode_clip(d / "front.avi", list(range(0, 2000, 100)), fmt="avi", codec="mpeg4")
    data = (d / "front.avi").read_bytes().replace(b"FMP4", b"ZZZZ")
    (d / "front.avi").write_bytes(data)
    encode_clip(d / "rear.mp4", list(range(0, 2000, 100)), camera="rear")
    report = _ingest(tmp_path, tmp_path / "clips")
    assert report.records_written == 1 and report.records_rejected == 1
    assert set(report.rejects_by_reason) <= {"unsupported_codec", "decode_error", "open_error"}


def test_incremental_and_cli(fleet, tmp_path):
    root, _, _, _ = fleet
    url = tmp_path / "clips"
    first = _ingest(root, url, incremental=True)
    again = _ingest(root, url, incremental=True)
    assert first.status == "committed" and again.status == "nothing-new"
    out = subprocess.run(
        [str(BIN), "ingest", "fleet", str(root), "--to", str(url), "--incremental"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "nothing new: all 6 sessions" in out.stdout
    out = subprocess.run(
        [
            str(BIN),
            "ingest",
            "fleet",
            str(root),
            "--to",
            str(tmp_path / "x"),
            "--jpeg-quality",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--jpeg-quality 0: expected 1 to 95" in out.stderr
    with pytest.raises(RunFailed):  # the sample's broken files are far more than 1%
        _ingest(root, tmp_path / "strict", max_reject_rate=0.01)
