"""A vehicle's motion, consistent over time: speed, steering, heading, GPS track, acceleration.

A kinematic bicycle model driven by smooth pseudo-random inputs: heading integrates the yaw rate
that speed and steering imply, and the GPS track integrates speed along the heading, so every
signal agrees with the others (and with the video, which draws the same speed and steering).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Track", "simulate_track"]

_WHEELBASE_M = 2.9
_STEERING_RATIO = 15.0
_M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class Track:
    """Signals sampled every ``1 / rate_hz`` seconds from the session start (``t_s``)."""

    t_s: np.ndarray
    speed_mps: np.ndarray
    steering_deg: np.ndarray
    heading_deg: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    accel_mps2: np.ndarray
    distance_m: np.ndarray

    def at(self, t: float) -> tuple[float, float, float]:
        """(speed m/s, steering deg, distance m) at ``t`` seconds, linearly interpolated."""
        return (
            float(np.interp(t, self.t_s, self.speed_mps)),
            float(np.interp(t, self.t_s, self.steering_deg)),
            float(np.interp(t, self.t_s, self.distance_m)),
        )


def _smooth(rng: np.random.Generator, t: np.ndarray, scale: float, periods=(23.0, 9.0, 4.0)):
    out = np.zeros_like(t)
    for period in periods:
        phase = rng.uniform(0, 2 * math.pi)
        out += scale * rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * t / period + phase)
    return out


def simulate_track(
    rng: np.random.Generator,
    duration_s: float,
    *,
    rate_hz: float = 10.0,
    start_lat: float = 37.7749,
    start_lon: float = -122.4194,
) -> Track:
    """Simulate ``duration_s`` seconds of driving (plus one sample past the end)."""
    dt = 1.0 / rate_hz
    t = np.arange(0.0, duration_s + dt, dt)
    accel_cmd = _smooth(rng, t, 0.8)
    steering = _smooth(rng, t, 25.0)
    speed = np.empty_like(t)
    speed[0] = rng.uniform(5.0, 20.0)
    for i in range(1, len(t)):
        speed[i] = min(33.0, max(0.0, speed[i - 1] + accel_cmd[i - 1] * dt))
    accel = np.gradient(speed, dt)
    yaw_rate = speed * np.tan(np.radians(steering / _STEERING_RATIO)) / _WHEELBASE_M
    heading = (rng.uniform(0, 360) + np.degrees(np.cumsum(yaw_rate) * dt)) % 360.0
    north = np.cumsum(speed * np.cos(np.radians(heading))) * dt
    east = np.cumsum(speed * np.sin(np.radians(heading))) * dt
    lat = start_lat + north / _M_PER_DEG_LAT
    lon = start_lon + east / (_M_PER_DEG_LAT * np.cos(np.radians(start_lat)))
    distance = np.concatenate([[0.0], np.cumsum(speed[1:] * dt)])
    # numpy may pick a SIMD or a scalar loop for sin/cos depending on memory alignment, and the
    # two can differ in the last bit; quantizing keeps a seed's samples byte-identical.
    signals = (speed, steering, heading, lat, lon, accel, distance)
    return Track(t, *(np.round(x, 9) for x in signals))
