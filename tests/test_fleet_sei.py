"""Tesla SEI telemetry: the wire format, every layout and codec, round-trips matched by
``frame_seq_no``, Tesla's own extractor's layout, broken SEI, SEI against a sidecar."""

from __future__ import annotations

import struct
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from videogen import mp4_box

from schemas.evolution import check_evolution
from schemas.kinds import CLIPS
from schemas.validate import conform_table
from transforms.fleet.discover import SessionSpec, discover_sessions
from transforms.fleet.sei import AUTOPILOT, SeiError, decode_metadata, packet_sei
from transforms.fleet.session import FleetOptions, ingest_session
from transforms.fleet.telemetry import Telemetry
from transforms.fleet.telemetry_ext import resample_ext
from transforms.fleet.video import CameraFile
from transforms.samples import FleetSampleConfig, generate_fleet_sample
from transforms.samples.sei import encode_metadata, tesla_sei_nal, with_sei
from transforms.samples.video import encode_mp4

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1e6)
FRAMES = 20  # 10 fps: two seconds


def _fields(i: int) -> dict:
    """Frame ``i``'s telemetry; lat/lon/accel hold zero bytes (emulation prevention)."""
    return {
        "version": 1,
        "gear_state": 1,
        "frame_seq_no": 5000 + i,
        "vehicle_speed_mps": 10.0 + 0.37 * i,
        "accelerator_pedal_position": 0.1 * (i % 7),
        "steering_wheel_angle": -12.5 + i,
        "blinker_on_left": i % 3 == 0,
        "blinker_on_right": i % 5 == 0,
        "brake_applied": i > 15,
        "autopilot_state": i % 4,
        "latitude_deg": 37.0 + i * 1e-5,
        "longitude_deg": -122.0 - i * 1e-5,
        "heading_deg": 90.0,
        "linear_acceleration_mps2_x": -0.5 * i,
        "linear_acceleration_mps2_y": 0.25,
        "linear_acceleration_mps2_z": 9.75,
    }


def _expected(fields: dict) -> dict:
    """What a decoder gives: floats through float32, proto3 defaults (0/false) absent."""
    out = {}
    for name, value in fields.items():
        if name in ("vehicle_speed_mps", "accelerator_pedal_position", "steering_wheel_angle"):
            value = float(np.float32(value))
        if value:
            out[name] = value
    return out


def _frames(n: int = FRAMES):
    return [(i * 100, np.full((64, 64, 3), (i * 9) % 255, np.uint8)) for i in range(n)]


def _encode(path, codec="libx264", fmt="mp4", sei=None, creation_time=None):
    sei = {i * 100: _fields(i) for i in range(FRAMES)} if sei is None else sei
    encode_mp4(
        str(path),
        _frames(),
        width=64,
        height=64,
        fps=10,
        sei=sei,
        codec=codec,
        container_format=fmt,
        creation_time=creation_time,
    )


def test_wire_format_fields_unknown_fields_and_errors():
    message = encode_metadata(_fields(3))
    assert decode_metadata(message) == _expected(_fields(3))
    # Unknown fields of every wire type are skipped (a newer firmware's additions).
    unknown = bytes([0x88, 0x01, 0x2A]) + bytes([0x92, 0x01, 2, 0xAB, 0xCD])
    unknown += bytes([0x99, 0x01]) + struct.pack("<d", 1.0) + bytes([0x9D, 0x01]) + b"\0\0\0\0"
    assert decode_metadata(unknown + message) == _expected(_fields(3))
    assert decode_metadata(b"") == {}
    for broken in (message[:-3], b"\x18", b"\x18\xff", b"\x25\x00\x00", b"\x20\x01", b"\x0b"):
        with pytest.raises(SeiError):
            decode_metadata(broken)


def test_emulation_prevention_in_the_nal_is_removed():
    message = encode_metadata({"frame_seq_no": 1, "latitude_deg": 37.0, "heading_deg": 1.0})
    assert b"\x00\x00\x00" in message
    nal = tesla_sei_nal(message)
    assert b"\x00\x00\x00" not in nal and b"\x00\x00\x03" in nal
    slice_ = b"\x00\x00\x00\x01\x65\x88\x84"  # an IDR slice's start
    packet = with_sei(slice_, nal)
    assert packet.startswith(b"\x00\x00\x00\x01\x06\x05")
    assert packet_sei(packet, 0, False) == [message]
    length_prefixed = len(nal).to_bytes(4, "big") + nal + (3).to_bytes(4, "big") + slice_[4:]
    assert packet_sei(length_prefixed, 4, False) == [message]


