"""``shardsmith schedule``: repeat an incremental ingest or tokenize, one tick at a time.

Each tick is the job run as a child process (``python -m runners.cli ... --incremental
--run-id ID``) in its own process group, so a terminal's Ctrl-C reaches the scheduler only and
the scheduler decides what the tick gets. The tick's outcome is read from the dataset by its run
id (the commit happens on a Beam worker; the dataset is the one place its outcome surely
reaches), and logged as one line on stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

from runners.errors import UserError
from runners.schedule import passed_through

# After a second signal the tick gets SIGTERM; if it has not ended after this, SIGKILL.
_GRACE_S = 30.0
_POLL_S = 0.2


def schedule(args) -> int:
    """Validate the job, then run its ticks until ``--max-ticks`` or a signal."""
    from runners.cli import build_parser
    from runners.options import parse_storage_options
    from runners.schedule import parse_job
    from runners.units import parse_duration

    every = parse_duration(args.every, "--every").total_seconds()
    if every <= 0:
        raise UserError(f"--every {args.every!r}: expected a positive duration such as 15m")
    if args.max_ticks is not None and args.max_ticks < 1:
        raise UserError(f"--max-ticks {args.max_ticks}: expected 1 or more")
    parse_duration(args.lock_wait, "--lock-wait")
    if parse_duration(args.lock_ttl, "--lock-ttl").total_seconds() <= 0:
        raise UserError(f"--lock-ttl {args.lock_ttl!r}: expected a positive duration")
    job = parse_job(args.job)
    # The job's own parser checks the rest now (exit 2, one line), not at the first tick.
    build_parser().parse_known_args([*job.verb, *job.args])
    storage_options = parse_storage_options(job.storage_options)
    return _Scheduler(
        job,
        storage_options,
        every=every,
        max_ticks=args.max_ticks,
        lock_wait=args.lock_wait,
        lock_ttl=args.lock_ttl,
        verbose=args.verbose,
        progress=args.progress,
    ).run()


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class _Scheduler:
    def __init__(
        self, job, storage_options, *, every, max_ticks, lock_wait, lock_ttl, verbose, progress
    ):
        self._job = job
        self._storage_options = storage_options
        self._every = every
        self._max_ticks = max_ticks
        self._lock_wait = lock_wait
        self._lock_ttl = lock_ttl
        self._verbose = verbose
        self._progress = progress
        # Written by the signal handler, read by the loop: the handler itself does no I/O and
        # takes no lock, so it cannot deadlock or interleave with a line being written.
        self._signals: list[int] = []

    def run(self) -> int:
        from runners.schedule import next_slot

        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        start = time.monotonic()
        slot, tick, last = 0, 0, None
        try:
            while not self._signals:
                tick += 1
                last = self._tick(tick)
                _say(last.format())
                if len(self._signals) >= 2:
                    return 128 + self._signals[-1]
                if self._signals or (self._max_ticks and tick >= self._max_ticks):
                    break
                slot, delay = next_slot(time.monotonic() - start, self._every, slot)
                self._sleep(delay)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self._signals:
            name = signal.Signals(self._signals[0]).name
            ticks = f"{tick} tick" + ("s" if tick != 1 else "")
            _say(f"{_now()} schedule stopped by {name} after {ticks}")
            return 0
        return 1 if last is not None and last.status in ("failed", "killed") else 0

    def _on_signal(self, signum, frame) -> None:
        self._signals.append(signum)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._signals and (left := end - time.monotonic()) > 0:
            time.sleep(min(_POLL_S, left))

    def _tick(self, n: int):
        from catalog import new_run_id
        from runners.locking import LOCKED_PREFIX
        from runners.schedule import TickLine, tick_argv

        started = datetime.now(timezone.utc)
        t0 = time.monotonic()
        since = self._latest()
        run_id = new_run_id()
        argv = [
            sys.executable,
            "-m",
            "runners.cli",
            *(["-v"] if self._verbose else []),
            *tick_argv(
                self._job,
                run_id=run_id,
                lock_wait=self._lock_wait,
                lock_ttl=self._lock_ttl,
                progress=self._progress,
            ),
        ]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # Its own process group: Ctrl-C on the terminal reaches only the scheduler, and the
            # tick (the CLI and its Beam workers) can be signalled, or kill itself, as a whole.
            child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, process_group=0
            )
            rc = self._wait(child, n, _Follow(err, n, progress=self._progress == "json"))
            out.seek(0)
            err.seek(0)
            said = err.read().decode("utf-8", "replace")
            if self._verbose:
                sys.stderr.write(out.read().decode("utf-8", "replace") + said)
        lines = [line.strip() for line in said.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if rc == 1 and last.startswith(LOCKED_PREFIX):
            # It never ran, so there is no outcome to read: the lock's holder is the news.
            holder = last[len(LOCKED_PREFIX) :].strip().rpartition("; ")[0]
            detail = f"{holder}; waiting for the next tick"
            return TickLine(n, started, "lock-held", since, time.monotonic() - t0, None, detail)
        report, problem = self._outcome(run_id, since, rc)
        version = self._latest() if problem is None else since
        status, counts, detail = _classify(rc, report, last, problem)
        return TickLine(n, started, status, version, time.monotonic() - t0, counts, detail)

    def _wait(self, child: subprocess.Popen, n: int, follow: _Follow) -> int:
        seen = 0
        kill_at = None
        while True:
            try:
                rc = child.wait(timeout=_POLL_S)
                follow.poll()
                return rc
            except subprocess.TimeoutExpired:
                follow.poll()
            if len(self._signals) > seen:
                seen = len(self._signals)
                name = signal.Signals(self._signals[-1]).name
                if seen == 1:
                    _say(
                        f"{_now()} {name}: finishing tick {n}, then exiting "
                        f"(send it again to stop the tick now)"
                    )
                elif kill_at is None:
                    _say(f"{_now()} {name} again: stopping tick {n}")
                    _signal_group(child, signal.SIGTERM)
                    kill_at = time.monotonic() + _GRACE_S
            if kill_at is not None and time.monotonic() > kill_at:
                _signal_group(child, signal.SIGKILL)
                kill_at = float("inf")

    def _latest(self) -> int:
        """The dataset's latest version; 0 before the first commit, or while it is unreachable
        (the tick then fails and says why; the schedule goes on)."""
        from catalog import Dataset, DatasetError

        try:
            return Dataset.open(
                self._job.dataset, storage_options=self._storage_options
            ).latest_version()
        except (DatasetError, OSError):
            return 0

    def _outcome(self, run_id: str, since: int, rc: int):
        """``(report dict or None, None)``, or ``(None, why)`` when the dataset was unreadable.

        The version the run committed (found by its run id) carries its report; a run that
        ended on its own without committing may have left a failure report (``run_outcome``).
        """
        from catalog import Dataset, DatasetError
        from schemas import ManifestError

        try:
            try:
                ds = Dataset.open(self._job.dataset, storage_options=self._storage_options)
            except DatasetError:
                return None, None  # the tick died before creating the dataset
            # A tokenize tick whose inputs removed posts commits a delete version first, under
            # its own id (pipelines.tokenize_removals.removal_run_id); with nothing new to
            # tokenize, that version is the tick's outcome.
            committed = ds.find_run(run_id, since) or ds.find_run(f"{run_id}-removals", since)
            if committed is not None:
                return {
                    **committed.report,
                    "status": "committed",
                    "version": committed.version,
                }, None
            if rc == 0 or _signal_name(rc):
                return None, None
            # Imports Beam (seconds): only for a run that failed.
            from runners.execute import run_outcome

            report = run_outcome(self._job.dataset, run_id, since, self._storage_options)
            return report.to_dict(), None
        except (OSError, ManifestError) as exc:
            # The tick's line says so; the next tick reads the dataset afresh.
            return None, f"could not read the outcome from the dataset: {exc}"


class _Follow:
    """Reads what a tick writes on stderr (a file) as it comes; passes on what the tick log
    shows (``runners.schedule.passed_through``). The file is read again whole at the end."""

    def __init__(self, err, tick: int, *, progress: bool):
        self._err, self._tick, self._progress = err, tick, progress
        self._offset = 0
        self._partial = b""

    def poll(self) -> None:
        # pread: the tick writes through the same open file, so its offset must not move.
        data = b""
        while chunk := os.pread(self._err.fileno(), 1 << 20, self._offset + len(data)):
            data += chunk
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            shown = passed_through(
                line.decode("utf-8", "replace"), self._tick, progress=self._progress
            )
            if shown is not None:
                _say(shown)


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)


def _classify(rc: int, report: dict | None, last: str, problem: str | None):
    """``(status, counts, detail)`` of a tick that ran; ``last``: its last line on stderr."""
    status = report.get("status") if report else None
    counts = None
    if status in ("committed", "failed"):
        counts = tuple(
            int(report.get(f"records_{name}", 0))
            for name in ("in", "written", "rejected", "deduplicated")
        )
    died = _signal_name(rc)
    if status == "committed":
        after = f"then killed by {died}" if died else (f"then exit {rc}: {last}" if rc else "")
        return "committed", counts, after
    if status == "failed":
        return "failed", counts, report.get("message", "")
    if problem:
        return "failed", None, problem
    if rc == 0:
        return "nothing-new", None, "nothing new, nothing committed"
    if died:
        return "killed", None, f"{died}, nothing committed"
    return "failed", None, f"exit {rc}: {last}" if last else f"exit {rc}"


def _signal_name(rc: int) -> str | None:
    # A negative status is death by a signal; 130/143 is the CLI's own exit on SIGINT/SIGTERM.
    if rc < 0:
        number = -rc
    elif rc in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        number = rc - 128
    else:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
