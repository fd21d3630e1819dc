"""Video frames as raw patch tokens (Fuyu / ViT style): p x p x 3 uint8 patches, row-major."""

from __future__ import annotations

import io

import numpy as np

__all__ = ["frame_grid", "jpeg_size", "patchify", "unpatchify"]


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """``(width, height)`` of a JPEG, read from its header (nothing decoded)."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        return im.size


def frame_grid(width: int, height: int, patch: int) -> tuple[int, int]:
    """``(rows, cols)`` of patches covering a frame; edges are zero-padded up to a patch."""
    return -(-height // patch), -(-width // patch)


def patchify(jpeg: bytes, patch: int) -> np.ndarray:
    """Decode ``jpeg`` to RGB and cut it into ``[rows * cols, patch, patch, 3]`` uint8 patches,
    row by row, left to right (frames whose size is not a multiple of ``patch`` are padded with
    black at the right and bottom)."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        rgb = np.asarray(im.convert("RGB"))
    h, w, _ = rgb.shape
    rows, cols = frame_grid(w, h, patch)
    if (rows * patch, cols * patch) != (h, w):
        padded = np.zeros((rows * patch, cols * patch, 3), np.uint8)
        padded[:h, :w] = rgb
        rgb = padded
    grid = rgb.reshape(rows, patch, cols, patch, 3).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(grid).reshape(rows * cols, patch, patch, 3)


def unpatchify(patches: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The inverse of ``patchify`` (before cropping any padding): ``[rows*p, cols*p, 3]``."""
    p = patches.shape[1]
    grid = patches.reshape(rows, cols, p, p, 3).transpose(0, 2, 1, 3, 4)
    return grid.reshape(rows * p, cols * p, 3)
