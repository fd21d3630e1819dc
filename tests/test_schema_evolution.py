"""Additive schema evolution: a posts dataset written before ``withheld_in_countries`` and
``geo`` were added (issue 14) still opens, reads with the current schema (the new columns
null), takes new ingests (a compliance delete rewrites an old file in the current schema),
tokenizes and travels back in time; any other schema difference is refused in one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_bucket, s3_options
from tablegen import posts_table
from test_compliance_actions import post
from test_compliance_events import post_event

from catalog import CommitRequest, Dataset, DatasetError
from catalog.parquet import read_parquet
from catalog.sql import connect
from pipelines.ingest_posts import IngestPostsConfig
from pipelines.ingest_posts import run as ingest_run
from pipelines.tokenize import TokenizeConfig
from pipelines.tokenize import run as tokenize_run
from runners.cli import main
from runners.options import beam_options
from schemas import POSTS, TOKENS, SchemaError, check_evolution, evolve_table
from transforms.read_shards import read_row_group

# The added columns in schema order (the order check_evolution and missing_columns give).
NEW = tuple(n for n in POSTS.schema.names if n in POSTS.added_columns)
OLD_SCHEMA = pa.schema([f for f in POSTS.schema if f.name not in NEW])
# The posts kind as shardsmith declared it before issue 14.
OLD_POSTS = dataclasses.replace(POSTS, schema=OLD_SCHEMA, added_columns=())


def _options():
    return beam_options("local", 1, ["--direct_running_mode=in_memory"])


def _ingest(url: str, src: Path, lines: list[dict], **kw):
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    config = IngestPostsConfig(sources=(str(src.parent),), dataset=url, **kw)
    report = ingest_run(config, _options())
    assert report.status == "committed", report.message
    return report


def _old_dataset(tmp_path: Path, url: str, storage_options=None) -> Dataset:
    """A posts dataset as the shardsmith before issue 14 wrote it: rows ingested by this one
    into a scratch dataset, written again with the old schema (dataset.json and data files,
    same partitions and names, same consumed sources) as one committed version."""
    scratch = str(tmp_path / "scratch")
    lines = [post("1", "7"), post("2", "7"), post("3", "8", lang="en"), post("4", "8")]
    _ingest(scratch, tmp_path / "old-src" / "a.jsonl", lines)
    made = Dataset.open(scratch).manifest()
    ds = Dataset.create(url, OLD_POSTS, storage_options=storage_options)
    entries = []
    for entry in made.files:
        table = read_parquet(Dataset.open(scratch).fs, f"{scratch}/{entry.path}").drop_columns(
            list(NEW)
        )
        path = ds.path(entry.path)
        ds.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with ds.fs.open(path, "wb") as f:
            pq.write_table(table, f, compression="zstd")
        entries.append(dataclasses.replace(entry, bytes=ds.fs.size(path)))
    ds.commit(CommitRequest(run_id=made.run_id, add=entries, sources=made.sources))
    return ds


def _dataset_json(ds: Dataset) -> dict:
    return json.loads(ds.fs.cat_file(ds.path("dataset.json")))


def test_the_rule_missing_added_columns_only():
    assert check_evolution(POSTS.schema, POSTS) == ()
    assert check_evolution(OLD_SCHEMA, POSTS) == NEW
    # an added column may be missing wherever it sits
    without_geo = pa.schema([f for f in POSTS.schema if f.name != "geo"])
    assert check_evolution(without_geo, "posts") == ("geo",)
    fields = list(OLD_SCHEMA)
    i = OLD_SCHEMA.get_field_index("like_count")
    refused = {
        "column 'like_count': stored as int32, expected int64": OLD_SCHEMA.set(
            i, pa.field("like_count", pa.int32())
        ),
        "column 'like_count': stored not null, expected nullable": OLD_SCHEMA.set(
            i, pa.field("like_count", pa.int64(), nullable=False)
        ),
        "column 'text': missing (only columns added since may be: withheld_in_countries, "
        "geo, lang_source)": OLD_SCHEMA.remove(OLD_SCHEMA.get_field_index("text")),
        "column 'mood': not in this shardsmith's posts schema (written by a newer "
        "shardsmith?)": OLD_SCHEMA.append(pa.field("mood", pa.string())),
        "column 'author_username': out of the posts schema's order (expected 'author_id' "
        "there)": pa.schema([fields[0], fields[1], fields[3], fields[2], *fields[4:]]),
    }
    for message, schema in refused.items():
        with pytest.raises(SchemaError) as info:
            check_evolution(schema, POSTS)
        assert str(info.value) == message
    # clips and tokens have no added columns: any difference is refused
    with pytest.raises(SchemaError, match="column 'media': missing"):
        check_evolution(TOKENS.schema.remove(TOKENS.schema.get_field_index("media")), TOKENS)


def test_evolve_table_fills_nulls_per_table_and_refuses_other_differences():
    table = posts_table(3).drop_columns(list(NEW))
    assert table.schema.equals(OLD_SCHEMA)
    evolved = evolve_table(table, POSTS.schema)
    assert evolved.schema.equals(POSTS.schema)
    assert evolved.column("geo").null_count == evolved.column("withheld_in_countries").null_count
    assert evolved.column("geo").null_count == 3
    assert evolved.drop_columns(list(NEW)).equals(table)
    assert evolve_table(evolved, POSTS.schema) is evolved  # nothing done for current files
    some = evolve_table(table.select(["post_id"]), POSTS.schema, ["geo", "post_id"])
    assert some.column_names == ["geo", "post_id"] and some.column("geo").null_count == 3
    i = table.schema.get_field_index("like_count")
    with pytest.raises(SchemaError, match="column 'like_count': found type string"):
        evolve_table(table.set_column(i, "like_count", pa.array(["x"] * 3)), POSTS.schema)
    counts = table.set_column(i, "like_count", pa.array([1, 2, 3], pa.int32()))
    assert evolve_table(counts, POSTS.schema, cast=True).schema.equals(POSTS.schema)
    with pytest.raises(SchemaError, match="column 'post_id': missing"):
        evolve_table(table.drop_columns(["post_id"]), POSTS.schema)
    with pytest.raises(SchemaError, match="column 'mood': not in the schema"):
        evolve_table(table.append_column("mood", pa.array(["x"] * 3)), POSTS.schema)


def test_an_old_posts_dataset_opens_reads_ingests_tokenizes_and_travels_back(tmp_path, capsys):
    url = str(tmp_path / "old")
    _old_dataset(tmp_path, url)
    before = _dataset_json(Dataset.open(url))
    assert [c["name"] for c in before["columns"]] == OLD_SCHEMA.names

    ds = Dataset.open(url)
    assert ds.missing_columns == NEW and ds.stored_schema.equals(OLD_SCHEMA)
    assert ds.info.schema.equals(POSTS.schema)

    # Python readers: whole files and row groups, all columns or some
    entry = ds.files()[0]
    table = read_parquet(ds.fs, ds.path(entry.path), schema=ds.info.schema)
    assert table.schema.equals(POSTS.schema) and table.column("geo").null_count == entry.rows
    group = read_row_group(ds.fs, ds.root, entry.path, 0, ds.info.schema, ["post_id", "geo"])
    assert group.column_names == ["post_id", "geo"] and group.column("geo").null_count

    # query: the current columns in schema order, the new ones null, DuckDB types exact
    fresh = Dataset.create(str(tmp_path / "fresh"), "posts")
    _ingest(fresh.url, tmp_path / "fresh-src" / "a.jsonl", [post("9", "7")])
    with connect(url) as con, connect(fresh.url) as ref:
        assert con.execute("DESCRIBE posts").fetchall() == ref.execute("DESCRIBE posts").fetchall()
        rows = con.execute("SELECT * FROM posts ORDER BY post_id").fetchall()
        assert [r[0] for r in rows] == ["1", "2", "3", "4"]
        assert con.execute(
            "SELECT count(*) FROM posts WHERE withheld_in_countries IS NULL AND geo IS NULL"
        ).fetchone() == (4,)
    assert main(["query", url, "SELECT count(geo), count(*) FROM posts"]) == 0
    assert main(["inspect", url]) == 0
    out = capsys.readouterr().out
    assert "geo" in out and "withheld_in_countries" in out
    assert (
        "columns added since the dataset was created (null in older files): "
        "lang_source, withheld_in_countries, geo" in out
    )

    # ingest more: a delete of an old post rewrites its (old) file; new rows carry the columns
    old_files = {f.path for f in ds.files()}
    report = _ingest(
        url,
        tmp_path / "old-src" / "b.jsonl",
        [
            post_event("delete", "2"),
            post("5", "7", withheld={"country_codes": ["DE"]}),
            post("6", "8", geo={"place_id": "p1", "coordinates": {"coordinates": [13.4, 52.5]}}),
        ],
        incremental=True,  # a.jsonl was consumed by the old version: skipped
    )
    assert report.info["committed_rows_deleted"] == 1
    ds = Dataset.open(url)
    assert ds.latest_version() == 2
    rewritten = {f.path for f in ds.files()} - old_files
    assert rewritten and old_files - {f.path for f in ds.files()}
    for path in rewritten:
        assert pq.read_schema(ds.fs.open(ds.path(path))).equals(POSTS.schema)
    with connect(url) as con:
        rows = con.execute(
            "SELECT post_id, withheld_in_countries, geo FROM posts ORDER BY post_id"
        ).fetchall()
    assert rows == [
        ("1", None, None),
        ("3", None, None),
        ("4", None, None),
        ("5", ["DE"], None),
        ("6", None, {"place_id": "p1", "coordinates": [13.4, 52.5]}),
    ]
    # read-side evolution: dataset.json is never rewritten
    assert _dataset_json(ds) == before and Dataset.open(url).missing_columns == NEW

    # time travel: version 1 as it was, in the current schema
    with connect(url, version=1) as con:
        assert con.execute("SELECT post_id, geo FROM posts ORDER BY 1").fetchall() == [
            (p, None) for p in "1234"
        ]
    assert main(["history", url]) == 0
    assert main(["inspect", url, "--version", "1"]) == 0
    capsys.readouterr()

    # tokenize reads the mixed files (Beam's ReadShards path)
    tokens = str(tmp_path / "tokens")
    result = tokenize_run(TokenizeConfig(inputs=(url,), dataset=tokens, seq_len=32), _options())
    assert result.status == "committed", result.message
    with connect(tokens) as con:
        ids = con.execute("SELECT DISTINCT s.id FROM tokens, unnest(sources) AS u(s)").fetchall()
    assert sorted(i for (i,) in ids) == ["1", "3", "4", "5", "6"]


def test_a_changed_type_is_refused_in_one_line(tmp_path, capsys):
    url = str(tmp_path / "bad")
    i = OLD_SCHEMA.get_field_index("like_count")
    changed = OLD_SCHEMA.set(i, pa.field("like_count", pa.string()))
    with pytest.raises(DatasetError) as info:
        Dataset.create(url, dataclasses.replace(POSTS, schema=changed, added_columns=()))
    message = str(info.value)
    assert message == (
        f"{url}/dataset.json: the posts schema differs from this version of shardsmith's: "
        f"column 'like_count': stored as string, expected int64"
    )
    assert main(["query", url, "SELECT 1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "column 'like_count': stored as string, expected int64" in err
    assert len(err.splitlines()) == 1


def test_an_old_dataset_on_s3_reads_with_the_current_schema(tmp_path, moto_endpoint):
    options = s3_options(moto_endpoint)
    url = f"s3://{make_bucket(moto_endpoint)}/old"
    ds = _old_dataset(tmp_path, url, options)
    ds = Dataset.open(url, storage_options=options)
    assert ds.missing_columns == NEW
    with connect(url, storage_options=options) as con:
        assert con.execute(
            "SELECT count(*), count(geo), count(withheld_in_countries) FROM posts"
        ).fetchone() == (4, 0, 0)
        assert [r[0] for r in con.execute("DESCRIBE posts").fetchall()] == [
            *POSTS.schema.names,
            "dt",
        ]
    entry = ds.files()[0]
    table = read_parquet(ds.fs, ds.path(entry.path), schema=ds.info.schema)
    assert table.schema.equals(POSTS.schema)
