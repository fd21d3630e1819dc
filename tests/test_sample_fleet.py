"""The fleet sample: decodable H.264 sessions whose pixels tell their time, consistent telemetry."""

from __future__ import annotations

import csv
import json
import math
import os
from datetime import datetime

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from transforms.samples import FleetSampleConfig, generate_fleet_sample, read_clock
from transforms.samples.video import rgb_to_yuv420p

CFG = FleetSampleConfig(
    vehicles=2,
    sessions=2,
    events=2,
    segments=2,
    duration_s=6.0,
    fps=10.0,
    width=160,
    height=120,
    broken=True,
    seed=3,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("fleet"))
    return root, generate_fleet_sample(root, CFG)


def _cameras(truth, broken=False):
    for s in truth["sessions"]:
        for cam in s["cameras"]:
            if bool(cam["broken"]) == broken:
                yield s, cam


def _decode(path):
    with av.open(path) as c:
        stream = c.streams.video[0]
        start = float(stream.start_time * stream.time_base)
        frames = [
            (round(float(f.pts * f.time_base) * 1000), f.to_ndarray(format="rgb24"))
            for f in c.decode(stream)
        ]
        return stream.codec_context.name, start, c.metadata, frames


def test_layouts_on_disk(sample):
    root, truth = sample
    assert os.path.exists(os.path.join(root, "_SAMPLE.json"))
    tesla = [s for s in truth["sessions"] if s["layout"] == "teslacam"]
    generic = [s for s in truth["sessions"] if s["layout"] == "generic"]
    assert len(tesla) == 2 and len(generic) == 4
    for s in tesla:
        for cam in s["cameras"]:
            parts = cam["file"].split("/")
            assert (
                parts[:3] == ["teslacam", "TeslaCam", s["folder"]] and parts[3] == s["session_id"]
            )
            assert parts[4].endswith(f"-{cam['camera']}.mp4")
            datetime.strptime(parts[4][:19], "%Y-%m-%d_%H-%M-%S")
    for s in generic:
        assert {c["file"] for c in s["cameras"]} == {
            f"generic/{s['vehicle_id']}/{s['session_id']}/{c}.mp4"
            for c in ("front", "rear", "left", "right")
        }


def test_videos_decode_and_show_their_time(sample):
    root, truth = sample
    checked = 0
    for session, cam in _cameras(truth):
        codec, start, metadata, frames = _decode(os.path.join(root, cam["file"]))
        assert codec == "h264" and len(frames) == cam["frames"] > 0
        assert frames[0][1].shape == (CFG.height, CFG.width, 3)
        assert abs(start * 1000 - cam["offset_ms"]) <= 1
        assert metadata["creation_time"].startswith(
            session["start_utc"][:19] if session["layout"] == "generic" else "2026-11-"
        )
        base_ms = round(cam.get("segment", 0) * CFG.duration_s * 1000)
        black = session.get("black_s")
        frozen = (session.get("frozen_s") or {}).get(cam["camera"])
        for pts_ms, rgb in frames:
            t = (base_ms + pts_ms) / 1000
            if black and black[0] <= t < black[1]:
                assert rgb.mean() < 20  # a tunnel: the frame is black
            elif frozen and frozen[0] <= t < frozen[1]:
                assert read_clock(rgb) == round(frozen[0] * 1000)  # the picture stopped
            else:
                assert read_clock(rgb) == base_ms + pts_ms
            checked += 1
    assert checked > 1000


def test_cameras_start_apart_and_rear_runs_slower(sample):
    _, truth = sample
    for s in truth["sessions"]:
        offsets = {c["offset_ms"] for c in s["cameras"]}
        assert len(offsets) > 1 and max(offsets) < 400
    rear = [c for s, c in _cameras(truth) if c["camera"] == "rear"]
    assert rear and all(c["fps"] == CFG.fps * 0.75 for c in rear)


def test_keyframe_every_second(sample):
    root, truth = sample
    _, cam = next(_cameras(truth))
    with av.open(os.path.join(root, cam["file"])) as c:
        keys = [i for i, p in enumerate(c.demux(video=0)) if p.size and p.is_keyframe]
    assert keys[:3] == [0, 10, 20]


