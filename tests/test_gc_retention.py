"""gc retention: ``--keep-versions`` / ``--keep-for`` expire old versions and delete the files only
they listed (local, memory://, S3 on moto's server), readers of an expired version get an error
naming the oldest live one (Dataset, query, inspect, TokenReader), gc holds the dataset's lock,
and a gc SIGKILLed at any point leaves every kept version readable and is finished by the next."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_bucket, s3_options
from tablegen import T0, posts_table, read_version, write_data_file
from test_token_reader import make_tokens, props

from catalog import (
    CommitRequest,
    Dataset,
    DatasetError,
    DatasetLock,
    RetentionPolicy,
    TokenReader,
    collect_garbage,
    expire_versions,
    new_run_id,
)
from catalog.parquet import read_parquet
from runners.cli import main
from schemas import FileEntry

BIN = Path(sys.executable).parent / "shardsmith"


def _commit(ds: Dataset, op: str = "append", add=(), remove=(), at=None, **request):
    """Commit a version (at time ``at`` if given); ``request`` adds CommitRequest fields."""
    request.setdefault("run_id", new_run_id())
    clock = {"now": lambda: at} if at is not None else {}
    return ds.commit(CommitRequest(operation=op, add=add, remove=remove, **request), **clock)


def _file(ds: Dataset, table: pa.Table) -> FileEntry:
    # In a dt= partition, as ingest writes posts (query and inspect read the dt column).
    return write_data_file(ds, f"data/dt=2026-11-20/{new_run_id()}-00000.parquet", table)


def _post_ids_on_store(ds: Dataset) -> set[str]:
    """Every post id in every Parquet file under ``data/``, listed or not."""
    ids: set[str] = set()
    for path in ds.fs.find(ds.path("data")):
        ids |= set(read_parquet(ds.fs, path).column("post_id").to_pylist())
    return ids


def _with_a_compliance_delete(url: str, storage_options=None) -> tuple[Dataset, dict]:
    """v1 a0..a2, v2 b0..b1, v3 deletes a1 (file A rewritten as A2), v4 c0..c1."""
    ds = Dataset.create(url, "posts", storage_options=storage_options)
    a = _file(ds, posts_table(3, "a"))
    _commit(ds, add=[a])
    b = _file(ds, posts_table(2, "b"))
    _commit(ds, add=[b])
    kept = posts_table(3, "a").filter(pa.array([True, False, True]))
    a2 = _file(ds, kept)
    _commit(ds, "delete", add=[a2], remove=[a.path])
    c = _file(ds, posts_table(2, "c"))
    _commit(ds, add=[c])
    return ds, {"a": a.path, "b": b.path, "a2": a2.path, "c": c.path}


def test_keep_versions_expires_old_versions_and_deletes_their_files(store):
    ds, paths = _with_a_compliance_delete(store.url("posts"), store.storage_options)
    assert "a1" in _post_ids_on_store(ds)  # time travel: v1 and v2 still hold the removed post
    v1_run = ds.manifest(1).run_id

    result = expire_versions(ds, RetentionPolicy(keep_versions=2), run_id="gc-1")
    assert result.expired == (1, 2) and result.finished == ()
    assert result.removed == (paths["a"],) and result.removed_bytes > 0
    assert (result.oldest_live, result.total_expired) == (3, 2)

    ds = Dataset.open(store.url("posts"), storage_options=store.storage_options)
    assert ds.versions() == [3, 4]
    assert "a1" not in _post_ids_on_store(ds)  # no file under the dataset holds it any more
    expected = ["a0", "a2", "b0", "b1", "c0", "c1"]
    assert sorted(read_version(ds).column("post_id").to_pylist()) == expected
    assert read_version(ds, 3).num_rows == 4
    with pytest.raises(DatasetError) as err:
        ds.manifest(1)
    message = str(err.value)
    assert "version 1 was expired by gc (--keep-versions 2)" in message
    assert "versions 1..2 are gone" in message and "the oldest live version is 3" in message
    with pytest.raises(DatasetError, match=r"no version 9 \(versions 3..4\)"):
        ds.manifest(9)
    record = ds.expiry()
    assert (record.through, record.oldest_live, record.run_id) == (2, 3, "gc-1")
    assert [v.version for v in record.versions] == [1, 2] and record.files == (paths["a"],)
    assert ds.find_run(v1_run) is None  # an expired run is simply not found

    # Again with the same policy: nothing to do. Keeping 1: v3 goes, but its files are v4's.
    again = expire_versions(ds, RetentionPolicy(keep_versions=2))
    assert (again.expired, again.removed, again.total_expired) == ((), (), 2)
    assert ds.manifest(3).version == 3  # cached by this Dataset object
    one = expire_versions(ds, RetentionPolicy(keep_versions=1))
    assert (one.expired, one.removed, one.total_expired) == ((3,), (), 3)
    with pytest.raises(DatasetError, match="version 3 was expired by gc"):
        ds.manifest(3)  # the cache forgets what gc expired
    assert ds.versions() == [4] and read_version(ds).num_rows == 6
    # The latest version is never expired, and orphan gc still only removes orphans.
    assert expire_versions(ds, RetentionPolicy(keep_versions=1)).expired == ()
    assert collect_garbage(ds, min_age=timedelta(0)).removed == ()
    assert ds.versions() == [4]


def test_dry_run_changes_nothing(tmp_path):
    ds, paths = _with_a_compliance_delete(str(tmp_path / "posts"))
    dry = expire_versions(ds, RetentionPolicy(keep_versions=2), dry_run=True)
    assert (dry.expired, dry.removed) == ((1, 2), (paths["a"],))
    assert ds.versions() == [1, 2, 3, 4] and ds.expiry() is None
    assert (tmp_path / "posts" / paths["a"]).exists()
    assert not (tmp_path / "posts" / "_retention").exists()


def test_keep_for_keeps_young_versions_and_the_union_with_keep_versions(tmp_path):
    ds = Dataset.create(str(tmp_path / "posts"), "posts")
    hours = (0, 1, 2, 30)
    for i, h in enumerate(hours):
        _commit(ds, add=[_file(ds, posts_table(1, f"v{i}-"))], at=T0 + timedelta(hours=h))
    now = T0 + timedelta(hours=31)

    def plan(**kw):
        return expire_versions(ds, RetentionPolicy(**kw), dry_run=True, now=now).expired

    assert plan(keep_for=timedelta(hours=24)) == (1, 2, 3)  # only v4 is younger than 24h
    assert plan(keep_for=timedelta(hours=30)) == (1,)  # v2 (29 h old) and v3 (29 h old) stay
    assert plan(keep_for=timedelta(hours=24), keep_versions=2) == (1, 2)  # either rule keeps
    assert plan(keep_for=timedelta(0)) == (1, 2, 3)  # the latest always stays
    done = expire_versions(ds, RetentionPolicy(keep_for=timedelta(hours=24)), now=now)
    assert done.expired == (1, 2, 3) and ds.versions() == [4]
    # Appends: every old file is still listed by v4, so nothing is deleted.
    assert done.removed == () and len(ds.files()) == 4
    assert ds.expiry().policy == {"keep_versions": None, "keep_for": "1d"}


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"keep_versions": 0}, "keep_versions=0: expected an integer >= 1"),
        ({"keep_versions": True}, "keep_versions=True"),
        ({"keep_for": timedelta(seconds=-1)}, "expected a duration >= 0"),
        ({}, "give keep_versions, keep_for, or both"),
    ],
)
def test_policy_checks_its_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        RetentionPolicy(**kw)


def test_token_reader_pinned_to_an_expired_version_says_so(store):
    url = store.url("tokens")
    ds = make_tokens(url, store.storage_options)
    pinned = TokenReader(url, batch_size=5, version=1, storage_options=store.storage_options)
    resumed = pinned.state_dict()
    # v2 drops the examples of one file (as a compliance re-pack would) and keeps the others.
    gone = sorted(ds.files(), key=lambda f: f.path)[0]
    _commit(ds, "delete", remove=[gone.path], properties=props())
    result = expire_versions(ds, RetentionPolicy(keep_versions=1))
    assert result.removed == (gone.path,)

    with pytest.raises(DatasetError) as err:
        list(pinned)
    assert "version 1 was expired by gc (--keep-versions 1)" in str(err.value)
    assert "the oldest live version is 2; make a new TokenReader at a live version" in str(
        err.value
    )
    with pytest.raises(
        DatasetError, match=r"version 1 was expired by gc.*oldest live version is 2"
    ):
        TokenReader(url, batch_size=5, version=1, storage_options=store.storage_options)
    live = TokenReader(url, batch_size=5, storage_options=store.storage_options)
    assert live.version == 2 and sum(len(b["example_id"]) for b in live) == live.num_examples
    with pytest.raises(ValueError, match="version is 1"):
        live.load_state_dict(resumed)


def test_cli_gc_retention_history_inspect_and_query(tmp_path, capsys):
    url = str(tmp_path / "posts")
    _, paths = _with_a_compliance_delete(url)
    orphan = tmp_path / "posts" / "data" / "crashed-00000.parquet"
    orphan.write_bytes(b"x" * 10)

    assert main(["gc", url, "--keep-versions", "2", "--min-age", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would expire versions 1..2 (2 versions); kept versions 3..4 (--keep-versions 2)" in out
    assert f"would remove {paths['a']}\n" in out
    assert "would remove 1 files only expired versions listed" in out
    assert "would remove data/crashed-00000.parquet" in out
    assert Dataset.open(url).versions() == [1, 2, 3, 4] and orphan.exists()

    assert main(["gc", url, "--keep-versions", "2", "--keep-for", "1h", "--min-age", "0"]) == 0
    out = capsys.readouterr().out
    # Committed seconds ago, every version is younger than 1h: --keep-for keeps them all.
    assert "nothing to expire: kept versions 1..4 (--keep-versions 2 --keep-for 1h)" in out
    assert "removed 1 orphan files (10 B)" in out and not orphan.exists()

    assert main(["gc", url, "--keep-versions", "2"]) == 0
    out = capsys.readouterr().out
    assert "expired versions 1..2 (2 versions); kept versions 3..4 (--keep-versions 2)" in out
    assert (
        f"removed {paths['a']}\n" in out and "removed 1 files only expired versions listed" in out
    )
    assert not (tmp_path / "posts" / paths["a"]).exists()

    assert main(["history", url]) == 0
    out = capsys.readouterr().out
    assert "2 older versions expired by gc (1..2, last at " in out
    assert "the oldest live version is 3" in out
    assert main(["history", url, "--json"]) == 0
    assert [json.loads(x)["version"] for x in capsys.readouterr().out.splitlines()] == [3, 4]

    assert main(["inspect", url]) == 0
    assert "versions 1..2 expired by gc (2 versions)" in capsys.readouterr().out
    assert main(["inspect", url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["expired_versions"] == 2 and [h["version"] for h in summary["history"]] == [3, 4]

    for argv in (
        ["query", "--version", "1", url, "SELECT count(*) FROM posts"],
        ["inspect", url, "--version", "2"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "was expired by gc (--keep-versions 2)" in err
        assert "the oldest live version is 3" in err
    assert main(["query", "--version", "3", url, "SELECT count(*) AS n FROM posts"]) == 0
    assert "4" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--keep-versions", "0"], "--keep-versions 0: expected 1 or more"),
        (["--keep-for", "soon"], "--keep-for 'soon': expected a duration"),
    ],
)
def test_cli_gc_bad_retention_flags(tmp_path, capsys, argv, message):
    url = str(tmp_path / "posts")
    _with_a_compliance_delete(url)
    assert main(["gc", url, *argv]) == 2
    assert message in capsys.readouterr().err
    assert Dataset.open(url).versions() == [1, 2, 3, 4]


def test_gc_holds_the_lock(tmp_path, capsys):
    url = str(tmp_path / "posts")
    _with_a_compliance_delete(url)
    with DatasetLock(url, run_id="ingest-1", command="ingest posts").acquire():
        assert main(["gc", url, "--keep-versions", "1"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("shardsmith: locked:") and "ingest posts (run ingest-1" in err
        assert Dataset.open(url).versions() == [1, 2, 3, 4]  # nothing expired under the lock
        # A dry run only reads: it runs while another run holds the lock.
        assert main(["gc", url, "--keep-versions", "1", "--dry-run"]) == 0
        assert "would expire versions 1..3" in capsys.readouterr().out
    assert main(["gc", url, "--keep-versions", "1"]) == 0
    assert Dataset.open(url).versions() == [4]


# -- SIGKILL in the middle of gc -----------------------------------------------------------------

OLD, PER_OLD, KEEP = 20, 20, 3  # v1..v20 append 20 files each; v21 compacts; v22, v23 append
LATEST = OLD + 3


def _crash_template(root: Path, per_old: int) -> set[str]:
    """A dataset whose gc (--keep-versions 3) expires 20 versions and deletes 20*per_old files.

    v21 overwrites everything with one file without the "removed" posts, so only v21..v23's
    files may remain after gc; returns the post ids no remaining file may hold."""
    ds = Dataset.create(str(root), "posts")
    ds.fs.makedirs(ds.path("data"), exist_ok=True)
    sink = pa.BufferOutputStream()
    pq.write_table(posts_table(2, "old-"), sink)
    blob = sink.getvalue().to_pybytes()  # old files: copies of one tiny Parquet file
    for v in range(1, OLD + 1):
        entries = []
        for k in range(per_old):
            rel = f"data/v{v:02d}-{k:03d}.parquet"
            (root / rel).write_bytes(blob)
            entries.append(FileEntry(rel, 2, len(blob), "sha256:test"))
        _commit(ds, add=entries)
    _commit(ds, "overwrite", add=[_file(ds, posts_table(3, "compact-"))], base_version=OLD)
    _commit(ds, add=[_file(ds, posts_table(2, "new1-"))])
    _commit(ds, add=[_file(ds, posts_table(2, "new2-"))])
    assert ds.latest_version() == LATEST
    return {"old-0", "old-1"}


def _gc_argv(url: str, options: dict | None) -> list[str]:
    argv = [str(BIN), "gc", url, "--keep-versions", str(KEEP), "--min-age", "0"]
    return argv + (["--storage-options", json.dumps(options)] if options else [])


def _state(url: str, options: dict | None) -> dict:
    """Check every version a reader can still open: all its files read, with the rows listed.
    Returns where the killed gc stopped."""
    ds = Dataset.open(url, storage_options=options)
    record = ds.expiry()
    through = record.through if record else 0
    versions = ds.versions()
    live = [v for v in versions if v > through]
    assert live == list(range(live[0], LATEST + 1)), versions
    if record is None:
        assert live[0] == 1  # nothing expired yet: every version is whole
    else:
        assert live[0] == OLD + 1
        if 1 not in versions:
            with pytest.raises(DatasetError, match="version 1 was expired by gc"):
                ds.manifest(1)
    for v in live:
        for f in ds.files(v):
            assert read_parquet(ds.fs, ds.path(f.path)).num_rows == f.rows, (v, f.path)
    old_files = [p for p in ds.fs.find(ds.path("data")) if "/data/v" in p]
    return {
        "record": record is not None,
        "stale_manifests": sum(1 for v in versions if v <= through),
        "old_files": len(old_files),
    }


def _kill_when(argv: list[str], ready) -> None:
    """Start gc in its own process group; SIGKILL it the moment ``ready()`` is true."""
    proc = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while proc.poll() is None and not ready():
            pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_gc_killed_at_any_point_leaves_kept_versions_readable(where, tmp_path, request, capsys):
    per_old = PER_OLD if where == "local" else 2  # moto: each PUT costs milliseconds
    template = tmp_path / "template"
    removed_posts = _crash_template(template, per_old)
    if where == "s3":
        import s3fs

        endpoint = request.getfixturevalue("moto_endpoint")
        options = s3_options(endpoint)
        bucket = make_bucket(endpoint)
        s3 = s3fs.S3FileSystem(**options)
    else:
        options = None

    def fresh(point: int) -> tuple[str, object]:
        if where == "local":
            dest = tmp_path / f"kill-{point}"
            shutil.copytree(template, dest)
            return str(dest), None
        s3.put(str(template) + "/", f"{bucket}/kill-{point}/", recursive=True)
        return f"s3://{bucket}/kill-{point}", s3

    rng = random.Random(f"gc-kill-{where}")
    first_old = f"data/v01-{0:03d}.parquet"
    stopped = []
    triggers = ["record", "manifests", "files", "random", "random"]
    if where == "s3":
        triggers = ["record", "manifests", "random"]  # one bulk DeleteObjects: no "files" phase
    for point, trigger in enumerate(triggers):
        url, fs = fresh(point)
        ds = Dataset.open(url, storage_options=options)

        started, delay = time.monotonic(), rng.random() * 1.5

        def ready(trigger=trigger, ds=ds, started=started, delay=delay):
            if trigger == "random":
                return time.monotonic() - started > delay
            if trigger == "record":
                return ds.fs.exists(ds.path("_retention/expired-v00000020.json"))
            if trigger == "manifests":
                return not ds.fs.exists(ds.path("manifests/v00000001.json"))
            return not ds.fs.exists(ds.path(first_old))

        if fs is not None:
            fs.invalidate_cache()
        _kill_when(_gc_argv(url, options), ready)
        ds.fs.invalidate_cache()
        state = _state(url, options)
        stopped.append((trigger, state))
        # history lists the live versions only, even while a killed gc's expiry is unfinished.
        opts = ["--storage-options", json.dumps(options)] if options else []
        assert main(["history", url, "--json", *opts]) == 0
        listed = [json.loads(x)["version"] for x in capsys.readouterr().out.splitlines()]
        assert listed == list(range(OLD + 1 if state["record"] else 1, LATEST + 1))
        # The next gc finishes the job, even one given no retention flags (the record says
        # what to finish): only v21..v23 and their files remain.
        argv = _gc_argv(url, options)
        if trigger != "random":
            argv.remove("--keep-versions")
            argv.remove(str(KEEP))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        if state["record"] and (state["stale_manifests"] or state["old_files"]):
            assert "finished expiring versions 1..20 (an earlier gc was interrupted)" in done.stdout
        ds = Dataset.open(url, storage_options=options)
        assert ds.versions() == list(range(LATEST - KEEP + 1, LATEST + 1))
        listed = {f.path for v in ds.versions() for f in ds.files(v)}
        on_store = {p[len(ds.root) :].lstrip("/") for p in ds.fs.find(ds.path("data"))}
        assert on_store == listed
        assert not removed_posts & _post_ids_on_store(ds)
        assert ds.expiry().through == OLD and ds.expiry().files[0] == first_old
        with pytest.raises(DatasetError, match="oldest live version is 21"):
            ds.manifest(5)
    # Guard: the kills really landed mid-gc, between the record and the end of its deletions.
    midway = [s for _, s in stopped if s["record"] and (s["stale_manifests"] or s["old_files"])]
    assert midway, stopped
