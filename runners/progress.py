"""A run's progress on the driver: what the workers reported, against what the plan knows.

The workers append small reports to files in the run's progress directory
(``transforms.progress``); a thread here reads them every half second, adds them up against the
plan's totals (``ProgressPlan``) and shows them (``ProgressDisplay``): a rich progress bar on a
terminal, one JSON object per update (``--progress json``), a plain line every 30 s in a log,
or nothing. Whatever is shown, a run that reports nothing for ``stall_s`` gets a warning naming
its stage and the last source in flight.

Only the standard library is imported here; rich is imported when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from transforms.progress import ProgressTarget

__all__ = [
    "MODES",
    "ProgressDisplay",
    "ProgressPlan",
    "Snapshot",
    "Tally",
    "current_display",
    "showing",
    "watch",
]

MODES = ("auto", "bar", "json", "plain", "off")
_POLL_S = 0.5
# The rate (and so the ETA) is measured over this much recent time: it follows a run that
# speeds up or slows down, without jumping at every poll.
_RATE_WINDOW_S = 20.0
_UNIT_NAMES = {"bytes": "bytes", "rows": "rows", "records": "records"}


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
class ProgressDisplay:
    """How a command shows its runs' progress (``--progress`` and ``--stall-warning``).

    Args:
        mode: ``auto`` (a bar on a terminal, else ``plain``), ``bar``, ``json`` (one object
            per update), ``plain`` (a line every ``log_every_s``) or ``off`` (stall warnings
            only).
        stall_s: warn when nothing was reported for this long (0: never). Default 5 min.
        every_s: seconds between updates of a bar (default 1; at most 2); JSON lines come
            every ``max(every_s, 2)`` seconds.
        log_every_s: seconds between ``plain`` lines (default 30).
        stream: where to write (default: a duplicate of this process's stderr, made when the
            run starts, so that worker output redirected away from fd 2 does not take it).
    """

    mode: str = "auto"
    stall_s: float = 300.0
    every_s: float = 1.0
    log_every_s: float = 30.0
    stream: TextIO | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: expected one of {', '.join(MODES)}")
        if self.stall_s < 0 or not 0 < self.every_s <= 2 or self.log_every_s <= 0:
            raise ValueError(
                f"stall_s={self.stall_s}, every_s={self.every_s}, log_every_s="
                f"{self.log_every_s}: expected stall_s >= 0, 0 < every_s <= 2, log_every_s > 0"
            )

    @property
    def watches(self) -> bool:
        """Whether runs are watched at all (``off`` without stall warnings: not even that)."""
        return self.mode != "off" or self.stall_s > 0


_DISPLAY: contextvars.ContextVar[ProgressDisplay | None] = contextvars.ContextVar(
    "shardsmith_progress_display", default=None
)


@contextlib.contextmanager
def showing(display: ProgressDisplay) -> Iterator[ProgressDisplay]:
    """Runs started inside the block show their progress as ``display`` says.

    Outside any such block (library use) runs are not watched and report nothing.
    """
    token = _DISPLAY.set(display)
    try:
        yield display
    finally:
        _DISPLAY.reset(token)


def current_display() -> ProgressDisplay | None:
    """The ``ProgressDisplay`` of the enclosing ``showing`` block, if any."""
    return _DISPLAY.get()


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


# --- showing it --------------------------------------------------------------------------------


def _amount(n: float, unit: str) -> str:
    if unit == "bytes":
        from runners.console import human_bytes

        return human_bytes(n)
    return f"{n:,.0f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def describe(snap: Snapshot) -> str:
    """``1.2 MiB of 2.6 MiB (0.6 MiB/s), 3/6 files, 12,000 records (8,000/s), ETA 2s``: one
    update, in words."""
    unit = _UNIT_NAMES.get(snap.unit, snap.unit)
    amount = _amount(snap.done, snap.unit)
    if snap.total is not None:
        amount += f" of {_amount(snap.total, snap.unit)}"
    if snap.unit != "bytes":
        amount += f" {unit}"
    if snap.rate is not None:
        amount += f" ({_amount(snap.rate, snap.unit)}/s)"
    parts = [amount]
    if snap.files_total is not None:
        parts.append(f"{snap.files}/{snap.files_total} files")
    for i, (name, value) in enumerate(snap.counters.items()):
        text = f"{value:,.0f} {name.replace('_', '-')}"
        if i == 0 and snap.counter_rate is not None:
            text += f" ({snap.counter_rate:,.0f}/s)"
        parts.append(text)
    if snap.total is not None and snap.done < snap.total:
        parts.append(f"ETA {_duration(snap.eta_s)}")
    return ", ".join(parts)


class _Json:
    def __init__(self, stream: TextIO):
        self._stream = stream

    def update(self, snap: Snapshot, *, final: bool = False) -> None:
        self._stream.write(json.dumps(snap.to_dict()) + "\n")
        self._stream.flush()

    def say(self, kind: str, message: str, snap: Snapshot, **fields: Any) -> None:
        # A warning is an update too, with what is wrong: collectors parse one kind of line.
        self._stream.write(json.dumps({**snap.to_dict(), kind: message, **fields}) + "\n")
        self._stream.flush()

    def close(self) -> None:
        pass


class _Plain:
    def __init__(self, stream: TextIO):
        self._stream = stream

    def update(self, snap: Snapshot, *, final: bool = False) -> None:
        if final:
            return  # the run report follows
        pct = f"{snap.done / snap.total:.0%} " if snap.total else ""
        line = f"{snap.stage} {pct}({describe(snap)}), {_duration(snap.elapsed_s)} elapsed"
        self._stream.write(f"shardsmith: {line}\n")
        self._stream.flush()

    def say(self, kind: str, message: str, snap: Snapshot, **fields: Any) -> None:
        self._stream.write(f"shardsmith: {kind}: {message}\n")
        self._stream.flush()

    def close(self) -> None:
        pass


class _Bar:
    """A rich progress bar, redrawn by the watching thread (no refresh thread of rich's own)."""

    def __init__(self, stream: TextIO, title: str):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._console = Console(file=stream, force_terminal=True, highlight=False)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[words]}"),
            TimeElapsedColumn(),
            console=self._console,
            auto_refresh=False,
            transient=False,
        )
        self._task = self._bar.add_task(title, total=None, words="starting")
        self._bar.start()

    def update(self, snap: Snapshot, *, final: bool = False) -> None:
        self._bar.update(
            self._task,
            description=snap.stage,
            completed=snap.done,
            # Nothing to read (empty sources): no total, or rich takes the task as finished
            # and stops its clock.
            total=snap.total or None,
            words=describe(snap),
        )
        self._bar.refresh()

    def say(self, kind: str, message: str, snap: Snapshot, **fields: Any) -> None:
        self._bar.console.print(f"shardsmith: {kind}: {message}", markup=False)

    def close(self) -> None:
        self._bar.stop()