def _haversine(lat1, lon1, lat2, lon2):
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def _read_telemetry(path, fmt):
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    with open(path, encoding="utf-8") as f:
        if fmt == "csv":
            return list(csv.DictReader(f))
        return [json.loads(line) for line in f]


def test_telemetry_is_consistent_over_time(sample):
    root, truth = sample
    formats = set()
    for s in truth["sessions"]:
        if s["layout"] != "generic":
            continue
        tel = s["telemetry"]
        formats.add(tel["format"])
        rows = _read_telemetry(os.path.join(root, tel["file"]), tel["format"])
        assert len(rows) == tel["rows"]
        bad = set(tel["bad_rows"])
        good = [r for i, r in enumerate(rows) if i not in bad]
        for i in bad:
            assert rows[i]["speed_kph"] == "n/a"
        speeds = np.array([float(r["speed_kph"]) for r in good]) / 3.6
        assert speeds.min() >= 0 and speeds.max() <= 34
        lat = [float(r["lat"]) for r in good]
        lon = [float(r["lon"]) for r in good]
        travelled = sum(
            _haversine(lat[i], lon[i], lat[i + 1], lon[i + 1]) for i in range(len(lat) - 1)
        )
        integrated = float(np.sum(speeds[1:]) * 0.1)
        assert travelled == pytest.approx(integrated, rel=0.1, abs=0.5)
    assert formats == {"csv", "jsonl", "parquet"}


def test_event_json_and_broken_inputs(sample):
    root, truth = sample
    kinds = {b["kind"] for b in truth["broken"]}
    assert kinds == {"truncated", "not_video", "empty", "bad_json", "bad_telemetry_row"}
    for b in truth["broken"]:
        path = os.path.join(root, b["file"])
        if b["kind"] == "empty":
            assert os.path.getsize(path) == 0
        elif b["kind"] in ("not_video", "truncated"):
            with pytest.raises(av.error.FFmpegError):
                _decode(path)
        elif b["kind"] == "bad_json":
            with pytest.raises(json.JSONDecodeError), open(path) as f:
                json.load(f)
    good = [s for s in truth["sessions"] if s.get("event") and not s["event_json_broken"]]
    assert good
    for s in good:
        with open(
            os.path.join(root, "teslacam/TeslaCam", s["folder"], s["session_id"], "event.json")
        ) as f:
            event = json.load(f)
        assert set(event) == {"timestamp", "city", "est_lat", "est_lon", "reason", "camera"}
        assert isinstance(event["est_lat"], str) and -90 < float(event["est_lat"]) < 90
        assert (
            event["timestamp"]
            == datetime.strptime(s["session_id"], "%Y-%m-%d_%H-%M-%S").isoformat()
        )


def test_same_seed_same_bytes(tmp_path):
    cfg = FleetSampleConfig(
        vehicles=1, sessions=1, events=1, segments=1, duration_s=2, width=96, height=64, seed=5
    )
    a, b = tmp_path / "a", tmp_path / "b"
    generate_fleet_sample(str(a), cfg)
    generate_fleet_sample(str(b), cfg)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) > 5
    differ = [_difference(f, (a / f).read_bytes(), (b / f).read_bytes()) for f in files]
    assert [d for d in differ if d] == []


def _difference(name, first: bytes, second: bytes) -> str:
    """Where two generations of one file part (for a failure worth reading), '' if equal."""
    if first == second:
        return ""
    at = next((i for i, (x, y) in enumerate(zip(first, second, strict=False)) if x != y), None)
    at = min(len(first), len(second)) if at is None else at
    return f"{name}: {len(first)} vs {len(second)} bytes, first difference at byte {at}"


def test_rgb_to_yuv_matches_ffmpeg(tmp_path):
    """Our colour conversion (used for bit-identical samples) agrees with libswscale's."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    ours = rgb_to_yuv420p(rgb)
    theirs = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    assert np.abs(ours[:64].astype(int) - theirs.to_ndarray()[:64]).max() <= 2