@pytest.mark.parametrize(
    ("codec", "fmt"),
    [
        ("libx264", "mp4"),
        ("libx265", "mp4"),
        ("libx264", "matroska"),
        ("libx264", "mpegts"),
        ("libx265", "mpegts"),
        ("libx264", "h264"),
        ("libx265", "hevc"),
    ],
)
def test_round_trip_per_frame_by_frame_seq_no(tmp_path, codec, fmt):
    path = tmp_path / f"front.{fmt}"
    _encode(path, codec, fmt)
    cf = CameraFile(str(path), {}, T0_US, raw_fps=10)
    try:
        assert len(cf.pts) == FRAMES and cf.sei_invalid == []
        by_seq = {m["frame_seq_no"]: (ts, m) for ts, m in cf.sei}
        assert sorted(by_seq) == [5000 + i for i in range(FRAMES)]
        for i in range(FRAMES):
            ts, m = by_seq[5000 + i]
            assert m == _expected(_fields(i))
            assert ts == cf.frame_ts_us[i]  # on the frame that carried it
    finally:
        cf.close()


def _tesla_extractor(data: bytes) -> list[dict]:
    """The walk of Tesla's own extractor (dashcam-mp4.js ``extractSeiMessages``): 4-byte
    length-prefixed NAL units through ``mdat``; type 6 with payload type 5; skip the ``0x42``
    run from byte 3, expect ``0x69``, unescape up to the last byte."""
    at, size = mp4_box(data, "mdat")
    cursor, end, out = at + 8, at + size, []
    while cursor + 4 <= end:
        n = int.from_bytes(data[cursor : cursor + 4], "big")
        cursor += 4
        nal = data[cursor : cursor + n]
        cursor += n
        if n >= 2 and nal[0] & 0x1F == 6 and nal[1] == 5:
            i = 3
            while i < len(nal) and nal[i] == 0x42:
                i += 1
            if i <= 3 or nal[i] != 0x69:
                continue  # another SEI (the encoder's own): the extractor gives null
            body = nal[i + 1 : len(nal) - 1]
            out.append(decode_metadata(body.replace(b"\x00\x00\x03", b"\x00\x00")))
    return out


def test_generated_layout_is_the_one_teslas_extractor_reads(tmp_path):
    path = tmp_path / "front.mp4"
    _encode(path)
    found = _tesla_extractor(path.read_bytes())
    assert sorted(found, key=lambda m: m["frame_seq_no"]) == [
        _expected(_fields(i)) for i in range(FRAMES)
    ]


def _session(tmp_path, front_sei, rear_sei=None, sidecar=False):
    d = tmp_path / "veh" / "s1"
    d.mkdir(parents=True)
    created = T0.isoformat().replace("+00:00", "Z")
    _encode(d / "front.mp4", sei=front_sei, creation_time=created)
    _encode(d / "rear.mp4", sei=rear_sei or {}, creation_time=created)
    tel = None
    if sidecar:
        tel = d / "telemetry.csv"
        rows = [f"{T0_US + k * 50_000},{99.0 + k},{5.0}" for k in range(45)]
        tel.write_text("timestamp,speed_mps,steering_deg\n" + "\n".join(rows) + "\n")
    spec = SessionSpec(
        "generic",
        "veh",
        "s1",
        cameras={"front": [str(d / "front.mp4")], "rear": [str(d / "rear.mp4")]},
        telemetry=str(tel) if tel else None,
        name_time=T0,
    )
    pieces = list(ingest_session(spec, FleetOptions(window_s=1.0, fps=2.0), {}))
    rows = [p.row for p in pieces if p.row is not None]
    rejects = [r for p in pieces for r in p.rejects]
    assert sum(p.tally["records_in"] for p in pieces) == len(rows) + len(rejects)
    return rows, rejects


def test_sei_wins_over_a_sidecar(tmp_path):
    rows, rejects = _session(tmp_path, None, sidecar=True)
    assert rejects == [] and len(rows) == 2
    for row in rows:
        tel = row["telemetry"]
        for t, speed, steer, accel in zip(
            tel["ts_us"], tel["speed_mps"], tel["steering_deg"], tel["accel_mps2"], strict=True
        ):
            i = (t - T0_US) // 100_000  # samples fall on frames: the frame's own values
            assert speed == pytest.approx(float(np.float32(10.0 + 0.37 * i)))
            assert steer == pytest.approx(-12.5 + i)
            assert accel == pytest.approx(-0.5 * i)


def test_no_sei_is_normal_and_a_sidecar_still_counts(tmp_path):
    rows, rejects = _session(tmp_path, {}, sidecar=True)
    assert rejects == [] and len(rows) == 2
    assert rows[0]["telemetry"]["speed_mps"][0] == pytest.approx(99.0)
    rows, rejects = _session(tmp_path / "bare", {})
    assert rejects == [] and rows[0]["telemetry"]["speed_mps"] is None


