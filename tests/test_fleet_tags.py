"""Clip tags from full-rate telemetry: each tag in exactly the window of its moment, the
thresholds settable, and the end to end path from SEI in the video to the clips' ``tags``."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from pipelines.ingest_fleet import IngestFleetConfig
from schemas.errors import UserError
from transforms.fleet.discover import SessionSpec
from transforms.fleet.session import FleetOptions, ingest_session
from transforms.fleet.tags import TagThresholds, tag_moments, window_tags
from transforms.fleet.telemetry import Telemetry
from transforms.samples.video import encode_mp4

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1e6)
N = 100  # frames at 10 fps: ten one-second windows


def _drive() -> Telemetry:
    """Ten seconds: autosteer from 1.0 s to 3.0 s; hard braking 5.0-5.3 s (0.3 s: tagged) and
    6.0-6.2 s (0.2 s: not), mild braking throughout 4 s; a stop at 7.5 s; the left blinker with
    the wheel turned 6 degrees at 8.5 s (a lane change), the right one with 2 (none)."""
    i = np.arange(N)
    speed = np.full(N, 10.0)
    speed[70:76] = [8.0, 6.0, 4.0, 2.0, 1.0, 0.2]
    speed[76:] = 0.0
    accel = np.where((i >= 40) & (i < 50), -3.9, 0.0)
    accel[50:54] = -4.5
    accel[60:63] = -4.5
    steering = np.zeros(N)
    steering[85:90] = 6.0
    steering[92:96] = 2.0
    frames = [
        {
            "autopilot_state": 2 if 10 <= k < 30 else 0,
            "blinker_on_left": 80 <= k < 90,
            "blinker_on_right": 90 <= k < 96,
        }
        for k in range(N)
    ]
    signals = {"speed_mps": speed, "accel_mps2": accel, "steering_deg": steering}
    return Telemetry(T0_US + i * 100_000, signals, [], frames=frames)


def _by_window(moments, reason=None):
    return [
        window_tags(moments, T0_US + k * 1_000_000, T0_US + (k + 1) * 1_000_000, reason)
        for k in range(N // 10)
    ]


def test_each_tag_in_exactly_its_window():
    moments = tag_moments(_drive(), TagThresholds())
    assert moments == [
        (T0_US + 1_000_000, "autopilot_engage"),
        (T0_US + 3_000_000, "autopilot_disengage"),
        (T0_US + 5_000_000, "hard_brake"),
        (T0_US + 7_500_000, "stop"),
        (T0_US + 8_500_000, "lane_change"),
    ]
    assert _by_window(moments, "sentry_aware_object_detection") == [
        sorted(["event:sentry_aware_object_detection", *tags])
        for tags in (
            [],
            ["autopilot_engage"],
            [],
            ["autopilot_disengage"],
            [],
            ["hard_brake"],
            [],
            ["stop"],
            ["lane_change"],
            [],
        )
    ]


def test_thresholds_are_settable():
    th = TagThresholds.parse(["hard_brake=-3.5", "hard_brake_s=0.15", "lane_change=7"])
    moments = tag_moments(_drive(), th)
    # -3.9 now counts (its run goes on into the -4.5 one: one brake from 4.0 s), and so does
    # the 0.2 s run at 6.0 s; 6 degrees is no lane change.
    brakes = [t - T0_US for t, tag in moments if tag == "hard_brake"]
    assert brakes == [4_000_000, 6_000_000]
    assert "lane_change" not in [tag for _, tag in moments]
    th = TagThresholds.parse(["stop_from=12"])
    assert "stop" not in [tag for _, tag in tag_moments(_drive(), th)]
    for bad in (["hard_brakes=-5"], ["hard_brake=x"], ["hard_brake=2"], ["stop_below=4"]):
        with pytest.raises(ValueError):
            TagThresholds.parse(bad)
    with pytest.raises(UserError, match="hard_brakes"):
        IngestFleetConfig(source="in", dataset="out", tag_thresholds=("hard_brakes=-5",))


def test_a_sidecar_gives_the_tags_it_can():
    tel = _drive()
    sidecar = Telemetry(tel.ts_us, tel.signals, [])  # no SEI frames: no autopilot, blinkers
    assert [tag for _, tag in tag_moments(sidecar, TagThresholds())] == ["hard_brake", "stop"]
    assert tag_moments(None, TagThresholds()) == []


def test_tags_end_to_end_from_sei_in_the_video(tmp_path):
    d = tmp_path / "veh" / "s1"
    d.mkdir(parents=True)
    sei = {
        k * 100: {
            "frame_seq_no": k + 1,
            "vehicle_speed_mps": 10.0,
            "gear_state": 1,
            "autopilot_state": 3 if k < 13 else 0,  # tacc, then none at 1.3 s
            "linear_acceleration_mps2_x": -5.0 if 2 <= k <= 6 else 0.0,  # 0.2-0.6 s
        }
        for k in range(20)
    }
    frames = [(k * 100, np.full((64, 64, 3), k * 9, np.uint8)) for k in range(20)]
    created = T0.isoformat().replace("+00:00", "Z")
    encode_mp4(
        str(d / "front.mp4"), frames, width=64, height=64, fps=10, sei=sei, creation_time=created
    )
    (d / "event.json").write_text(json.dumps({"reason": "user_interaction_honk"}))
    spec = SessionSpec(
        "generic",
        "veh",
        "s1",
        cameras={"front": [str(d / "front.mp4")]},
        event=str(d / "event.json"),
        name_time=T0,
    )
    rows = [p.row for p in ingest_session(spec, FleetOptions(window_s=1.0), {}) if p.row]
    assert [r["tags"] for r in rows] == [
        ["event:user_interaction_honk", "hard_brake"],
        ["autopilot_disengage", "event:user_interaction_honk"],
    ]
