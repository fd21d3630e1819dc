"""Parsing human durations for flags such as ``--min-age 1h`` and ``--every 15m``."""

from __future__ import annotations

import re
from datetime import timedelta

from runners.errors import UserError

__all__ = ["parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration(text: str, flag: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` or ``"0"`` -> ``timedelta``; else ``UserError``."""
    text = text.strip().lower()
    if text == "0":
        return timedelta(0)
    m = _DURATION.match(text)
    if not m:
        raise UserError(f"{flag} {text!r}: expected a duration such as 90s, 15m, 1h or 7d")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
