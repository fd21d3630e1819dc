"""What a Tesla reports per frame (``SeiMetadata``) for a simulated track, with a few controls.

The track (``transforms.samples.telemetry``) gives speed, steering, position, heading and
longitudinal acceleration; lateral acceleration follows from speed and steering (bicycle
model). On top, a ``DriveScript``: autosteer engaged from the start until ``disengage_s`` (a
driver taking over, the tag a data engine looks for first), and the left blinker on for
``blinker_s`` (with the wheel moving: a lane change). The brake is on while decelerating harder
than 1.5 m/s²; the pedal (percent) follows positive acceleration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from transforms.samples.telemetry import Track

__all__ = ["DriveScript", "drive_script", "sei_fields"]

_WHEELBASE_M = 2.9
_STEERING_RATIO = 15.0


@dataclass(frozen=True)
class DriveScript:
    """Controls over a session: seconds from its start."""

    disengage_s: float
    blinker_s: tuple[float, float]


def drive_script(rng: np.random.Generator, duration_s: float) -> DriveScript:
    """Autosteer off somewhere in the middle; the blinker on for 2 s before it."""
    disengage = float(np.round(rng.uniform(0.45, 0.75) * duration_s, 1))
    start = float(np.round(rng.uniform(0.1, 0.3) * duration_s, 1))
    return DriveScript(disengage, (start, start + 2.0))


def sei_fields(track: Track, script: DriveScript, t: float, frame_seq_no: int) -> dict:
    """The ``SeiMetadata`` fields of the frame ``t`` seconds into the session."""
    speed = float(np.interp(t, track.t_s, track.speed_mps))
    steering = float(np.interp(t, track.t_s, track.steering_deg))
    accel = float(np.interp(t, track.t_s, track.accel_mps2))
    heading = np.degrees(np.unwrap(np.radians(track.heading_deg)))
    lateral = speed * speed * math.tan(math.radians(steering / _STEERING_RATIO)) / _WHEELBASE_M
    return {
        "version": 1,
        "gear_state": 1,  # drive
        "frame_seq_no": frame_seq_no,
        "vehicle_speed_mps": speed,
        "accelerator_pedal_position": round(min(100.0, max(0.0, accel * 40.0)), 1),
        "steering_wheel_angle": steering,
        "blinker_on_left": script.blinker_s[0] <= t < script.blinker_s[1],
        "brake_applied": accel < -1.5,
        "autopilot_state": 2 if t < script.disengage_s else 0,  # autosteer, then none
        "latitude_deg": float(np.interp(t, track.t_s, track.lat)),
        "longitude_deg": float(np.interp(t, track.t_s, track.lon)),
        "heading_deg": float(np.interp(t, track.t_s, heading)) % 360.0,
        "linear_acceleration_mps2_x": round(accel, 4),
        "linear_acceleration_mps2_y": round(lateral, 4),
    }
