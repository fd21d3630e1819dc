"""Progress reports from the workers: small increments appended to files the driver watches.

Beam gives a running pipeline's driver no live counts back on the local runner (its
``run()`` blocks until the end), on Dask or through a portable job server. So the steps that
read sources report what they read themselves: a ``Reporter`` appends a JSON line per source
and event to a file of its own in the run's progress directory, at most every ``every_s``
seconds (and at once when a source starts or ends), and ``runners.progress`` on the driver
reads those files. Workers on the driver's machine (the local runner, a Dask cluster or a
worker pool on it) can; a worker elsewhere finds no such directory and reports nothing.

Counting is per chunk, window or row group -- never per record -- so reporting costs a few
dictionary updates per thousands of records, and one small write per half second.

A line: ``{"k": KEY, "u": UNIT, "ev": EVENT, "n": {COUNTER: TOTAL, ...}}``. ``KEY`` names a
source of the run's plan (a file, a session), ``UNIT`` a part of it processed on its own (a
row group; ``""`` for a whole source), and ``n`` holds the unit's counts *so far* in this
attempt, not increments: a bundle that runs again (a retry, or Beam's Dask runner computing a
step once for each step that reads its output) reports the same totals again, and the driver
keeps the largest, so nothing counts twice. ``EVENT`` is ``start`` (the unit is in flight),
``at`` (counts only), ``stop`` (the unit ended) or ``done`` (the whole source is read: the
driver counts it as its planned size, whatever was reported before).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass

__all__ = ["ProgressTarget", "Reporter"]


@dataclass(frozen=True)
class ProgressTarget:
    """Where the workers of one run report: a directory on the driver's machine.

    Args:
        directory: the run's progress directory (made by ``runners.progress``).
        every_s: at most one write per this many seconds per reporter, besides a source's
            start and end (default 0.5).
    """

    directory: str
    every_s: float = 0.5


class Reporter:
    """One DoFn instance's report file. ``Reporter(None)`` reports nothing (progress off).

    Make it in ``DoFn.setup`` (it holds a file descriptor, which does not pickle).

    Example::

        reporter = Reporter(target)
        reporter.start(uri)
        for chunk in chunks:
            reporter.add(uri, bytes=chunk_bytes, records=len(chunk))
        reporter.done(uri)
    """

    def __init__(self, target: ProgressTarget | None):
        self._target = target
        self._fd: int | None = None
        self._totals: dict[tuple[str, str], dict[str, float]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._events: list[str] = []
        self._last = time.monotonic()
        # A worker on another machine has no such directory: it reports nothing.
        self._on = target is not None and os.path.isdir(target.directory)

    def start(self, key: str, unit: str = "") -> None:
        """``unit`` of source ``key`` is in flight, from zero (written at once: it may block
        right after)."""
        if not self._on:
            return
        self._totals[key, unit] = {}
        self._event(key, unit, "start")

    def add(self, key: str, unit: str = "", **counts: float) -> None:
        """Add ``counts`` (e.g. ``bytes=..., records=...``) to ``unit`` of ``key``; written
        when due."""
        if not self._on:
            return
        into = self._totals.setdefault((key, unit), {})
        for name, n in counts.items():
            into[name] = into.get(name, 0) + n
        self._dirty.add((key, unit))
        if time.monotonic() - self._last >= self._target.every_s:
            self.flush()

    def stop(self, key: str, unit: str = "", **counts: float) -> None:
        """``unit`` of ``key`` ended (more units of it may follow elsewhere)."""
        self.add(key, unit, **counts)
        self._event(key, unit, "stop")
        self._totals.pop((key, unit), None)

    def done(self, key: str, **counts: float) -> None:
        """All of source ``key`` is read: the driver counts its planned size."""
        self.add(key, "", **counts)
        self._event(key, "", "done")
        self._totals.pop((key, ""), None)

    def _event(self, key: str, unit: str, event: str) -> None:
        self._dirty.discard((key, unit))
        self._drain()
        self._events.append(_line(key, unit, event, self._totals.get((key, unit), {})))
        self.flush()

    def _drain(self) -> None:
        for key, unit in sorted(self._dirty):
            self._events.append(_line(key, unit, "at", self._totals[key, unit]))
        self._dirty.clear()

    def flush(self) -> None:
        """Write what is pending now."""
        if not self._on:
            return
        self._drain()
        self._last = time.monotonic()
        if not self._events:
            return
        data = "".join(self._events).encode()
        self._events.clear()
        try:
            if self._fd is None:
                name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
                path = os.path.join(self._target.directory, name)
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(self._fd, data)
        except OSError:
            # Progress is for watching, not part of the run's output: a full disk or a removed
            # directory (the driver gave up) must not fail the pipeline. Reporting stops.
            self._on = False

    def close(self) -> None:
        """Write what is pending and release the file (``DoFn.teardown``)."""
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _line(key: str, unit: str, event: str, counts: dict[str, float]) -> str:
    line = {"k": key, "u": unit, "ev": event, "n": counts}
    return json.dumps(line, separators=(",", ":")) + "\n"
