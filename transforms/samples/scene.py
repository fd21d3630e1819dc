"""Synthetic dashcam frames: a road that moves with the vehicle's speed and steering."""

from __future__ import annotations

import math

import numpy as np

from transforms.samples.frame_clock import stamp_clock

__all__ = ["Scene"]

# Per-camera tint, so the cameras of one session are told apart at a glance.
_TINTS = {
    "front": (1.0, 1.0, 1.0),
    "back": (0.9, 0.95, 1.1),
    "rear": (0.9, 0.95, 1.1),
    "left_repeater": (1.1, 1.0, 0.9),
    "left": (1.1, 1.0, 0.9),
    "right_repeater": (0.95, 1.1, 0.95),
    "right": (0.95, 1.1, 0.95),
}
_DASH_PERIOD_M = 12.0


class Scene:
    """Renders ``H x W x 3`` uint8 frames of one camera; ``frame(...)`` is cheap (a copy + a few fills).

    Args:
        width, height: frame size in pixels.
        camera: the camera name (picks the tint; ``back``/``rear`` see the road receding).
        rng: randomness for the static texture.
    """

    def __init__(self, width: int, height: int, camera: str, rng: np.random.Generator):
        self.width, self.height, self.camera = width, height, camera
        tint = np.array(_TINTS.get(camera, (1.0, 1.0, 1.0)), np.float32)
        y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        sky = np.array([110, 160, 225], np.float32) * (1.0 - 0.4 * y)
        road = np.array([90, 90, 95], np.float32) * (0.7 + 0.6 * y)
        img = np.where(y < 0.5, sky, road) * np.ones((1, width, 1), np.float32)
        img += rng.normal(0.0, 6.0, (height, width, 1)).astype(np.float32)  # texture: not flat
        self._background = np.clip(img * tint, 0, 255).astype(np.uint8)
        self._reverse = camera in ("back", "rear")

    def frame(
        self, clock_ms: int, distance_m: float, steering_deg: float, t_s: float
    ) -> np.ndarray:
        """The frame at ``t_s`` seconds, after ``distance_m`` travelled, stamped with ``clock_ms``."""
        img = self._background.copy()
        h, w = self.height, self.width
        horizon = h // 2
        bend = steering_deg / 90.0 * w * 0.25
        phase = (distance_m % _DASH_PERIOD_M) / _DASH_PERIOD_M
        if self._reverse:
            phase = 1.0 - phase
        # Centre-line dashes slide down the road as the vehicle moves.
        for k in range(4):
            depth = (k + phase) / 4.0
            y0 = horizon + int(depth**2 * (h - horizon))
            y1 = min(h, y0 + max(2, int(depth * h * 0.08)))
            x = int(w / 2 + bend * (1.0 - depth))
            half = max(1, int(1 + depth * w * 0.012))
            img[y0:y1, max(0, x - half) : x + half] = (235, 225, 120)
        # A vehicle ahead that drifts across the lane.
        cx = int(w / 2 + w * 0.2 * math.sin(t_s / 3.0) - bend * 0.5)
        bw, bh = w // 8, h // 10
        top = horizon + h // 12
        img[top : top + bh, max(0, cx - bw // 2) : max(0, cx + bw // 2)] = (170, 40, 40)
        stamp_clock(img, clock_ms)
        return img
