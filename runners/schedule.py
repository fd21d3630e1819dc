"""The plain logic of ``shardsmith schedule``: which jobs, each tick's command line, when ticks
start, and the one line each tick logs. No processes, signals or storage here (see
``runners.commands.schedule``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from runners.errors import UserError

__all__ = [
    "SCHEDULABLE",
    "Job",
    "TickLine",
    "next_slot",
    "parse_job",
    "passed_through",
    "tick_argv",
]

# The commands that write a dataset incrementally; anything else has no business repeating.
SCHEDULABLE = (("ingest", "posts"), ("ingest", "fleet"), ("tokenize",))
_OWNED = ("--run-id",)


@dataclass(frozen=True)
class Job:
    """The command a schedule repeats.

    Args:
        verb: ``("ingest", "posts")``, ``("ingest", "fleet")`` or ``("tokenize",)``.
        args: everything after the verb, as given.
        dataset: the ``--to`` dataset (where each tick's outcome is read).
        storage_options: the job's ``--storage-options`` text (JSON or ``@file``), if any.
    """

    verb: tuple[str, ...]
    args: tuple[str, ...]
    dataset: str
    storage_options: str | None = None

    @property
    def name(self) -> str:
        return " ".join(self.verb)


def parse_job(argv: Sequence[str]) -> Job:
    """Check the command after ``--`` is schedulable and names its dataset; ``UserError`` if not.

    The full argument check is the command's own parser (``runners.cli``), run by the caller.
    """
    argv = list(argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    allowed = " | ".join(" ".join(v) for v in SCHEDULABLE)
    verb = next((v for v in SCHEDULABLE if tuple(argv[: len(v)]) == v), None)
    if verb is None:
        given = " ".join(argv[:2]) or "nothing"
        raise UserError(
            f"schedule: cannot schedule {given!r}: expected -- {allowed} ... --to DATASET"
        )
    args = argv[len(verb) :]
    for flag in _OWNED:
        if _flag_value(args, flag) is not None:
            raise UserError(f"schedule: {flag} is set by the schedule, once per tick; remove it")
    dataset = _flag_value(args, "--to")
    if not dataset:
        raise UserError(
            f"schedule: {' '.join(verb)} needs --to DATASET (the dataset each tick writes)"
        )
    return Job(verb, tuple(args), dataset, _flag_value(args, "--storage-options"))


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    value = None
    for i, arg in enumerate(args):
        if arg == flag:
            value = args[i + 1] if i + 1 < len(args) else ""
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def tick_argv(
    job: Job, *, run_id: str, lock_wait: str, lock_ttl: str, progress: str = "off"
) -> list[str]:
    """The tick's command line (after ``shardsmith``): the job, ``--incremental``, its run id.

    The schedule's ``--lock-wait`` / ``--lock-ttl`` / ``--progress`` go first, so the job's
    own, if given, win. (A tick's stderr is a file: ``--progress off`` keeps plain progress
    lines out of it; stall warnings still come.)
    """
    own = ["--run-id", run_id, "--lock-wait", lock_wait, "--lock-ttl", lock_ttl]
    own += ["--progress", progress]
    if "--incremental" not in job.args:
        own.append("--incremental")
    return [*job.verb, *own, *job.args]


def passed_through(line: str, tick: int, *, progress: bool) -> str | None:
    """What the tick log shows of one line a tick wrote on stderr, as it comes (None: nothing).

    A stall warning always (a stuck tick must be visible before it ends); with ``progress``,
    the tick's JSON progress objects too, each with ``"tick": N`` added.
    """
    text = line.strip()
    if text.startswith("{") and '"stage"' in text:
        if not progress:
            return None
        try:
            update = json.loads(text)
        except ValueError:
            return None
        if not isinstance(update, dict):
            return None
        return json.dumps({"tick": tick, **update})
    if text.startswith("shardsmith: warning: no progress"):
        return f"tick {tick}: {text[len('shardsmith: ') :]}"
    return None


def next_slot(elapsed: float, every: float, last: int) -> tuple[int, float]:
    """The slot of the next tick and the seconds until it starts.

    Slot ``k`` starts ``k * every`` seconds after the first tick started, so ticks never drift.
    ``elapsed``: seconds since then; ``last``: the slot of the tick that just ended. A tick that
    overran its interval is followed at once, in the slot it ended in (missed slots are skipped,
    not queued), so the next one is back on the grid.
    """
    if every <= 0:
        raise ValueError(f"every={every}: expected a positive number of seconds")
    due = (last + 1) * every
    if elapsed < due:
        return last + 1, due - elapsed
    return max(last + 1, int(elapsed // every)), 0.0


@dataclass(frozen=True)
class TickLine:
    """What one tick did, logged as one line.

    Args:
        tick: 1, 2, ...
        started: when the tick started (UTC).
        status: ``committed``, ``nothing-new``, ``lock-held``, ``failed`` or ``killed``.
        version: the dataset's latest version after the tick (0: nothing committed yet).
        seconds: how long the tick took.
        counts: records in, written, rejected, deduplicated, when the run reported them.
        detail: what else to say (the lock's holder, the error, the signal).
    """

    tick: int
    started: datetime
    status: str
    version: int
    seconds: float
    counts: tuple[int, int, int, int] | None = None
    detail: str = ""

    def format(self) -> str:
        when = self.started.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts = []
        if self.counts is not None:
            n_in, written, rejected, dedup = self.counts
            parts.append(
                f"in {n_in:,}, written {written:,}, rejected {rejected:,}, deduplicated {dedup:,}"
            )
        if self.detail:
            parts.append(self.detail)
        says = f": {'; '.join(parts)}" if parts else ""
        return (
            f"{when} tick {self.tick} {self.status} version {self.version}{says} "
            f"({self.seconds:.1f} s)"
        )
