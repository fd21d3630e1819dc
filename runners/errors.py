"""Errors that are the user's to fix: printed as one line, exit status 2, never a traceback."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user (a missing path, a bad flag value); the message says what and why."""
