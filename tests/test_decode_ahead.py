"""``decode_ahead``: the cameras of a session decode in threads of their own; the pieces come
in window order, a consumer that stops early stops the threads, and a camera's failure
reaches the consumer."""

from __future__ import annotations

import threading

import pytest

from transforms.fleet import ahead, discover_sessions, ingest_session
from transforms.fleet.session import FleetOptions
from transforms.samples import FleetSampleConfig, generate_fleet_sample

CFG = FleetSampleConfig(
    vehicles=1, sessions=1, events=0, duration_s=8.0, width=96, height=64, layout="generic"
)
OPTIONS = FleetOptions(window_s=2.0, fps=2.0, size=(48, 32))


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    root = tmp_path_factory.mktemp("ahead")
    generate_fleet_sample(str(root), CFG)
    (only,) = discover_sessions(str(root))
    return only


def _camera_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camera-")]


def test_windows_in_order_with_every_camera(spec):
    rows = [p.row for p in ingest_session(spec, OPTIONS, {}) if p.row]
    assert [r["clip_id"][-5:] for r in rows] == ["00000", "00001", "00002", "00003"]
    assert all(len(r["cameras"]) == 4 for r in rows)
    assert not _camera_threads()


def test_stopping_early_stops_the_threads(spec):
    pieces = ingest_session(spec, OPTIONS, {})
    next(pieces)  # input problems
    assert next(pieces).row is not None
    assert _camera_threads()  # decoding ahead
    pieces.close()
    assert not _camera_threads()


def test_a_camera_failure_reaches_the_consumer(spec, monkeypatch):
    real = ahead.sample_window

    def failing(cam, ws, we, samples, options):
        if cam.name == "left" and ws > min(cam.ts):
            raise RuntimeError("left camera failed")
        return real(cam, ws, we, samples, options)

    monkeypatch.setattr(ahead, "sample_window", failing)
    with pytest.raises(RuntimeError, match="left camera failed"):
        list(ingest_session(spec, OPTIONS, {}))
    assert not _camera_threads()
