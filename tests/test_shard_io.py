"""WriteShards / ReadShards: validated, partitioned zstd Parquet, rejects, one commit per run."""

from __future__ import annotations

import hashlib
import re

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from beamrun import Collect, in_memory_options, run
from tablegen import T0, posts_table, read_version

from catalog import Dataset, collect_garbage, new_run_id
from runners.execute import RunFailed, run_outcome, run_pipeline
from runners.options import beam_options
from schemas import POSTS, REJECTS_SCHEMA, reject_table
from transforms import ReadShards, RollingParquetWriter, WriteShards, tally

NAME = re.compile(r"^data/dt=\d{4}-\d{2}-\d{2}/(?P<run>\d{8}T\d{6}Z-[0-9a-f]{8})-\d{5}\.parquet$")


def _write(url, tables, *, rejects=(), tallies=(), storage_options=None, **kw):
    run_id = new_run_id()

    def build(p):
        inputs = {"data": p | "Data" >> beam.Create(tables)}
        if rejects:
            inputs["rejects"] = p | "Rejects" >> beam.Create(list(rejects))
        if tallies:
            inputs["tallies"] = p | "Tallies" >> beam.Create(list(tallies))
        inputs | WriteShards(url, "posts", run_id=run_id, storage_options=storage_options, **kw)

    run(build)
    return run_id, run_outcome(url, run_id, 0, storage_options)


def test_write_partitions_by_day_and_commits_once(tmp_path):
    url = str(tmp_path / "posts")
    tables = [posts_table(20, "a"), posts_table(15, "b", start=T0.replace(day=25))]
    run_id, report = _write(url, tables, config={"source": "test"})
    ds = Dataset.open(url)
    assert ds.versions() == [1] and report.status == "committed" and report.version == 1
    m = ds.manifest()
    assert m.run_id == run_id and m.config == {"source": "test"}
    assert m.report["records_written"] == 35 == m.rows
    for entry in m.files:
        match = NAME.match(entry.path)
        assert match and match.group("run") == run_id, entry.path
        with ds.fs.open(ds.path(entry.path), "rb") as f:
            data = f.read()
        assert entry.checksum == "sha256:" + hashlib.sha256(data).hexdigest()
        assert entry.bytes == len(data)
        meta = pq.ParquetFile(ds.path(entry.path)).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert meta.row_group(0).column(1).statistics.has_min_max
        table = pq.read_table(ds.path(entry.path))
        days = set(pc.strftime(table.column("created_at"), format="%Y-%m-%d").to_pylist())
        assert days == {entry.path.split("dt=")[1].split("/")[0]}  # rows are in their day
    got = read_version(ds).sort_by("post_id")
    want = pa.concat_tables(tables).sort_by("post_id")
    assert got.schema == POSTS.schema and got.equals(want)


def test_rolling_writer_respects_row_group_and_file_size(tmp_path):
    import fsspec

    fs = fsspec.filesystem("file")
    writer = RollingParquetWriter(
        fs,
        str(tmp_path),
        "data",
        lambda i: f"r-{i:05d}.parquet",
        POSTS.schema,
        target_file_bytes=8_000,
        row_group_rows=10,
        sort_by=("created_at", "post_id"),
    )
    for i in range(0, 95, 19):
        writer.write(posts_table(95, "x").slice(i, 19))
    files = writer.close()
    assert len(files) > 1 and sum(f.rows for f in files) == 95
    for f in files:
        meta = pq.ParquetFile(tmp_path / f.path).metadata
        assert all(meta.row_group(i).num_rows <= 10 for i in range(meta.num_row_groups))
        assert (tmp_path / f.path).stat().st_size == f.bytes
    rows = pa.concat_tables(pq.read_table(tmp_path / f.path) for f in files)
    assert rows.column("created_at").to_pylist() == sorted(rows.column("created_at").to_pylist())


def _tied_parts() -> list[pa.Table]:
    """Five parts whose posts share one time and the same ids: ties everywhere, told apart
    by ``like_count`` (the part's number)."""
    likes = POSTS.schema.get_field_index("like_count")
    return [
        posts_table(2_000, "p", step_hours=0).set_column(
            likes, "like_count", pa.array([k] * 2_000, pa.int64())
        )
        for k in range(5)
    ]


