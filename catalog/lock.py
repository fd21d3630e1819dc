"""``DatasetLock``: one writing run per dataset at a time, on every store that can commit.

The lock is a sequence of generation files ``<dataset>/_locks/lock-NNNNNNNN.json``, each created
with ``create_exclusive`` (the commit protocol's only primitive). The highest generation decides:
its holder holds the lock while its lease is live -- not released, not expired, and, when the
holder ran on this host, its process still exists. Taking the lock means exclusively creating
the next generation, so of two contenders that both saw the lock free, exactly one wins; the
other gets ``FileExistsError`` and looks again. The highest generation file is never deleted
(release marks it released), so a generation number can only be created once more if a newer one
exists, which the winner checks right after creating it.

While held, a heartbeat thread renews the lease (rewrites the holder's own file with a later
``expires_at``) every third of the TTL. A holder that dies stops renewing: its lock expires after
the TTL, or at once for a contender on the same host (same hostname and PID namespace) that sees
the holder's pid is gone. Leases compare wall clocks, so hosts sharing a dataset need clocks
synchronized to well within the TTL. ``gc`` never looks at ``_locks/``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from catalog.exclusive import create_exclusive
from catalog.storage import is_local, join, modified_at, open_url, redact_url

__all__ = ["DEFAULT_LOCK_TTL", "LOCKS_DIR", "DatasetLock", "LockHeld", "LockHolder"]

log = logging.getLogger(__name__)

LOCKS_DIR = "_locks"
DEFAULT_LOCK_TTL = timedelta(minutes=10)
_NAME = re.compile(r"^lock-(\d{8,})\.json$")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _pid_namespace() -> str:
    # Two containers may share a hostname but not a PID namespace: a pid is only checked for
    # life where it means the same process.
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # A killed process its parent has not reaped yet is a zombie: dead for our purpose.
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class LockHeld(RuntimeError):
    """Another live run holds the dataset's lock. The message is one line: which dataset, who
    holds it, since when, and what to do; ``holder`` is the ``LockHolder``."""

    def __init__(self, message: str, holder: LockHolder):
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class LockHolder:
    """One generation of a dataset's lock: who took it and until when its lease runs (UTC).

    Args:
        generation: the lock file's number; the highest one decides who holds the lock.
        host / pid / pid_namespace: where the holder runs (pid checked only on the same host).
        run_id / command: what the holder is doing (``ingest posts``, ``tokenize``...).
        acquired_at / expires_at: when it took the lock, and when its lease ends unless renewed.
        released: the holder let go (the next contender takes the next generation).
        token: unique per take, so a holder can recognise its own record.
    """

    generation: int
    host: str
    pid: int
    run_id: str
    command: str
    acquired_at: datetime
    expires_at: datetime
    released: bool = False
    pid_namespace: str = ""
    token: str = ""

    def to_json(self) -> bytes:
        out = asdict(self)
        out["acquired_at"] = _iso(self.acquired_at)
        out["expires_at"] = _iso(self.expires_at)
        return json.dumps(out, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LockHolder:
        # Fields a later version may add are ignored, so old and new runs can share a lock.
        obj = {k: v for k, v in json.loads(raw).items() if k in cls.__dataclass_fields__}
        obj["acquired_at"] = datetime.fromisoformat(obj["acquired_at"].replace("Z", "+00:00"))
        obj["expires_at"] = datetime.fromisoformat(obj["expires_at"].replace("Z", "+00:00"))
        return cls(**obj)

    def is_live(self, now: datetime) -> bool:
        """Whether this generation still holds the lock at ``now``."""
        if self.released or now >= self.expires_at:
            return False
        if self.host == socket.gethostname() and self.pid_namespace == _pid_namespace():
            return _pid_alive(self.pid)
        return True

    def describe(self) -> str:
        """``ingest posts (run 20261121T231500Z-3f9a1c2e, pid 4242 on host-1)``."""
        what = self.command or "a run"
        run = f"run {self.run_id}, " if self.run_id else ""
        return f"{what} ({run}pid {self.pid} on {self.host})"


class DatasetLock:
    """The lock that lets one writing run at a time at a dataset (local, ``memory://``, ``s3://``).

    Example::

        lock = DatasetLock("s3://bucket/posts", run_id=run_id, command="ingest posts",
                           storage_options={...})
        with lock.acquire(wait=60):   # LockHeld after 60 s if another live run holds it
            ...                        # the lease is renewed in the background meanwhile

    Args:
        dataset: the dataset URL (the dataset itself need not exist yet).
        storage_options: fsspec options for ``dataset`` (never written anywhere).
        ttl: lease length (seconds or ``timedelta``, default 10 min); renewed every third of it
            while held. A holder that dies is taken over after it, or at once from the same host.
        run_id / command: who holds the lock, shown to whoever waits for it.
        poll: seconds between looks while waiting (default 1).
        clock: the current UTC time (injectable for tests).
    """

    def __init__(
        self,
        dataset: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        ttl: float | timedelta = DEFAULT_LOCK_TTL,
        run_id: str = "",
        command: str = "",
        poll: float = 1.0,
        clock: Callable[[], datetime] = _utc_now,
    ):
        self._ttl = _seconds(ttl)
        if self._ttl <= 0:
            raise ValueError(f"ttl={ttl!r}: expected a positive duration")
        if poll <= 0:
            raise ValueError(f"poll={poll!r}: expected a positive number of seconds")
        self._fs, root = open_url(dataset, storage_options)
        self._dir = join(root, LOCKS_DIR)
        self.url = redact_url(dataset)
        self._run_id = run_id
        self._command = command
        self._poll = poll
        self._clock = clock
        self._mine: LockHolder | None = None
        self._lost = False
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (and has not found it taken over)."""
        return self._mine is not None and not self._lost

    @property
    def lost(self) -> bool:
        """The lease ran out while held (a stalled process) and another run took the lock over."""
        return self._lost

    def holder(self) -> LockHolder | None:
        """Who holds the lock now (maybe this object), or None when it is free."""
        top = self._top()
        return top if top is not None and top.is_live(self._clock()) else None

    # -- acquire and release -------------------------------------------------------------------

    def acquire(self, wait: float | timedelta = 0) -> DatasetLock:
        """Take the lock, waiting up to ``wait`` seconds for a live holder to finish.

        Returns ``self`` (a context manager that releases it). Raises ``LockHeld`` when another
        live run still holds it after ``wait``.
        """
        if self._mine is not None:
            raise RuntimeError(f"{self.url}: this DatasetLock is already held")
        wait_s = _seconds(wait)
        deadline = time.monotonic() + wait_s
        if is_local(self._fs):
            self._fs.makedirs(self._dir, exist_ok=True)
        while True:
            top = self._top()
            now = self._clock()
            if top is not None and top.is_live(now):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockHeld(self._held_message(top, wait_s), top)
                time.sleep(min(self._poll, left))
                continue
            mine = LockHolder(
                generation=(top.generation if top else 0) + 1,
                host=socket.gethostname(),
                pid=os.getpid(),
                run_id=self._run_id,
                command=self._command,
                acquired_at=now,
                expires_at=now + timedelta(seconds=self._ttl),
                pid_namespace=_pid_namespace(),
                token=uuid.uuid4().hex,
            )
            try:
                create_exclusive(self._fs, self._path(mine.generation), mine.to_json())
            except FileExistsError:
                continue  # another contender took this generation: look again
            if self._generations()[-1:] != [mine.generation]:
                # Our number had been cleaned up below a newer generation we did not see: the
                # newer one decides, so ours never held anything.
                with contextlib.suppress(FileNotFoundError):
                    self._fs.rm_file(self._path(mine.generation))
                continue
            if self._token(mine.generation) != mine.token:
                # Two creators both told they won (a store whose conditional PUT checks, then
                # writes, without a lock: moto's server under load): the record kept decides.
                continue
            break
        self._mine, self._lost = mine, False
        self._clean_below(mine.generation)
        if top is not None and not top.released:
            log.warning("%s: took over the lock of %s", self.url, top.describe())
        self._stop.clear()
        self._beat = threading.Thread(
            target=self._heartbeat, name=f"lock-heartbeat-{mine.generation}", daemon=True
        )
        self._beat.start()
        log.info("%s: lock generation %d taken", self.url, mine.generation)
        return self

    def release(self) -> None:
        """Let go of the lock (idempotent). The next contender takes it at once."""
        if self._mine is None:
            return
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join()
        with self._guard:
            mine, self._mine = self._mine, None
            try:
                if self._lost or self._generations()[-1:] != [mine.generation]:
                    return  # taken over: the file is no longer ours to write
                self._write(replace(mine, released=True, expires_at=self._clock()))
            except OSError as exc:
                # The lease still ends on its own after the TTL; nothing is lost but time.
                log.warning(
                    "%s: could not release the lock (%s); it expires at %s",
                    self.url,
                    exc,
                    _iso(mine.expires_at),
                )

    def __enter__(self) -> DatasetLock:
        if self._mine is None:
            self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    # -- internals -----------------------------------------------------------------------------

    def _path(self, generation: int) -> str:
        return join(self._dir, f"lock-{generation:08d}.json")

    def _generations(self) -> list[int]:
        self._fs.invalidate_cache(self._dir)  # s3fs caches listings; the lock needs them fresh
        try:
            names = self._fs.ls(self._dir, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        found = (_NAME.match(name.rstrip("/").rsplit("/", 1)[-1]) for name in names)
        return sorted(int(m.group(1)) for m in found if m)

    def _token(self, generation: int) -> str | None:
        try:
            return LockHolder.from_json(self._fs.cat_file(self._path(generation))).token
        except FileNotFoundError:
            return None

    def _top(self) -> LockHolder | None:
        """The highest generation's record (re-listed if a cleanup removes it meanwhile)."""
        for _ in range(100):
            generations = self._generations()
            if not generations:
                return None
            path = self._path(generations[-1])
            try:
                raw = self._fs.cat_file(path)
            except FileNotFoundError:
                continue
            try:
                return LockHolder.from_json(raw)
            except (ValueError, KeyError, TypeError):
                # Lock files are written whole (link, rename or one PUT), so this is damage from
                # outside: treat the file as a holder whose lease ran from its modification time.
                stamp = modified_at(self._fs.info(path)) or self._clock()
                return LockHolder(
                    generation=generations[-1],
                    host="?",
                    pid=0,
                    run_id="",
                    command=f"an unreadable lock file {path}",
                    acquired_at=stamp,
                    expires_at=stamp + timedelta(seconds=self._ttl),
                )
        raise RuntimeError(f"{self.url}: lock files keep changing under {LOCKS_DIR}/")

    def _write(self, record: LockHolder) -> None:
        """Overwrite this holder's own generation file, whole (readers never see half of it)."""
        path = self._path(record.generation)
        if is_local(self._fs):
            tmp = join(self._dir, f".tmp-{uuid.uuid4().hex}")
            with open(tmp, "wb") as f:
                f.write(record.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            self._fs.pipe_file(path, record.to_json())

    def _clean_below(self, generation: int) -> None:
        for older in self._generations():
            if older < generation:
                with contextlib.suppress(FileNotFoundError):
                    self._fs.rm_file(self._path(older))

    def _heartbeat(self) -> None:
        interval = self._ttl / 3
        while not self._stop.wait(interval):
            with self._guard:
                mine = self._mine
                if mine is None:
                    return
                try:
                    if self._generations()[-1:] != [mine.generation]:
                        self._lost = True
                    elif self._clock() >= mine.expires_at:
                        self._lost = True  # renewals failed for a whole TTL: assume taken over
                    else:
                        renewed = replace(
                            mine, expires_at=self._clock() + timedelta(seconds=self._ttl)
                        )
                        self._write(renewed)
                        self._mine = renewed
                except OSError as exc:
                    # A storage hiccup: the lease still runs; the next beat tries again.
                    log.warning("%s: lock renewal failed (%s); retrying", self.url, exc)
                if self._lost:
                    log.error(
                        "%s: lost the lock (lease expired, another run took it over)", self.url
                    )
                    return

    def _held_message(self, top: LockHolder, waited: float) -> str:
        since = _iso(top.acquired_at)
        waiting = f" (waited {_human(waited)})" if waited > 0 else ""
        advice = (
            "try again later, or --lock-wait 10m"
            if waited <= 0
            else "try again later, or a longer --lock-wait"
        )
        return (
            f"{self.url} is locked by {top.describe()} since {since}, lease until "
            f"{_iso(top.expires_at)}{waiting}; {advice}"
        )
