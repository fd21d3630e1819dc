"""A run's progress on the driver: what the workers reported, against what the plan knows.

The workers append small reports to files in the run's progress directory
(``transforms.progress``); a thread here reads them every half second, adds them up against the
plan's totals (``ProgressPlan``, ``runners.progress_tally``) and shows them as the
``ProgressDisplay`` asks (``runners.progress_views``): a rich progress bar on a
terminal, one JSON object per update (``--progress json``), a plain line every 30 s in a log,
or nothing. Whatever is shown, a run that reports nothing for ``stall_s`` gets a warning naming
its stage and the last source in flight.

Only the standard library is imported here; rich is imported when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from runners.progress_tally import ProgressPlan, Snapshot, Tally
from runners.progress_views import PlainView, duration, renderer
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
        self._renderer, self._every = renderer(display, out, plan.name)
        # A plain log gets its first line after one interval: a short run's log stays quiet.
        self._next_show = now + (self._every if isinstance(self._renderer, PlainView) else 0)
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
            where = f"last source in flight: {key} (started {duration(now - at)} ago)"
        elif self.tally.reports == 0:
            where = (
                "no worker has reported yet (starting up, or on another machine that cannot "
                f"write to {self._dir})"
            )
        elif snap.total is not None and snap.done >= snap.total:
            where = "every source is read: the run is writing or committing"
        else:
            where = "no source in flight"
        message = f"no progress for {duration(idle)} in stage {snap.stage}; {where}"
        fields = {"idle_s": round(idle, 1), "source": flying[0] if flying else None}
        renderer = self._renderer or PlainView(self._out)
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
        renderer = watcher._renderer or PlainView(out)
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
