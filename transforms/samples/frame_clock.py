"""A clock drawn into every synthetic frame, so a frame's time can be read back from its pixels.

The band at the top of the frame holds ``CLOCK_BITS`` black/white cells (two rows) spelling the
frame's time in milliseconds since its session started. Cells are large enough to survive H.264,
scaling to 224x224 and JPEG, so tests can check that a decoded frame is the one the pipeline
claims (``frame_ts_us``) without trusting the decoder's timestamps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLOCK_BITS", "CLOCK_ROWS", "read_clock", "stamp_clock"]

CLOCK_BITS = 24  # milliseconds up to 2**24, about 4.6 hours
CLOCK_ROWS = 2
_PER_ROW = CLOCK_BITS // CLOCK_ROWS
_WHITE, _BLACK = 235, 16


def _band_height(height: int) -> int:
    return height // 6


def stamp_clock(rgb: np.ndarray, ms: int) -> None:
    """Draw ``ms`` into the top band of the ``H x W x 3`` uint8 frame, in place."""
    if not 0 <= ms < 2**CLOCK_BITS:
        raise ValueError(f"ms={ms}: expected 0 <= ms < {2**CLOCK_BITS}")
    height, width = rgb.shape[:2]
    row_h = _band_height(height) // CLOCK_ROWS
    for bit in range(CLOCK_BITS):
        row, col = divmod(bit, _PER_ROW)
        x0, x1 = col * width // _PER_ROW, (col + 1) * width // _PER_ROW
        y0 = row * row_h
        rgb[y0 : y0 + row_h, x0:x1] = _WHITE if (ms >> bit) & 1 else _BLACK


def read_clock(rgb: np.ndarray) -> int:
    """Read back the milliseconds drawn by ``stamp_clock`` (from any scaled, re-encoded copy)."""
    height, width = rgb.shape[:2]
    row_h = _band_height(height) / CLOCK_ROWS
    luma = rgb.astype(np.float32).mean(axis=2) if rgb.ndim == 3 else rgb.astype(np.float32)
    ms = 0
    for bit in range(CLOCK_BITS):
        row, col = divmod(bit, _PER_ROW)
        cy = int((row + 0.5) * row_h)
        cx = int((col + 0.5) * width / _PER_ROW)
        ry, rx = max(1, int(row_h / 5)), max(1, int(width / _PER_ROW / 5))
        if luma[cy - ry : cy + ry + 1, cx - rx : cx + rx + 1].mean() > 128:
            ms |= 1 << bit
    return ms
