"""Plots of a dataset's numbers, drawn by matplotlib (the optional ``plots`` extra).

matplotlib is imported when a plot is drawn, never at import: ``shardsmith`` starts as fast
without it, and says what to install when a plot is asked for and it is missing. Figures are
made with ``matplotlib.figure.Figure`` and the Agg canvas directly -- no pyplot, so no global
figure state and no GUI backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

__all__ = ["Histogram", "PlotsUnavailable", "histogram"]

_INSTALL = "pip install 'shardsmith[plots]'"
# Counts (values) spanning at least this ratio get a log y (x) axis: on a linear one the
# rare bins (values) are invisible next to the common ones.
_LOG_COUNTS = 100.0
_LOG_VALUES = 1000.0


class PlotsUnavailable(ImportError):
    """matplotlib is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Histogram:
    """What ``histogram`` drew.

    Attributes:
        size: the PNG's ``(width, height)`` in pixels.
        counts: values per bin (bins are half-open except the last, as ``numpy.histogram``).
        edges: the ``bins + 1`` bin edges, in the values' unit (log-spaced when ``log_x``).
        log_x / log_y: whether that axis has a log scale.
        xlabel / ylabel: the axes' labels.
        stats: ``n``, ``mean``, ``min``, ``p50``, ``p90``, ``p99`` and ``max`` of the values.
    """

    size: tuple[int, int]
    counts: tuple[int, ...]
    edges: tuple[float, ...]
    log_x: bool
    log_y: bool
    xlabel: str
    ylabel: str
    stats: Mapping[str, float]


def _figure(width: int, height: int):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable(f"plots need matplotlib: {_INSTALL}") from None
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def histogram(
    values: Sequence[float] | np.ndarray,
    path: str | os.PathLike[str] | BinaryIO,
    *,
    title: str,
    xlabel: str,
    bins: int = 40,
    width: int = 800,
    height: int = 400,
    log_x: bool | None = None,
    log_y: bool | None = None,
) -> Histogram:
    """Draw a histogram of ``values`` with matplotlib and write it as a PNG.

    Labelled axes with ticks, the median and the 99th percentile as dashed lines, and a summary
    (n, mean, p50, p90, p99, max) under the title. By default an axis gets a log scale when its
    numbers span orders of magnitude: y when the largest bin count is 100 times the smallest
    non-empty one, x (with log-spaced bins) when all values are positive and the largest is
    1,000 times the smallest.

    Example::

        lengths = [len(t) for t in texts]
        histogram(lengths, "text_lengths.png", title="posts v3", xlabel="text length (characters)")

    Args:
        values: finite numbers, any shape (flattened).
        path: a local file path, or a writable binary file object, for the PNG.
        title: the line at the top.
        xlabel: the x axis' label (what was counted, with its unit).
        bins: number of bins, >= 1 (default 40).
        width / height: the PNG's size in pixels, >= 200 x 150 (default 800 x 400).
        log_x / log_y: force a log (True) or linear (False) scale; None: decide as above.

    Raises:
        PlotsUnavailable: matplotlib is not installed.
        ValueError: no values, NaN or infinite values, a log x axis for values <= 0, or bad
            sizes.
    """
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins={bins!r}: expected an integer >= 1")
    if not (isinstance(width, int) and isinstance(height, int)) or width < 200 or height < 150:
        raise ValueError(f"width={width!r}, height={height!r}: expected at least 200 x 150 pixels")
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        raise TypeError(f"histogram: values must be numbers ({e})") from e
    if arr.size == 0:
        raise ValueError("histogram: values is empty; expected at least one number")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"histogram: {bad} of {arr.size} values are NaN or infinite")
    lo, hi = float(arr.min()), float(arr.max())
    if log_x is None:
        log_x = lo > 0 and hi / lo >= _LOG_VALUES
    if log_x and lo <= 0:
        raise ValueError(f"histogram: log_x needs positive values; the smallest is {lo}")
    # Log-spaced bins on a log axis; else equal widths from the minimum to the maximum.
    edges = np.geomspace(lo, hi, bins + 1) if log_x and hi > lo else bins
    counts, edges = np.histogram(arr, bins=edges)
    if log_y is None:
        filled = counts[counts > 0]
        log_y = bool(filled.max() / filled.min() >= _LOG_COUNTS)
    p50, p90, p99 = (float(v) for v in np.percentile(arr, [50, 90, 99]))
    stats = {
        "n": float(arr.size),
        "mean": float(arr.mean()),
        "min": lo,
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "max": hi,
    }
    ylabel = "count (log scale)" if log_y else "count"

    fig = _figure(width, height)
    ax = fig.add_subplot()
    ax.stairs(counts, edges, fill=True, color="#4a6ea9", alpha=0.9)
    ax.axvline(p50, color="#222222", linestyle="--", linewidth=1, label=f"median {_fmt(p50)}")
    ax.axvline(p99, color="#b03030", linestyle=":", linewidth=1.2, label=f"p99 {_fmt(p99)}")
    if log_x:
        ax.set_xscale("log")
    if log_y:
        # Empty bins have no height on a log axis; a single value still shows as a bar.
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    summary = "  ".join(
        [f"n={arr.size:,}"]
        + [f"{k}={_fmt(stats[k])}" for k in ("mean", "p50", "p90", "p99", "max")]
    )
    ax.set_title(f"{title}\n{summary}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return Histogram(
        size=(width, height),
        counts=tuple(int(c) for c in counts),
        edges=tuple(float(e) for e in edges),
        log_x=bool(log_x),
        log_y=bool(log_y),
        xlabel=xlabel,
        ylabel=ylabel,
        stats=stats,
    )


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
