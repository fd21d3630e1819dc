"""Clip tags a data engine mines by: moments found in a session's full-rate telemetry.

Every frame's telemetry is looked at (Tesla SEI: every frame; a sidecar: every row), not only
the samples a clip keeps, and a tag goes to the window holding the moment it happens:

======================  ========================================================================
tag                     the moment
======================  ========================================================================
autopilot_disengage     the first frame with ``autopilot`` ``none`` after self_driving, autosteer
                        or tacc
autopilot_engage        the first frame with self_driving, autosteer or tacc after ``none``
hard_brake              the first frame of a run of frames whose longitudinal acceleration is at
                        or below ``hard_brake`` m/s² (-4) lasting ``hard_brake_s`` (0.3 s; first
                        to last frame of the run)
lane_change             the frame, with a blinker on, where the steering wheel has moved
                        ``lane_change`` degrees (5) from its angle when the blinker came on
stop                    the first frame below ``stop_below`` m/s (0.5) after one above
                        ``stop_from`` m/s (3)
event:<reason>          every window of a session whose ``event.json`` gives that reason
======================  ========================================================================

Thresholds are ``TagThresholds`` (``--tag-threshold NAME=VALUE``). A window's tags are distinct
and sorted; a window of a session without telemetry has only its event tag, if any.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from transforms.fleet.telemetry import Telemetry
from transforms.fleet.telemetry_ext import ext_series

__all__ = ["TagThresholds", "tag_moments", "window_tags"]


@dataclass(frozen=True)
class TagThresholds:
    """The thresholds of the tags (see the module's table).

    Args:
        hard_brake: longitudinal acceleration, m/s², at or below which a frame brakes hard.
        hard_brake_s: how long, seconds, hard braking lasts to be a ``hard_brake``.
        lane_change: steering-wheel degrees moved with a blinker on.
        stop_from / stop_below: speeds, m/s, a ``stop`` goes from (above) and to (below).
    """

    hard_brake: float = -4.0
    hard_brake_s: float = 0.3
    lane_change: float = 5.0
    stop_from: float = 3.0
    stop_below: float = 0.5

    def __post_init__(self):
        if self.hard_brake >= 0:
            raise ValueError(f"hard_brake={self.hard_brake}: expected a deceleration below 0")
        if self.hard_brake_s < 0 or self.lane_change <= 0:
            raise ValueError(
                f"hard_brake_s={self.hard_brake_s}, lane_change={self.lane_change}: expected "
                "hard_brake_s >= 0 and lane_change > 0"
            )
        if not 0 <= self.stop_below < self.stop_from:
            raise ValueError(
                f"stop_below={self.stop_below}, stop_from={self.stop_from}: expected "
                "0 <= stop_below < stop_from"
            )

    @classmethod
    def parse(cls, settings: list[str] | tuple[str, ...]) -> TagThresholds:
        """From ``NAME=VALUE`` strings (``hard_brake=-5``); ``ValueError`` names a bad one."""
        names = [f.name for f in fields(cls)]
        values = {}
        for item in settings:
            name, _, value = item.partition("=")
            if name not in names:
                raise ValueError(f"--tag-threshold {item}: expected one of {', '.join(names)}")
            try:
                values[name] = float(value)
            except ValueError:
                raise ValueError(f"--tag-threshold {item}: {value!r} is not a number") from None
        return cls(**values)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of the runs of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def tag_moments(tel: Telemetry | None, th: TagThresholds) -> list[tuple[int, str]]:
    """``(ts_us, tag)`` of every tagged moment of a session's telemetry, in time order."""
    if tel is None or not len(tel.ts_us):
        return []
    ts = tel.ts_us
    out: list[tuple[int, str]] = []
    accel = tel.signals.get("accel_mps2")
    if accel is not None:
        for first, last in _runs(accel <= th.hard_brake):
            if ts[last] - ts[first] >= th.hard_brake_s * 1e6:
                out.append((int(ts[first]), "hard_brake"))
    speed = tel.signals.get("speed_mps")
    if speed is not None:
        moving = False
        for t, v in zip(ts.tolist(), speed.tolist(), strict=True):
            if v > th.stop_from:
                moving = True
            elif moving and v < th.stop_below:
                out.append((t, "stop"))
                moving = False
    if tel.frames is not None:
        ext = ext_series(tel.frames)
        engaged = [a is not None and a != "none" for a in ext["autopilot"]]
        for i in range(1, len(engaged)):
            if ext["autopilot"][i] is None or ext["autopilot"][i - 1] is None:
                continue  # a state this shardsmith does not know: no transition claimed
            if engaged[i] != engaged[i - 1]:
                tag = "autopilot_engage" if engaged[i] else "autopilot_disengage"
                out.append((int(ts[i]), tag))
        steering = tel.signals.get("steering_deg")
        if steering is not None:
            blinker = np.array(ext["blinker_left"]) | np.array(ext["blinker_right"])
            for first, last in _runs(blinker):
                moved = np.abs(steering[first : last + 1] - steering[first]) >= th.lane_change
                if moved.any():
                    out.append((int(ts[first + int(np.argmax(moved))]), "lane_change"))
    return sorted(out)


def window_tags(
    moments: list[tuple[int, str]], start_us: int, end_us: int, reason: str | None
) -> list[str]:
    """The distinct tags, sorted, of the moments in ``[start_us, end_us)``, and the event's."""
    tags = {tag for t, tag in moments if start_us <= t < end_us}
    if reason:
        tags.add(f"event:{reason}")
    return sorted(tags)
