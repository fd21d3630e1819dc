"""``VideoError``: why a camera file cannot be (fully) read, as a short reason code."""

from __future__ import annotations

__all__ = ["VideoError"]


class VideoError(Exception):
    """A camera file that cannot be (fully) read: ``reason`` is a short code, ``at_s`` the
    time (seconds from the file's start) where it breaks off, if it does."""

    def __init__(self, reason: str, message: str, at_s: float | None = None):
        super().__init__(message)
        self.reason, self.at_s = reason, at_s
