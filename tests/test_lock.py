"""``DatasetLock`` on a local path, memory:// and moto's S3 server: one holder at a time (threads
and processes), leases that expire, dead holders taken over, release, and the message."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from catalog import DatasetLock, LockHeld, LockHolder, create_exclusive
from catalog.lock import LOCKS_DIR
from catalog.storage import join, open_url

UTC = timezone.utc


def _lock(store, name="ds", **kw) -> DatasetLock:
    kw.setdefault("poll", 0.01)
    return DatasetLock(store.url(name), storage_options=store.storage_options, **kw)


def _lock_files(store, name="ds") -> list[str]:
    fs, root = open_url(store.url(name), store.storage_options)
    fs.invalidate_cache()
    try:
        return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(join(root, LOCKS_DIR), detail=False))
    except FileNotFoundError:
        return []


def _plant(store, holder: LockHolder, name="ds") -> None:
    """Write a lock generation as another run would have (possibly one that died)."""
    fs, root = open_url(store.url(name), store.storage_options)
    fs.makedirs(join(root, LOCKS_DIR), exist_ok=True)
    path = join(root, LOCKS_DIR, f"lock-{holder.generation:08d}.json")
    create_exclusive(fs, path, holder.to_json())


def _holder(generation=1, *, host="other-host", pid=4242, lease=600.0, **kw) -> LockHolder:
    now = datetime.now(UTC)
    return LockHolder(
        generation=generation,
        host=host,
        pid=pid,
        run_id=kw.pop("run_id", "20261121T231500Z-3f9a1c2e"),
        command=kw.pop("command", "ingest posts"),
        acquired_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(seconds=lease),
        **kw,
    )


def test_threads_hold_the_lock_one_at_a_time(store):
    inside, overlaps, done, errors = [0], [], [], []

    def contender(i):
        try:
            for _ in range(2):
                with _lock(store, run_id=f"t{i}").acquire(wait=30):
                    inside[0] += 1
                    if inside[0] != 1:
                        overlaps.append(i)
                    time.sleep(0.01)
                    inside[0] -= 1
                done.append(i)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not overlaps and len(done) == 6, (errors, overlaps)
    # Every take was a new generation; only the last one's file is left, released.
    assert _lock_files(store) == ["lock-00000006.json"]
    assert _lock(store).holder() is None


_CONTENDER = """
import json, os, sys, time
from catalog import DatasetLock
url, options, marker, rounds = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
DatasetLock(url, storage_options=options).holder()  # connect before the start line
# A barrier: every contender starts contending at once.
open(f"{marker}.ready.{os.getpid()}", "w").close()
while len([n for n in os.listdir(os.path.dirname(marker)) if ".ready." in n]) < int(sys.argv[5]):
    time.sleep(0.005)
for _ in range(rounds):
    with DatasetLock(url, storage_options=options, poll=0.02, command="test").acquire(wait=60):
        # Exclusive on local disk: fails if another holder is inside at the same time.
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        time.sleep(0.02)
        os.close(fd)
        os.unlink(marker)
