"""A run's progress, added up: what the workers reported against what the plan knows.

``ProgressPlan`` is what a run will read, known before its pipeline starts; ``Tally`` adds up
the report lines the workers write (``transforms.progress``) and makes a ``Snapshot`` of them,
the object one update shows. No threads and no I/O here: ``runners.progress`` reads the files
and ``runners.progress_views`` shows the snapshots.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProgressPlan", "Snapshot", "Tally"]

# The rate (and so the ETA) is measured over this much recent time: it follows a run that
# speeds up or slows down, without jumping at every poll.
_RATE_WINDOW_S = 20.0


@dataclass(frozen=True)
class ProgressPlan:
    """What a run will read, as the plan knows it before the pipeline starts.

    Args:
        name: the pipeline, e.g. ``"ingest posts"``.
        unit: the counter the bar and the ETA follow (``"bytes"``, ``"rows"``).
        sources: planned counts per source key (the key the workers report under), e.g.
            ``{"file:///in/a.jsonl": {"bytes": 1234, "files": 1}}``. A source reported
            ``done`` counts as exactly these.
        counters: counters without a total, shown as they grow (``records``, ``tokens``,
            ``camera_s``); the first is the one whose rate is shown per second.
    """

    name: str
    unit: str
    sources: Mapping[str, Mapping[str, int]]
    counters: tuple[str, ...] = ("records",)

    def total(self, counter: str) -> int | None:
        """The planned total of ``counter`` (None: the plan does not know it)."""
        values = [planned.get(counter) for planned in self.sources.values()]
        if not values or any(v is None for v in values):
            return None
        return int(sum(values))


@dataclass(frozen=True)
class Snapshot:
    """One update: the JSON object of ``--progress json`` (``to_dict``)."""

    stage: str
    done: int
    total: int | None
    unit: str
    rate: float | None
    eta_s: float | None
    elapsed_s: float
    files: int | None = None
    files_total: int | None = None
    counters: dict[str, float] = field(default_factory=dict)
    counter_rate: float | None = None
    in_flight: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "unit": self.unit,
            "rate": _round(self.rate),
            "eta_s": _round(self.eta_s),
            "elapsed_s": round(self.elapsed_s, 2),
        }
        if self.files_total is not None:
            out["files"] = self.files
            out["files_total"] = self.files_total
        for name, value in self.counters.items():
            out[name] = round(value, 3) if isinstance(value, float) else value
        if self.counters:
            out[f"{next(iter(self.counters))}_per_s"] = _round(self.counter_rate)
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class Tally:
    """What the workers reported so far, added up against the plan (no threads, no I/O).

    ``feed(line)`` takes one report line (``transforms.progress``); ``snapshot(now)`` is the
    update to show. A unit's counts are the largest it reported (a bundle run again reports
    the same totals again), a source's never go past its plan, and a source reported ``done``
    counts as exactly its plan.
    """

    def __init__(self, plan: ProgressPlan, *, started: float):
        self.plan = plan
        self.started = started
        self.last_report = started
        self.reports = 0
        self._units: dict[str, dict[str, dict[str, float]]] = {}  # key -> unit -> counts
        self._done: set[str] = set()
        self._in_flight: dict[tuple[str, str], float] = {}  # (key, unit) -> started at
        self._total = plan.total(plan.unit)
        self._files_total = plan.total("files")
        self._history: deque[tuple[float, float, float]] = deque()
        # Kept up to date line by line: a run may have a million sources, and an update must
        # not walk them all every second.
        self._tracked = tuple(dict.fromkeys((plan.unit, "files", *plan.counters)))
        self._sums = dict.fromkeys(self._tracked, 0.0)
        self._complete: set[str] = set()

    def feed(self, line: str, now: float) -> None:
        try:
            report = json.loads(line)
            key, unit, event, counts = report["k"], report["u"], report["ev"], report["n"]
            counts = {str(name): float(n) for name, n in counts.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # a torn line of a worker that died mid-write
        self.reports += 1
        self.last_report = now
        before = [self._got(key, name) for name in self._tracked]
        had = self._units.setdefault(key, {}).setdefault(unit, {})
        for name, n in counts.items():
            had[name] = max(had.get(name, 0), n)
        if event == "start":
            self._in_flight[key, unit] = now
        elif event in ("stop", "done"):
            self._in_flight.pop((key, unit), None)
            if event == "done":
                self._done.add(key)
        for name, was in zip(self._tracked, before, strict=True):
            self._sums[name] += self._got(key, name) - was
        if key in self.plan.sources:
            if self._read_whole(key):
                self._complete.add(key)
            else:
                self._complete.discard(key)

    def _read_whole(self, key: str) -> bool:
        if key in self._done:
            return True
        if any(k == key for k, _ in self._in_flight):
            return False
        return self._got(key, self.plan.unit) >= self.plan.sources[key].get(self.plan.unit, 0)

    def _got(self, key: str, counter: str) -> float:
        planned = self.plan.sources.get(key, {})
        if key in self._done and counter in planned:
            return planned[counter]
        n = sum(c.get(counter, 0) for c in self._units.get(key, {}).values())
        return min(n, planned[counter]) if counter in planned else n

    def _sum(self, counter: str) -> float:
        return self._sums.get(counter, 0.0)

    def all_read(self) -> bool:
        """Every planned source is read: reported ``done``, or all its planned units counted
        and nothing of it in flight."""
        return len(self._complete) == len(self.plan.sources)

    def in_flight(self) -> tuple[str, float] | None:
        """The source started last of those still in flight, and when it started."""
        if not self._in_flight:
            return None
        (key, _), at = max(self._in_flight.items(), key=lambda item: item[1])
        return key, at

    def snapshot(self, now: float, *, finished: bool = False, stage: str | None = None):
        """The update at ``now``; ``finished``: the run ended well, so everything was read."""
        done = int(self._sum(self.plan.unit))
        files = int(self._sum("files")) if self._files_total is not None else None
        if finished:
            done = self._total if self._total is not None else done
            files = self._files_total
        counters = {name: self._sum(name) for name in self.plan.counters}
        for name, value in counters.items():
            if float(value).is_integer():
                counters[name] = int(value)
        count = counters[self.plan.counters[0]] if counters else 0
        self._history.append((now, done, count))
        while len(self._history) > 2 and now - self._history[1][0] >= _RATE_WINDOW_S:
            self._history.popleft()
        t0, done0, count0 = self._history[0]
        span = now - t0
        rate = (done - done0) / span if span >= 1 else None
        counter_rate = (count - count0) / span if span >= 1 else None
        eta = None
        if self._total is not None and rate:
            eta = max(0.0, (self._total - done) / rate)
        if finished:
            # The whole run's average: a short run has no recent window to measure.
            elapsed = max(now - self.started, 1e-3)
            rate, counter_rate, eta = done / elapsed, count / elapsed, 0.0
        if stage is None:
            stage = "write" if self.all_read() else "read"
        flying = self.in_flight()
        return Snapshot(
            stage=f"{self.plan.name}: {stage}",
            done=done,
            total=self._total,
            unit=self.plan.unit,
            rate=rate,
            eta_s=eta,
            elapsed_s=now - self.started,
            files=files,
            files_total=self._files_total,
            counters=counters,
            counter_rate=counter_rate,
            in_flight=flying[0] if flying else None,
        )
