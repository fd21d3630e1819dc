"""A session's telemetry from its cameras' Tesla SEI (per frame), in place of a sidecar's.

Every camera of a Tesla carries the same car state; one camera's series is used, the front
camera's when it has SEI (it records whenever the car does), else the camera with the most SEI
frames. A session without SEI (a parked car, older firmware, another make) has none: normal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transforms.fleet.telemetry import Telemetry
from transforms.fleet.video import CameraFile

__all__ = ["SEI_SIGNALS", "sei_telemetry"]

# schema signal <- SeiMetadata field. ``accel_mps2`` is longitudinal (the car's x axis).
SEI_SIGNALS = {
    "speed_mps": "vehicle_speed_mps",
    "steering_deg": "steering_wheel_angle",
    "lat": "latitude_deg",
    "lon": "longitude_deg",
    "heading_deg": "heading_deg",
    "accel_mps2": "linear_acceleration_mps2_x",
}


def sei_telemetry(cameras: Sequence[tuple[str, Sequence[CameraFile]]]) -> Telemetry | None:
    """Telemetry from the SEI of one camera's files (``(name, files)`` pairs), or None when
    no camera has any. A field a message leaves out is protobuf's default, 0 (or false)."""
    counts = {name: sum(len(f.sei) for f in files) for name, files in cameras}
    if not any(counts.values()):
        return None
    best = "front" if counts.get("front") else max(counts, key=lambda n: (counts[n], n == "front"))
    frames = sorted(
        (item for name, files in cameras if name == best for f in files for item in f.sei),
        key=lambda item: item[0],
    )
    ts = np.array([t for t, _ in frames], dtype=np.int64)
    keep = np.concatenate([[True], np.diff(ts) > 0])  # one message per instant
    fields = [m for m, k in zip((m for _, m in frames), keep, strict=True) if k]
    signals = {
        name: np.array([float(m.get(field, 0.0)) for m in fields])
        for name, field in SEI_SIGNALS.items()
    }
    return Telemetry(ts[keep], signals, [], frames=fields)
