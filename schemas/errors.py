"""``UserError``: bad input that is the user's to fix.

It lives here, at the bottom of the layers (transforms, pipelines and catalog all import
schemas), so the code that finds a bad path or flag raises it without importing the CLI's
layer; the CLI prints it as one line with exit status 2, never a traceback.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user (a missing path, a bad flag value); the message says what and why."""