def _renderer(display: ProgressDisplay, stream: TextIO, title: str):
    """The renderer of ``display.mode`` and the seconds between its updates."""
    mode = display.mode
    if mode == "auto":
        mode = "bar" if stream.isatty() else "plain"
    if mode == "bar":
        return _Bar(stream, title), display.every_s
    if mode == "json":
        # Read by machines, kept in logs: every 2 s is enough, and half the lines.
        return _Json(stream), max(display.every_s, 2.0)
    if mode == "plain":
        return _Plain(stream), display.log_every_s
    return None, display.every_s


class _Watcher:
    """The thread that reads the report files, and shows and checks what they say."""

    def __init__(self, plan: ProgressPlan, directory: str, display: ProgressDisplay, out: TextIO):
        self._plan = plan
        self._dir = directory
        self._display = display
        self._out = out
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, str] = {}
        now = time.monotonic()
        self.tally = Tally(plan, started=now)
        self._renderer, self._every = _renderer(display, out, plan.name)
        # A plain log gets its first line after one interval: a short run's log stays quiet.
        self._next_show = now + (self._every if isinstance(self._renderer, _Plain) else 0)
        self._warned_at = now  # stall warnings count from the later of this and the last report
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="shardsmith-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> None:
        try:
            names = sorted(os.listdir(self._dir))
        except OSError:
            return
        now = time.monotonic()
        for name in names:
            path = os.path.join(self._dir, name)
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets.get(name, 0))
                    data = f.read()
            except OSError:
                continue
            if not data:
                continue
            self._offsets[name] = self._offsets.get(name, 0) + len(data)
            text = self._partial.pop(name, "") + data.decode("utf-8", "replace")
            *lines, rest = text.split("\n")
            if rest:
                self._partial[name] = rest  # a line still being written
            for line in lines:
                if line:
                    self.tally.feed(line, now)

    def _loop(self) -> None:
        while not self._stop.wait(_POLL_S):
            with self._lock:
                self._read()
                now = time.monotonic()
                try:
                    if self._renderer is not None and now >= self._next_show:
                        self._renderer.update(self.tally.snapshot(now))
                        self._next_show = now + self._every
                    self._check_stall(now)
                except OSError:
                    # stderr closed or full (a collector went away): the run goes on unwatched
                    # rather than failing for want of an audience.
                    return

    def _check_stall(self, now: float) -> None:
        stall = self._display.stall_s
        quiet_since = max(self.tally.last_report, self._warned_at)
        if not stall or now - quiet_since < stall:
            return
        self._warned_at = now
        snap = self.tally.snapshot(now)
        idle = now - self.tally.last_report
        flying = self.tally.in_flight()
        if flying is not None:
            key, at = flying
            where = f"last source in flight: {key} (started {_duration(now - at)} ago)"
        elif self.tally.reports == 0:
            where = (
                "no worker has reported yet (starting up, or on another machine that cannot "
                f"write to {self._dir})"
            )
        elif snap.total is not None and snap.done >= snap.total:
            where = "every source is read: the run is writing or committing"
        else:
            where = "no source in flight"
        message = f"no progress for {_duration(idle)} in stage {snap.stage}; {where}"
        fields = {"idle_s": round(idle, 1), "source": flying[0] if flying else None}
        renderer = self._renderer or _Plain(self._out)
        renderer.say("warning", message, snap, **fields)

    def finish(self, ok: bool) -> None:
        """Stop the thread; show the last update (``ok``: everything was read)."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._read()
            if self._renderer is None:
                return
            now = time.monotonic()
            stage = "finished" if ok else "failed"
            snap = self.tally.snapshot(now, finished=ok, stage=stage)
            with contextlib.suppress(OSError):  # as in _loop: the run's outcome stands
                self._renderer.update(snap, final=True)
                self._renderer.close()


def _open_stream(display: ProgressDisplay) -> tuple[TextIO, bool]:
    if display.stream is not None:
        return display.stream, False
    # Its own descriptor: while the run's workers' output goes to a log (runners.execute
    # redirects fd 2), updates still reach the terminal.
    sys.stderr.flush()
    return os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace"), True


@contextlib.contextmanager
def watch(
    plan: ProgressPlan | None, run_id: str, *, remote: str | None = None
) -> Iterator[ProgressTarget | None]:
    """Watch one run: yields the ``ProgressTarget`` to hand to its reading steps (None when
    nothing is watched: outside a ``showing`` block, or for a run without a plan).

    ``remote``: the runner's workers cannot reach this machine (e.g. ``"Dataflow"``); said
    once, and only the planned totals and the elapsed time are shown.
    """
    display = current_display()
    if display is None or plan is None or not display.watches:
        yield None
        return
    out, owned = _open_stream(display)
    directory = tempfile.mkdtemp(prefix=f"shardsmith-{run_id}-progress-")
    watcher = _Watcher(plan, directory, display, out)
    if remote:
        renderer = watcher._renderer or _Plain(out)
        renderer.say(
            "note",
            f"{remote} workers cannot report progress to this machine; showing the "
            f"planned totals and the time elapsed only",
            watcher.tally.snapshot(time.monotonic()),
        )
    ok = False
    watcher.start()
    try:
        yield None if remote else ProgressTarget(directory)
        ok = True
    finally:
        watcher.finish(ok)
        shutil.rmtree(directory, ignore_errors=True)
        if owned:
            out.close()
