"""Telemetry sidecars: reading CSV, JSONL or Parquet, converting units, resampling to frame times.

Time column: ``timestamp``, ``time``, ``ts``, ``t`` or ``time_utc`` -- ISO-8601 strings (UTC unless
they say otherwise), Parquet timestamps, or epoch numbers (seconds, milliseconds or microseconds,
told apart by magnitude). Signals, by the first column found:

==============  ==========================================================================
schema field    accepted columns (unit conversion)
==============  ==========================================================================
speed_mps       speed_mps; speed_kph, speed_kmh (/ 3.6); speed_mph (x 0.44704); speed (m/s)
steering_deg    steering_deg, steering_angle_deg, steering
lat / lon       lat, latitude / lon, lng, longitude
heading_deg     heading_deg, heading, bearing
accel_mps2      accel_mps2, acceleration, accel_x; accel_g (x 9.80665)
==============  ==========================================================================

A row whose time or a signal cannot be read is skipped and reported (row number and column).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from transforms.fleet.discover import open_source

__all__ = ["SIGNALS", "Telemetry", "load_telemetry"]

SIGNALS = ("speed_mps", "steering_deg", "lat", "lon", "heading_deg", "accel_mps2")
_TIME = ("timestamp", "time", "ts", "t", "time_utc")
_SOURCES: dict[str, tuple[tuple[str, float], ...]] = {
    "speed_mps": (
        ("speed_mps", 1.0),
        ("speed_kph", 1 / 3.6),
        ("speed_kmh", 1 / 3.6),
        ("speed_mph", 0.44704),
        ("speed", 1.0),
    ),
    "steering_deg": (("steering_deg", 1.0), ("steering_angle_deg", 1.0), ("steering", 1.0)),
    "lat": (("lat", 1.0), ("latitude", 1.0)),
    "lon": (("lon", 1.0), ("lng", 1.0), ("longitude", 1.0)),
    "heading_deg": (("heading_deg", 1.0), ("heading", 1.0), ("bearing", 1.0)),
    "accel_mps2": (
        ("accel_mps2", 1.0),
        ("acceleration", 1.0),
        ("accel_x", 1.0),
        ("accel_g", 9.80665),
    ),
}


@dataclass
class Telemetry:
    """Signals on their own time base (µs, UTC), and the rows that could not be read.

    ``frames``: for telemetry read from Tesla SEI, each instant's decoded ``SeiMetadata``
    fields (``transforms.fleet.sei``), aligned with ``ts_us``; None for a sidecar.
    """

    ts_us: np.ndarray
    signals: dict[str, np.ndarray]
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    frames: list[dict] | None = None

    def resample(self, at_us: np.ndarray) -> dict[str, list[float | None]]:
        """Linear interpolation onto ``at_us``; null outside the sidecar's time range."""
        out: dict[str, list[float | None]] = {}
        inside = (at_us >= self.ts_us[0]) & (at_us <= self.ts_us[-1]) if len(self.ts_us) else None
        for name in SIGNALS:
            values = self.signals.get(name)
            if values is None or inside is None:
                out[name] = None
                continue
            if name == "heading_deg":  # interpolate on the circle, not across 359 -> 0
                rad = np.radians(values)
                s = np.interp(at_us, self.ts_us, np.sin(rad))
                c = np.interp(at_us, self.ts_us, np.cos(rad))
                series = np.degrees(np.arctan2(s, c)) % 360.0
            else:
                series = np.interp(at_us, self.ts_us, values)
            out[name] = [float(v) if ok else None for v, ok in zip(series, inside, strict=True)]
        return out


def _time_us(value: Any) -> int:
    if isinstance(value, datetime):
        ts = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(ts.timestamp() * 1_000_000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = float(value)
        scale = 1_000_000 if v < 1e11 else 1_000 if v < 1e14 else 1
        return int(v * scale)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _time_us(float(text))
        except ValueError:
            return _time_us(datetime.fromisoformat(text.replace("Z", "+00:00")))
    raise ValueError(f"not a time: {value!r}")


def _rows(url: str, storage_options: Mapping[str, Any]) -> list[dict]:
    with open_source(url, storage_options) as f:
        data = f.read()
    lower = url.lower()
    if lower.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data)).to_pylist()
    text = data.decode("utf-8")
    if lower.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(text)))
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                rows.append({"__error__": f"line {n}: {exc}"})
    return rows


def load_telemetry(url: str, storage_options: Mapping[str, Any]) -> Telemetry:
    """Read a sidecar; raises ``ValueError`` if it has no time column or no known signal."""
    rows = _rows(url, storage_options)
    columns = set().union(*(r.keys() for r in rows)) if rows else set()
    time_col = next((c for c in _TIME if c in columns), None)
    if time_col is None:
        raise ValueError(f"no time column (expected one of {', '.join(_TIME)})")
    picks = {}
    for name, options in _SOURCES.items():
        for column, factor in options:
            if column in columns:
                picks[name] = (column, factor)
                break
    if not picks:
        raise ValueError("no known signal column")
    times, values, bad = [], {n: [] for n in picks}, []
    for number, row in enumerate(rows, 1):
        if "__error__" in row:
            bad.append((number, row["__error__"]))
            continue
        try:
            t = _time_us(row.get(time_col))
            parsed = {}
            for name, (column, factor) in picks.items():
                raw = row.get(column)
                parsed[name] = float("nan") if raw in (None, "") else float(raw) * factor
        except (ValueError, TypeError) as exc:
            bad.append((number, f"{exc}"))
            continue
        times.append(t)
        for name, v in parsed.items():
            values[name].append(v)
    order = np.argsort(np.array(times, dtype=np.int64), kind="stable")
    ts = np.array(times, dtype=np.int64)[order]
    signals = {}
    for name, series in values.items():
        arr = np.array(series, dtype=np.float64)[order]
        ok = ~np.isnan(arr)
        signals[name] = np.interp(ts, ts[ok], arr[ok]) if ok.any() else None
    return Telemetry(ts, {k: v for k, v in signals.items() if v is not None}, bad)
