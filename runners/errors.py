"""Errors that are the user's to fix: printed as one line, exit status 2, never a traceback."""

from __future__ import annotations

from schemas.errors import UserError  # defined below every layer that raises it

__all__ = ["RecordsLost", "UserError"]


class RecordsLost(RuntimeError):
    """A run whose counts did not add up: some record read was neither written, rejected,
    deduplicated, deleted nor skipped, so nothing was committed. A bug, never the input's
    fault; the message has the counts and where the workers' output is. Exit status 1."""
