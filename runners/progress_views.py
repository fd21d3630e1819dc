"""Showing a run's progress: a rich bar on a terminal, JSON lines, or a plain line now and then.

Each view takes ``Snapshot`` s (``runners.progress_tally``) as ``update`` s and warnings as
``say``; ``renderer`` picks the one a ``ProgressDisplay`` asks for. rich is imported only when
a bar is drawn.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TextIO

from runners.progress_tally import Snapshot

if TYPE_CHECKING:
    from runners.progress import ProgressDisplay

__all__ = ["PlainView", "describe", "duration", "renderer"]

_UNIT_NAMES = {"bytes": "bytes", "rows": "rows", "records": "records"}


def _amount(n: float, unit: str) -> str:
    if unit == "bytes":
        from runners.console import human_bytes

        return human_bytes(n)
    return f"{n:,.0f}"


def duration(seconds: float | None) -> str:
    """``45s``, ``3m05s``, ``2h07m`` (``?`` when unknown)."""
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
        parts.append(f"ETA {duration(snap.eta_s)}")
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


class PlainView:
    """A line of ``describe`` now and then: for logs, and what a warning falls back to."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def update(self, snap: Snapshot, *, final: bool = False) -> None:
        if final:
            return  # the run report follows
        pct = f"{snap.done / snap.total:.0%} " if snap.total else ""
        line = f"{snap.stage} {pct}({describe(snap)}), {duration(snap.elapsed_s)} elapsed"
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


def renderer(display: ProgressDisplay, stream: TextIO, title: str):
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
        return PlainView(stream), display.log_every_s
    return None, display.every_s