def test_rolling_writer_sorts_as_sort_by_holding_the_rows_once(tmp_path):
    """A row group is sorted column by column: the same rows in the same order as
    ``Table.sort_by`` (stable: ties keep their order), with no second copy of every column."""
    import fsspec

    default = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(default)  # counts what the rows and their sort allocate
    pa.set_memory_pool(pool)
    try:
        parts = _tied_parts()
        size = pool.bytes_allocated()
        writer = RollingParquetWriter(
            fsspec.filesystem("file"),
            str(tmp_path),
            "data",
            lambda i: f"r-{i:05d}.parquet",
            POSTS.schema,
            sort_by=("created_at", "post_id"),
        )
        for part in parts:
            writer.write(part)
        del parts, part
        (entry,) = writer.close()
        extra = pool.max_memory() - size
    finally:
        pa.set_memory_pool(default)
    want = pa.concat_tables(_tied_parts()).sort_by(
        [("created_at", "ascending"), ("post_id", "ascending")]
    )
    assert pq.read_table(tmp_path / entry.path).equals(want)
    # Table.sort_by holds every column twice (extra >= size); column by column, only the
    # largest column (text) and the sort order are held twice.
    assert size > 1_000_000 and extra < 0.6 * size, (extra, size)


def test_rejects_and_tallies_make_the_report(tmp_path):
    url = str(tmp_path / "posts")
    rejects = [
        {
            "source_uri": "in.jsonl",
            "locator": "line 7",
            "reason": "json_invalid",
            "message": "Expecting ',' delimiter",
            "payload": b'{"id": 1',
        },
        reject_table(
            [
                {
                    "source_uri": "in.jsonl",
                    "locator": "line 9",
                    "reason": "missing_field",
                    "message": "created_at: missing",
                    "payload": b"{}",
                }
            ]
        ),
    ]
    tallies = [
        tally(records_in=60, skipped={"tweet_counts": 1}),
        tally(records_in=48, deduplicated={"post_id": 5}),
    ]
    _, report = _write(
        url, [posts_table(100)], rejects=rejects, tallies=tallies, max_reject_rate=0.05
    )
    assert report.status == "committed"
    assert (report.records_in, report.records_written, report.records_rejected) == (108, 100, 2)
    assert report.records_deduplicated == 5 and report.skipped_by_reason == {"tweet_counts": 1}
    assert report.rejects_by_reason == {"json_invalid": 1, "missing_field": 1}
    ds = Dataset.open(url)
    (entry,) = ds.manifest().rejects
    table = pq.read_table(ds.path(entry.path))
    assert table.schema == REJECTS_SCHEMA and table.num_rows == 2
    assert set(table.column("run_id").to_pylist()) == {report.run_id}
    assert sorted(table.column("locator").to_pylist()) == ["line 7", "line 9"]


def test_counts_that_do_not_add_up_fail_the_run(tmp_path):
    url = str(tmp_path / "posts")
    with pytest.raises(Exception, match="read 11 records but accounted for 10"):
        _write(url, [posts_table(10)], tallies=[tally(records_in=11)])
    assert Dataset.open(url).versions() == []


def test_too_many_rejects_commit_nothing_but_keep_the_rejects(tmp_path):
    url = str(tmp_path / "posts")
    rejects = [
        {
            "source_uri": "in.jsonl",
            "locator": f"line {i}",
            "reason": "json_invalid",
            "message": "bad",
        }
        for i in range(3)
    ]
    _, report = _write(url, [posts_table(97)], rejects=rejects)
    assert report.status == "failed" and "3 of 100 records rejected (3.00% > " in report.message
    ds = Dataset.open(url)
    assert ds.versions() == []
    assert len(report.reject_files) == 1
    assert pq.read_table(ds.path(report.reject_files[0])).num_rows == 3
    from datetime import timedelta

    removed = collect_garbage(ds, min_age=timedelta(0)).removed
    assert set(report.reject_files) < set(removed)
    assert f"rejects/{report.run_id}.report.json" in removed


def test_nothing_to_write_commits_nothing(tmp_path):
    url = str(tmp_path / "posts")
    _, report = _write(url, [POSTS.schema.empty_table()])
    assert report.status == "nothing-new" and Dataset.open(url).versions() == []


def test_a_table_of_the_wrong_schema_fails_naming_the_column(tmp_path):
    bad = posts_table(3).drop_columns(["lang"])
    with pytest.raises(Exception, match="column 'lang': missing; expected type string"):
        _write(str(tmp_path / "posts"), [bad])