def test_corrupt_sei_is_a_reject_with_file_and_frame_and_loses_no_frame(tmp_path):
    sei = {i * 100: _fields(i) for i in range(FRAMES)}
    sei[700] = encode_metadata(_fields(7))[:-3]  # cut inside a double
    rows, rejects = _session(tmp_path, sei)
    assert [(r["reason"], r["locator"]) for r in rejects] == [("sei_invalid", "frame 7 (t=0.700s)")]
    assert rejects[0]["source_uri"].endswith("front.mp4")
    front = [c for row in rows for c in row["cameras"] if c["camera"] == "front"]
    assert sum(len(c["frames"]) for c in front) == 4  # every sample, the broken frame's too
    speeds = [s for row in rows for s in row["telemetry"]["speed_mps"]]
    assert None not in speeds  # the frames around it carry the telemetry on


def test_telemetry_ext_states_hold_numbers_interpolate():
    frames = [_fields(i) for i in range(4)]
    tel = Telemetry(np.array([0, 100, 200, 300]) + T0_US, {}, [], frames=frames)
    at = np.array([-1, 0, 50, 100, 299, 300, 301]) + T0_US
    ext = resample_ext(tel, at)
    assert ext["gear"] == [None, "drive", "drive", "drive", "drive", "drive", None]
    # autopilot_state i % 4: none, self_driving, autosteer, tacc -- the frame at or before.
    assert ext["autopilot"] == [None, "none", "none", "self_driving", "autosteer", "tacc", None]
    assert ext["blinker_left"] == [None, True, True, False, False, True, None]
    assert ext["brake"] == [None, False, False, False, False, False, None]
    assert ext["accel_pedal"][2] == pytest.approx(0.05, abs=1e-6)  # halfway 0 -> 0.1
    assert ext["lateral_accel_mps2"][1:6] == [0.25] * 5
    assert ext["accel_pedal"][0] is None and ext["accel_pedal"][-1] is None
    assert resample_ext(Telemetry(tel.ts_us, {}, []), at) is None  # a sidecar: none


def test_clips_get_telemetry_ext_and_old_datasets_still_open(tmp_path):
    rows, _ = _session(tmp_path, None)
    for row in rows:
        ext = row["telemetry_ext"]
        for k, t in enumerate(row["telemetry"]["ts_us"]):
            i = (t - T0_US) // 100_000
            assert ext["gear"][k] == "drive"
            assert ext["autopilot"][k] == AUTOPILOT[i % 4]
            assert ext["blinker_right"][k] == (i % 5 == 0)
            assert ext["brake"][k] == (i > 15)
            assert ext["accel_pedal"][k] == pytest.approx(float(np.float32(0.1 * (i % 7))))
    table = conform_table(pa.Table.from_pylist(rows, schema=CLIPS.schema), CLIPS)
    assert table.column("telemetry_ext").null_count == 0
    old = pa.schema([f for f in CLIPS.schema if f.name != "telemetry_ext"])
    assert check_evolution(old, CLIPS) == ("telemetry_ext",)
    bare, _ = _session(tmp_path / "bare", {})
    assert {r["telemetry_ext"] is None for r in bare} == {True}


def test_the_sample_writes_teslacam_sessions_with_sei(tmp_path):
    cfg = FleetSampleConfig(events=3, duration_s=3.0, cameras=2, layout="teslacam", seed=4)
    truth = generate_fleet_sample(str(tmp_path), cfg)
    for session in truth["sessions"]:
        t0 = datetime.fromisoformat(session["start_utc"].replace("Z", "+00:00"))
        t0_us = int(t0.timestamp() * 1e6)
        for cam in session["cameras"]:
            cf = CameraFile(str(tmp_path / cam["file"]), {}, 0)
            try:
                if session["folder"] == "SentryClips":  # a parked car: no SEI
                    assert cf.sei == [] and session["sei"] is None
                    continue
                assert len(cf.sei) == len(cf.pts) == cam["frames"]
                for ts, m in cf.sei:  # the car counts frames from the session's start
                    seq = m.get("frame_seq_no", 0)  # proto3: 0 is left out
                    assert seq == round((ts - t0_us) / 1e6 * cfg.fps)
                    on = (ts - t0_us) / 1e6 < session["sei"]["disengage_s"]
                    assert m.get("autopilot_state", 0) == (2 if on else 0)
            finally:
                cf.close()
    spec = next(
        s for s in discover_sessions(str(tmp_path), layout="teslacam") if "Saved" in s.files[0]
    )
    session = next(s for s in truth["sessions"] if s["folder"] == "SavedClips")
    rows = [p.row for p in ingest_session(spec, FleetOptions(window_s=1.0), {}) if p.row]
    t0_us = int(
        datetime.fromisoformat(session["start_utc"].replace("Z", "+00:00")).timestamp() * 1e6
    )
    off = [r["start_time"] for r in rows if "autopilot_disengage" in r["tags"]]
    assert len(off) == 1 and off[0] == t0_us + int(session["sei"]["disengage_s"]) * 1_000_000
    assert all(f"event:{session['event']['reason']}" in r["tags"] for r in rows)
    assert all(r["telemetry"]["speed_mps"][0] is not None for r in rows)
