"""The dataset contract (DESIGN.md §2) on a local path, memory:// and moto's S3 server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tablegen import posts_table, read_version, write_data_file

from catalog import (
    CommitConflict,
    CommitRequest,
    Dataset,
    DatasetError,
    collect_garbage,
    new_run_id,
)
from schemas import ManifestError, SourceEntry

HERE = Path(__file__).parent


def _append(ds: Dataset, n: int, prefix: str, **kw):
    run_id = new_run_id()
    entry = write_data_file(ds, f"data/{run_id}-00000.parquet", posts_table(n, prefix))
    return ds.commit(CommitRequest(run_id=run_id, add=[entry], **kw)), entry


def _child(store, mode: str, url: str, count: int, tag: str) -> subprocess.Popen:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
    args = [mode, url, json.dumps(store.storage_options), str(count), tag]
    return subprocess.Popen(
        [sys.executable, str(HERE / "committer.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_create_is_idempotent_and_checks_kind(store):
    url = store.url("ds")
    ds = Dataset.create(url, "posts", storage_options=store.storage_options)
    assert ds.kind == "posts" and ds.versions() == [] and ds.latest_version() == 0
    assert ds.manifest() is None and ds.files() == ()
    again = Dataset.create(url, "posts", storage_options=store.storage_options)
    assert again.info.created_at == ds.info.created_at
    with pytest.raises(DatasetError, match="is a posts dataset, expected a clips dataset"):
        Dataset.create(url, "clips", storage_options=store.storage_options)
    with pytest.raises(DatasetError, match=r"no dataset\.json"):
        Dataset.open(store.url("nothing-here"), storage_options=store.storage_options)


def test_versions_accumulate_and_time_travel(store):
    ds = Dataset.create(store.url("ds"), "posts", storage_options=store.storage_options)
    m1, e1 = _append(ds, 4, "a", sources=[SourceEntry("s3://in/a.jsonl", size=10)])
    m2, e2 = _append(ds, 5, "b", sources=[SourceEntry("s3://in/b.jsonl", size=20)])
    assert (m1.version, m1.parent_version, m2.version, m2.parent_version) == (1, None, 2, 1)
    assert ds.versions() == [1, 2]
    assert [f.path for f in ds.files(1)] == [e1.path]
    assert [f.path for f in ds.files()] == [e1.path, e2.path]
    assert [s.uri for s in ds.manifest().sources] == ["s3://in/a.jsonl", "s3://in/b.jsonl"]
    assert read_version(ds, 1).num_rows == 4 and read_version(ds).num_rows == 9
    # A fresh handle sees the same, from storage alone.
    fresh = Dataset.open(store.url("ds"), storage_options=store.storage_options)
    assert fresh.manifest(2) == m2
    assert m2.config_hash.startswith("sha256:") and m2.package_version
    with pytest.raises(DatasetError, match="no version 7"):
        ds.manifest(7)


def test_commit_of_the_same_run_is_applied_once(store):
    ds = Dataset.create(store.url("ds"), "posts", storage_options=store.storage_options)
    run_id = new_run_id()
    entry = write_data_file(ds, f"data/{run_id}-00000.parquet", posts_table(2))
    first = ds.commit(CommitRequest(run_id=run_id, add=[entry]))
    again = ds.commit(CommitRequest(run_id=run_id, add=[entry]))
    assert first.version == again.version == 1 and ds.versions() == [1]


def test_overwrite_and_delete_conflicts(store):
    ds = Dataset.create(store.url("ds"), "posts", storage_options=store.storage_options)
    _, e1 = _append(ds, 2, "a")
    _append(ds, 2, "b")
    run_id = new_run_id()
    new = write_data_file(ds, f"data/{run_id}-00000.parquet", posts_table(1, "c"))
    with pytest.raises(CommitConflict, match="overwrite based on version 1"):
        ds.commit(CommitRequest(run_id=run_id, operation="overwrite", add=[new], base_version=1))
    with pytest.raises(CommitConflict, match="not live"):
        ds.commit(CommitRequest(run_id=run_id, operation="delete", add=[new], remove=["data/x"]))
    m = ds.commit(CommitRequest(run_id=run_id, operation="delete", add=[new], remove=[e1.path]))
    assert m.operation == "delete" and e1.path not in {f.path for f in m.files}
    assert read_version(ds).num_rows == 3  # b's 2 rows + c's 1
    with pytest.raises(CommitConflict, match="was not written"):
        ds.commit(CommitRequest(run_id=new_run_id(), add=[new.__class__("data/ghost", 1, 1, "")]))


def test_a_source_is_committed_once_even_by_racing_runs(store):
    ds = Dataset.create(store.url("ds"), "posts", storage_options=store.storage_options)
    _append(ds, 1, "a", sources=[SourceEntry("s3://in/old.jsonl", 10, "t0")])
    new = SourceEntry("s3://in/new.jsonl", 20, "t1")
    # Two runs started from version 1 and both read new.jsonl: the first commits it...
    _append(ds, 2, "b", sources=[new, SourceEntry("s3://in/old.jsonl", 10, "t0")], base_version=1)
    # ...the second is refused, naming the source; the dataset is unchanged.
    with pytest.raises(CommitConflict, match=r"new\.jsonl was consumed by a version committed"):
        _append(ds, 2, "c", sources=[new], base_version=1)
    assert ds.latest_version() == 2
    # A source that changed since (another size or stamp) is a new source, and a run that
    # started after the version that consumed it is not racing.
    _append(ds, 1, "d", sources=[SourceEntry("s3://in/new.jsonl", 25, "t2")], base_version=1)
    _append(ds, 1, "e", sources=[new], base_version=3)
    assert ds.latest_version() == 4


def test_concurrent_committers_lose_nothing(store):
    """Two committers, 30 appends each, at once: 60 versions, every file listed exactly once."""
    url = store.url("ds")
    ds = Dataset.create(url, "posts", storage_options=store.storage_options)
    if store.multiprocess:
        children = [_child(store, "append", url, 30, tag) for tag in ("x", "y")]
        for child in children:
            child.communicate(timeout=240)
            assert child.returncode == 0
    else:
        from committer import append

        threads = [threading.Thread(target=append, args=(ds, 30, tag)) for tag in ("x", "y")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ds = Dataset.open(url, storage_options=store.storage_options)
    assert ds.versions() == list(range(1, 61))
    for v in range(2, 61):  # each version is its parent plus exactly one file
        m, parent = ds.manifest(v), ds.manifest(v - 1)
        assert m.parent_version == v - 1
        assert [f.path for f in m.files[:-1]] == [f.path for f in parent.files]
    files = [f.path for f in ds.files()]
    assert len(files) == len(set(files)) == 60
    table = read_version(ds)
    assert table.num_rows == 180
    assert sorted({pid.split("-")[0] for pid in table.column("post_id").to_pylist()}) == ["x", "y"]


def test_killed_writer_leaves_last_version_and_gc_removes_its_files(store):
    url = store.url("ds")
    ds = Dataset.create(url, "posts", storage_options=store.storage_options)
    _append(ds, 3, "kept")
    before = read_version(ds)
    if store.multiprocess:
        child = _child(store, "write-then-hang", url, 2, "lost")
        line = child.stdout.readline()
        assert line.startswith("written"), line
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert child.returncode == -signal.SIGKILL
    else:
        # memory:// cannot outlive its process: abandon a run mid-way in this one instead.
        from committer import write_then_hang

        write_then_hang(ds, 2, "lost", wait=lambda: None)
    ds = Dataset.open(url, storage_options=store.storage_options)
    assert ds.versions() == [1]
    assert read_version(ds).equals(before)
    live = {ds.path(f.path) for f in ds.files()}
    written = {p for p in ds.fs.find(ds.root) if "/data/" in p or "/rejects/" in p}
    orphans = {p[len(ds.root) + 1 :] for p in written - live}
    assert len(orphans) == 3  # the dead run's two data files and its reject file
    result = collect_garbage(ds, min_age=timedelta(0))
    assert set(result.removed) == orphans
    assert read_version(ds).equals(before)
    assert collect_garbage(ds, min_age=timedelta(0)).removed == ()


def test_gc_removes_exactly_the_orphans(store):
    ds = Dataset.create(store.url("ds"), "posts", storage_options=store.storage_options)
    _append(ds, 2, "a")
    _append(ds, 2, "b")
    orphans = {
        "data/dt=2026-11-20/deadrun-00000.parquet",
        "data/deadrun-00001.parquet",
        "rejects/deadrun-00000.parquet",
        "rejects/deadrun.report.json",
        "tombstones/deadrun.parquet",
        "manifests/.tmp-0123abcd",
    }
    for rel in orphans:
        ds.fs.makedirs(ds.path(rel).rsplit("/", 1)[0], exist_ok=True)
        ds.fs.pipe_file(ds.path(rel), b"orphan")
    live = {f.path for v in ds.versions() for f in ds.files(v)}
    # Young orphans may belong to a run still writing: kept unless min_age allows.
    kept = collect_garbage(ds)
    assert kept.removed == () and set(kept.kept_young) == orphans
    dry = collect_garbage(ds, min_age=timedelta(0), dry_run=True)
    assert set(dry.removed) == orphans and all(ds.fs.exists(ds.path(o)) for o in orphans)
    result = collect_garbage(ds, min_age=timedelta(0))
    assert set(result.removed) == orphans
    assert result.removed_bytes == len(b"orphan") * len(orphans)
    assert all(ds.fs.exists(ds.path(p)) for p in live)
    assert ds.versions() == [1, 2] and ds.fs.exists(ds.path("dataset.json"))


@pytest.mark.parametrize("bad", ["../escape.parquet", "/etc/passwd", "data/../../x", "s3://b/k"])
def test_manifest_paths_cannot_escape_the_dataset(store, bad):
    ds = Dataset.create(store.url("ds"), "posts", storage_options=store.storage_options)
    m, _ = _append(ds, 1, "a")
    doc = json.loads(m.to_json())
    doc["version"] = 2
    doc["files"][0]["path"] = bad
    ds.fs.pipe_file(ds.path("manifests/v00000002.json"), json.dumps(doc).encode())
    with pytest.raises(
        ManifestError, match="not a relative path under data/, rejects/, tombstones/"
    ):
        Dataset.open(store.url("ds"), storage_options=store.storage_options).files()


def test_written_files_are_plain_parquet(store):
    ds = Dataset.create(store.url("ds"), "posts", storage_options=store.storage_options)
    _, entry = _append(ds, 3, "z")
    with ds.fs.open(ds.path(entry.path), "rb") as f:
        assert pq.read_table(f, pre_buffer=False, use_threads=False).column(
            "post_id"
        ).to_pylist() == [
            "z0",
            "z1",
            "z2",
        ]
