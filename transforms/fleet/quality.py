"""Per-window quality metrics computed on the sampled (resized) frames."""

from __future__ import annotations

import numpy as np

__all__ = ["BLACK_LUMA", "FROZEN_DIFF", "blur_score", "is_black", "luma", "nearly_same"]

BLACK_LUMA = 24.0  # mean luma (0-255) under which a frame counts as black
FROZEN_DIFF = 1.0  # mean absolute luma difference under which two samples are "the same"


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma as float32."""
    return (
        rgb[..., 0] * np.float32(0.299)
        + rgb[..., 1] * np.float32(0.587)
        + rgb[..., 2] * np.float32(0.114)
    )


def is_black(y: np.ndarray) -> bool:
    return float(y.mean()) < BLACK_LUMA


def blur_score(y: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurred or flat frames."""
    lap = -4 * y[1:-1, 1:-1] + y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]
    return float(lap.var())


def nearly_same(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a - b).mean()) < FROZEN_DIFF
