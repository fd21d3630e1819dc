"""The clips ``telemetry_ext`` column: what Tesla SEI adds to ``telemetry``, on its sample times.

=====================  ===================================  ===========================
field                  from ``SeiMetadata``                 on the sample times
=====================  ===================================  ===========================
accel_pedal            accelerator_pedal_position           linear interpolation
lateral_accel_mps2     linear_acceleration_mps2_y           linear interpolation
brake                  brake_applied                        latest frame at or before
blinker_left / _right  blinker_on_left / blinker_on_right   latest frame at or before
autopilot              autopilot_state: none, self_driving,  latest frame at or before
                       autosteer, tacc
gear                   gear_state: park, drive, reverse,    latest frame at or before
                       neutral
=====================  ===================================  ===========================

A state is not interpolated: a brake is on or off, the gear one of four. Outside the frames'
time range every value is null, as ``telemetry``'s numbers are; the column is null for a
session without SEI. (A new column rather than new ``telemetry`` fields: a struct's type is its
fields, and a changed column type would make every clips dataset written before unreadable
under the schema-evolution rule, ``schemas.evolution``.)
"""

from __future__ import annotations

import numpy as np

from transforms.fleet.sei import AUTOPILOT, GEAR
from transforms.fleet.telemetry import Telemetry

__all__ = ["EXT_NUMBERS", "EXT_STATES", "ext_series", "resample_ext"]

EXT_NUMBERS = {
    "accel_pedal": "accelerator_pedal_position",
    "lateral_accel_mps2": "linear_acceleration_mps2_y",
}
EXT_STATES = {
    "brake": "brake_applied",
    "blinker_left": "blinker_on_left",
    "blinker_right": "blinker_on_right",
    "autopilot": "autopilot_state",
    "gear": "gear_state",
}
_NAMES = {"autopilot": AUTOPILOT, "gear": GEAR}


def _state(name: str, raw) -> bool | str | None:
    if name in _NAMES:
        names = _NAMES[name]
        value = int(raw or 0)  # proto3: an absent enum is its first value
        return names[value] if 0 <= value < len(names) else None  # a newer firmware's value
    return bool(raw)


def ext_series(frames: list[dict]) -> dict[str, list]:
    """Full-rate series of every ``telemetry_ext`` field, one value per SEI frame."""
    out: dict[str, list] = {}
    for name, source in EXT_NUMBERS.items():
        out[name] = [float(m.get(source, 0.0)) for m in frames]
    for name, source in EXT_STATES.items():
        out[name] = [_state(name, m.get(source)) for m in frames]
    return out


def resample_ext(tel: Telemetry | None, at_us: np.ndarray) -> dict[str, list] | None:
    """The ``telemetry_ext`` value for samples at ``at_us`` (µs); None without SEI frames."""
    if tel is None or tel.frames is None or not len(tel.ts_us):
        return None
    series = ext_series(tel.frames)
    inside = (at_us >= tel.ts_us[0]) & (at_us <= tel.ts_us[-1])
    latest = np.searchsorted(tel.ts_us, at_us, side="right") - 1
    out: dict[str, list] = {}
    for name in EXT_NUMBERS:
        values = np.interp(at_us, tel.ts_us, np.array(series[name], dtype=np.float64))
        out[name] = [float(v) if ok else None for v, ok in zip(values, inside, strict=True)]
    for name in EXT_STATES:
        column = series[name]
        out[name] = [column[i] if ok else None for i, ok in zip(latest, inside, strict=True)]
    return out
