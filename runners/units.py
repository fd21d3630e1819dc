"""Parsing human durations and sizes for flags such as ``--min-age 1h`` and ``--max-line-bytes 16MiB``."""

from __future__ import annotations

import re
from datetime import timedelta

from runners.errors import UserError

__all__ = ["parse_duration", "parse_size"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SIZES = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 1 << 20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 1 << 30,
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")


def parse_duration(text: str, flag: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` or ``"0"`` -> ``timedelta``; else ``UserError``."""
    text = text.strip().lower()
    if text == "0":
        return timedelta(0)
    m = _DURATION.match(text)
    if not m:
        raise UserError(f"{flag} {text!r}: expected a duration such as 90s, 15m, 1h or 7d")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_size(text: str, flag: str) -> int:
    """``"16MiB"``, ``"512KB"``, ``"1000"`` -> bytes; else ``UserError``."""
    m = _SIZE.match(text.strip().lower())
    if not m or m.group(2) not in _SIZES or float(m.group(1)) <= 0:
        raise UserError(f"{flag} {text!r}: expected a size such as 16MiB, 512KB or 1000")
    return int(float(m.group(1)) * _SIZES[m.group(2)])
