"""``RecordError``: one record that cannot be ingested (a reason code and a message)."""

from __future__ import annotations

__all__ = ["RecordError"]


class RecordError(ValueError):
    """A record that cannot be ingested: ``reason`` is a short code, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