print("ok")
"""


def test_processes_hold_the_lock_one_at_a_time(store, tmp_path):
    if not store.multiprocess:
        pytest.skip("memory:// lives in one process")
    marker = str(tmp_path / "inside")
    args = [store.url("ds"), json.dumps(store.storage_options), marker, "2", "2"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err
    assert _lock_files(store) == ["lock-00000004.json"]


def test_a_holder_that_stopped_renewing_is_taken_over_after_its_ttl(store):
    # Another host's run that stopped (hung, or its machine died): only the lease can tell.
    _plant(store, _holder(1, lease=0.5))
    with pytest.raises(LockHeld):
        _lock(store).acquire()
    began = time.monotonic()
    lock = _lock(store, run_id="mine").acquire(wait=10)
    try:
        assert 0.2 < time.monotonic() - began < 5
        assert lock.held and lock.holder().generation == 2
        assert _lock_files(store) == ["lock-00000002.json"]  # the old generation is cleaned up
    finally:
        lock.release()


def test_the_lease_is_renewed_while_the_holder_lives(store):
    with _lock(store, ttl=0.6, run_id="long") as lock:
        first = lock.holder().expires_at
        time.sleep(1.3)  # over two TTLs: only renewals keep it
        assert lock.holder().expires_at > first
        with pytest.raises(LockHeld):
            _lock(store).acquire()
        assert lock.held and not lock.lost
    assert _lock(store).acquire().held


def test_a_dead_holder_on_this_host_is_taken_over_at_once(store):
    # (tests/test_schedule.py does this with a real run SIGKILLed while holding the lock.)
    gone = subprocess.Popen(["true"])
    gone.wait()
    ns = os.readlink("/proc/self/ns/pid") if os.path.exists("/proc/self/ns/pid") else ""
    _plant(store, _holder(1, host=socket.gethostname(), pid=gone.pid, pid_namespace=ns))
    assert _lock(store).holder() is None  # a 10-minute lease, but its process is gone
    # Same host name, another PID namespace (another container): the pid says nothing there.
    _plant(store, _holder(1, host=socket.gethostname(), pid=gone.pid, pid_namespace="x"), "ds2")
    assert _lock(store, "ds2").holder() is not None
    began = time.monotonic()
    with _lock(store, run_id="next") as lock:
        assert time.monotonic() - began < 2
        assert lock.holder().run_id == "next" and lock.holder().generation == 2


def test_a_holder_taken_over_finds_out_and_leaves_the_new_generation_alone(store):
    # The contender's clock runs a minute ahead (or the holder stalled): it sees the lease over.
    ahead = _lock(store, run_id="ahead", clock=lambda: datetime.now(UTC) + timedelta(minutes=1))
    with _lock(store, ttl=0.3, run_id="stalled") as stalled:
        ahead.acquire()
        deadline = time.monotonic() + 5
        while not stalled.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stalled.lost and not stalled.held  # its next heartbeat saw generation 2
    assert ahead.holder().run_id == "ahead" and not ahead.holder().released
    ahead.release()


def test_release_lets_the_next_run_in_at_once(store):
    first = _lock(store, run_id="first").acquire()
    with pytest.raises(LockHeld):
        _lock(store).acquire(wait=0.1)
    first.release()
    first.release()  # idempotent
    assert not first.held and _lock(store).holder() is None
    fs, root = open_url(store.url("ds"), store.storage_options)
    record = json.loads(fs.cat_file(join(root, LOCKS_DIR, "lock-00000001.json")))
    assert record["released"] is True and record["run_id"] == "first"
    with _lock(store, run_id="second") as second:
        assert second.holder().generation == 2
    # gc only looks at data/, rejects/ and manifests/: lock files are never collected as orphans
    assert _lock_files(store) == ["lock-00000002.json"]


def test_the_lock_held_message_says_who_since_when_and_what_to_do(store):
    _plant(store, _holder(1, host="build-7", pid=4242))
    with pytest.raises(LockHeld) as caught:
        _lock(store).acquire()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{store.url('ds')} is locked by ingest posts ")
    assert "(run 20261121T231500Z-3f9a1c2e, pid 4242 on build-7) since 20" in message
    assert message.endswith("try again later, or --lock-wait 10m")
    assert caught.value.holder.host == "build-7"
    with pytest.raises(LockHeld, match=r"\(waited 0.2s\); try again later, or a longer"):
        _lock(store).acquire(wait=0.2)


def test_credentials_in_the_url_never_reach_the_message():
    url = "memory://user:hunter2@t-redact/ds"
    DatasetLock(url, command="tokenize").acquire()
    with pytest.raises(LockHeld) as caught:
        DatasetLock(url).acquire()
    assert "hunter2" not in str(caught.value)
    assert str(caught.value).startswith("memory://t-redact/ds is locked by tokenize")


def test_a_generation_taken_on_a_stale_view_never_holds(store, monkeypatch):
    # Gen 1 was cleaned up after gen 2 was taken; a contender that still saw gen 1 as the
    # latest can create gen 2 -- no, it exists; say gen 3 is live and 2 was cleaned up too.
    _plant(store, _holder(3))
    stale = [_holder(1, lease=-1)]
    real_top = DatasetLock._top

    def top_once_stale(self):
        return stale.pop() if stale else real_top(self)

    monkeypatch.setattr(DatasetLock, "_top", top_once_stale)
    with pytest.raises(LockHeld, match="pid 4242 on other-host"):
        _lock(store).acquire()
    assert _lock_files(store) == ["lock-00000003.json"]  # the stale gen 2 was removed


def test_options_are_checked():
    with pytest.raises(ValueError, match="ttl=0: expected a positive duration"):
        DatasetLock("memory://x", ttl=0)
    with pytest.raises(ValueError, match="poll=-1"):
        DatasetLock("memory://x", poll=-1)
