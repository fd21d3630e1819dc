"""A writing command's hold on its output dataset: its run id, the dataset's lock, and SIGTERM.

``ingest`` and ``tokenize`` run inside ``writing(args, ...)``: the lock is taken before Beam is
even imported (a busy dataset answers in a fraction of a second) and released however the run
ends -- normally, on an error, on Ctrl-C, or on SIGTERM (``shardsmith schedule`` stopping a tick),
which is turned into ``SystemExit(143)`` so that ``finally`` blocks run. A run killed outright
(SIGKILL, a crash) leaves its lock to expire: after ``--lock-ttl``, or at once for the next run
on the same host, which sees the holder's pid is gone.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from runners.errors import UserError

__all__ = ["LOCKED_PREFIX", "print_locked", "writing"]

# How a run that found its dataset locked starts its one line on stderr; `schedule` reads it.
LOCKED_PREFIX = "shardsmith: locked:"

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


@contextmanager
def writing(args, command: str, storage_options: Mapping[str, Any]) -> Iterator[str]:
    """Hold the lock of ``args.dataset`` for ``command``; yields the run id.

    Reads ``args.run_id`` (hidden ``--run-id``; default a new id), ``args.lock_wait`` and
    ``args.lock_ttl``. Raises ``catalog.LockHeld`` when the dataset stays locked.
    """
    from catalog import DatasetLock, new_run_id
    from runners.units import parse_duration

    run_id = args.run_id or new_run_id()
    if not _RUN_ID.match(run_id):
        raise UserError(
            f"--run-id {run_id!r}: expected letters, digits, '.', '_' or '-' (at most 80)"
        )
    wait = parse_duration(args.lock_wait, "--lock-wait")
    ttl = parse_duration(args.lock_ttl, "--lock-ttl")
    if ttl.total_seconds() <= 0:
        raise UserError(f"--lock-ttl {args.lock_ttl!r}: expected a positive duration")
    lock = DatasetLock(
        args.dataset, storage_options=storage_options, ttl=ttl, run_id=run_id, command=command
    )
    with _sigterm_exits(), lock.acquire(wait=wait):
        yield run_id


def print_locked(exc: Exception) -> int:
    """Print a ``LockHeld`` as the command's one line on stderr; returns exit status 1."""
    print(f"{LOCKED_PREFIX} {exc}", file=sys.stderr)
    return 1


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    # Python's default for SIGTERM is to die without unwinding; raising SystemExit instead lets
    # the lock (and Beam's own clean-up) run their exits.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