def test_read_shards_reads_one_version_by_row_group(tmp_path):
    url = str(tmp_path / "posts")
    _write(url, [posts_table(30, "v1-")])
    _write(url, [posts_table(12, "v2-")])
    for version, expected in ((1, 30), (2, 42), (None, 42)):
        Collect.sink = []
        run(lambda p, v=version: p | ReadShards(url, version=v) | beam.ParDo(Collect()))
        got = pa.concat_tables(Collect.sink)
        assert got.num_rows == expected and got.schema == POSTS.schema
    ds = Dataset.open(url)
    groups = sum(pq.ParquetFile(ds.path(f.path)).metadata.num_row_groups for f in ds.files())
    assert len(Collect.sink) == groups
    Collect.sink = []
    run(lambda p: p | ReadShards(url, columns=["post_id"]) | beam.ParDo(Collect()))
    assert pa.concat_tables(Collect.sink).column_names == ["post_id"]
    with pytest.raises(ValueError, match="columns \\['nope'\\]: not in the posts schema"):
        ReadShards(url, columns=["nope"])


def test_write_then_read_on_every_store(store):
    url = store.url("posts")
    _, report = _write(url, [posts_table(25)], storage_options=store.storage_options)
    assert report.status == "committed"
    Collect.sink = []
    run(
        lambda p: p | ReadShards(url, storage_options=store.storage_options) | beam.ParDo(Collect())
    )
    got = pa.concat_tables(Collect.sink).sort_by("post_id")
    assert got.equals(posts_table(25).sort_by("post_id"))


def test_local_runner_multi_processing(tmp_path):
    """The default runner: worker processes, as `--runner local` runs every pipeline."""
    url = str(tmp_path / "posts")
    run_id = new_run_id()
    options = beam_options("local", 2, ["--direct_running_mode=multi_processing"])
    assert options.get_all_options()["direct_num_workers"] == 2

    def build(p):
        tables = p | beam.Create([posts_table(40, "a"), posts_table(40, "b")])
        tables | WriteShards(url, "posts", run_id=run_id)

    report = run_pipeline(build, options, dataset=url, run_id=run_id, base_version=0)
    assert report.status == "committed" and report.records_written == 80
    assert report.version == 1 and read_version(Dataset.open(url)).num_rows == 80


def test_run_pipeline_raises_with_the_report_when_too_much_is_rejected(tmp_path):
    url = str(tmp_path / "posts")
    run_id = new_run_id()

    def build(p):
        rejects = p | "R" >> beam.Create(
            [{"source_uri": "x", "locator": "line 1", "reason": "json_invalid", "message": "m"}]
        )
        data = p | "D" >> beam.Create([posts_table(9)])
        {"data": data, "rejects": rejects} | WriteShards(url, "posts", run_id=run_id)

    with pytest.raises(RunFailed, match="1 of 10 records rejected") as failed:
        run_pipeline(build, in_memory_options(), dataset=url, run_id=run_id, base_version=0)
    assert failed.value.report.rejects_by_reason == {"json_invalid": 1}


def test_clips_partition_by_day_and_tokens_keep_their_order(tmp_path):
    """Nested clip rows round-trip exactly; tokens are unpartitioned and never reordered."""
    from tablegen import clips_table, tokens_table

    clips = clips_table(8, start=T0.replace(hour=23, minute=59))  # crosses midnight
    run(
        lambda p: (
            p
            | beam.Create([clips])
            | WriteShards(str(tmp_path / "c"), "clips", run_id=new_run_id())
        )
    )
    ds = Dataset.open(str(tmp_path / "c"))
    assert sorted({f.path.split("/")[1] for f in ds.files()}) == ["dt=2026-11-20", "dt=2026-11-21"]
    assert read_version(ds).sort_by("clip_id").equals(clips)
    tokens = tokens_table(50).take(list(range(49, -1, -1)))  # a shuffled order to keep
    run(
        lambda p: (
            p
            | beam.Create([tokens])
            | WriteShards(str(tmp_path / "t"), "tokens", run_id=new_run_id())
        )
    )
    ds = Dataset.open(str(tmp_path / "t"))
    assert [f.path.count("/") for f in ds.files()] == [1]  # data/<file>, no dt=
    assert read_version(ds).equals(tokens)
