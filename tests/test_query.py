"""DuckDB over dataset versions: exact files, time travel, read-only, helpers, interop, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from io import BytesIO
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from tablegen import posts_table, read_version, tokens_table, write_data_file

from catalog import CommitRequest, Dataset, new_run_id
from catalog.sql import connect, read_query
from transforms.partitioning import partition_dir, split_partitions

BIN = Path(sys.executable).parent / "shardsmith"


def _append(ds: Dataset, table: pa.Table, **properties) -> int:
    """Commit ``table`` as one version, one file per ``dt`` partition as WriteShards lays it."""
    run_id = new_run_id()
    entries = [
        write_data_file(ds, f"{partition_dir(dt)}/{run_id}-{i:05d}.parquet", rows)
        for i, (dt, rows) in enumerate(split_partitions(table, ds.spec))
    ]
    return ds.commit(CommitRequest(run_id=run_id, add=entries, properties=properties)).version


@pytest.fixture
def posts(store):
    ds = Dataset.create(store.url("posts"), "posts", storage_options=store.storage_options)
    _append(ds, posts_table(30, "a"))
    _append(ds, posts_table(20, "b"))
    return store, ds


def test_a_view_reads_exactly_the_files_of_the_version(posts):
    store, ds = posts
    con = connect(ds.url, storage_options=store.storage_options)
    try:
        got = con.sql("SELECT * EXCLUDE (dt) FROM posts ORDER BY post_id").to_arrow_table()
        want = read_version(ds).sort_by("post_id")
        assert got.to_pylist() == want.to_pylist()
        # The hive partition column comes with the view.
        days = con.sql("SELECT dt, count(*) FROM posts GROUP BY ALL ORDER BY 1").fetchall()
        by_day = Counter(t.date() for t in want.column("created_at").to_pylist())
        assert days == sorted(by_day.items()) and len(days) == 9
        # An orphan (a crashed run's file) in data/ is invisible.
        write_data_file(ds, "data/orphan-00000.parquet", posts_table(7, "zz"))
        assert con.sql("SELECT count(*) FROM posts").fetchall() == [(50,)]
    finally:
        con.close()
    con = connect(ds.url, storage_options=store.storage_options)
    try:
        assert con.sql("SELECT count(*) FROM posts").fetchall() == [(50,)]
    finally:
        con.close()


def test_time_travel_and_aliases(posts):
    store, ds = posts
    con = connect(ds.url, ds.url, version=[1, 2], aliases=["old", "new"], **_so(store))
    try:
        assert con.sql("SELECT count(*) FROM old").fetchall() == [(30,)]
        assert con.sql("SELECT count(*) FROM new").fetchall() == [(50,)]
        added = con.sql("SELECT post_id FROM new EXCEPT SELECT post_id FROM old").fetchall()
        assert sorted(p for (p,) in added) == sorted(f"b{i}" for i in range(20))
    finally:
        con.close()
    with pytest.raises(ValueError, match="name them apart"):
        connect(ds.url, ds.url, **_so(store))


def _so(store):
    return {"storage_options": store.storage_options}


def test_the_connection_is_read_only(posts):
    store, ds = posts
    before = ds.files()
    con = connect(ds.url, **_so(store))
    try:
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE copy AS SELECT * FROM posts")
        with pytest.raises(duckdb.Error):
            con.execute("DROP VIEW posts")
        with pytest.raises(ValueError, match="COPY statement: queries are read-only"):
            read_query(con, "COPY posts TO 'x.csv'")
        with pytest.raises(ValueError, match="one SQL statement, found 2"):
            read_query(con, "SELECT 1; SELECT 2")
        assert read_query(con, "WITH t AS (SELECT 1 AS x) SELECT x FROM t").fetchall() == [(1,)]
    finally:
        con.close()
    assert ds.files() == before and ds.latest_version() == 2


def test_an_empty_dataset_is_an_empty_view(tmp_path):
    ds = Dataset.create(str(tmp_path / "clips"), "clips")
    con = connect(ds)
    try:
        rel = con.sql("SELECT * FROM clips")
        assert rel.fetchall() == [] and "cameras" in rel.columns
    finally:
        con.close()


def test_detokenize_uses_the_manifest_tokenizer(tmp_path):
    from transforms.tokenize import load_tokenizer

    spec = load_tokenizer()
    tok = spec.backend()
    texts = ["Traffic on the bridge 🚗 #traffic", "東京の朝"]
    ids = [[*tok.encode(t, add_special_tokens=False).ids, 0] for t in texts]
    ds = Dataset.create(str(tmp_path / "tokens"), "tokens")
    table = tokens_table(2).set_column(1, "input_ids", pa.array(ids, pa.list_(pa.int32())))
    _append(ds, table, tokenizer=spec.manifest_entry(), seq_len=16, pack="concat", seed=0)
    con = connect(ds)
    try:
        got = con.sql("SELECT detokenize(input_ids) FROM tokens ORDER BY example_id").fetchall()
    finally:
        con.close()
    assert [g for (g,) in got] == [t + "<|endoftext|>" for t in texts]


def test_shards_load_with_pyarrow_pandas_and_hugging_face_datasets(tmp_path):
    import datasets
    import pandas as pd

    ds = Dataset.create(str(tmp_path / "posts"), "posts")
    _append(ds, posts_table(12, "a"))
    _append(ds, posts_table(8, "b"))
    files = [ds.path(f.path) for f in ds.files()]
    want = sorted(f"{p}{i}" for p, n in (("a", 12), ("b", 8)) for i in range(n))
    assert sorted(pq.ParquetDataset(files).read().column("post_id").to_pylist()) == want
    frame = pd.concat(pd.read_parquet(f) for f in files)
    assert sorted(frame["post_id"]) == want and str(frame["created_at"].dt.tz) == "UTC"
    hf = datasets.load_dataset(
        "parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf")
    )
    assert sorted(hf["post_id"]) == want and hf.features["hashtags"].feature.dtype == "string"


def _cli(*args, ok=True):
    done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_cli_query_formats_and_errors(tmp_path):
    ds = Dataset.create(str(tmp_path / "posts"), "posts")
    _append(ds, posts_table(10, "a"))
    sql = "SELECT post_id, like_count FROM posts ORDER BY like_count DESC LIMIT 3"
    csv = _cli("query", ds.url, sql).stdout  # not a terminal: CSV
    assert csv.splitlines() == ['"post_id","like_count"', '"a9",9', '"a8",8', '"a7",7']
    lines = _cli("query", ds.url, sql, "--format", "json").stdout.splitlines()
    assert [json.loads(x)["like_count"] for x in lines] == [9, 8, 7]
    assert json.loads(lines[0]) == {"post_id": "a9", "like_count": 9}
    out = tmp_path / "r.parquet"
    _cli("query", ds.url, sql, "--format", "parquet", "--out", out)
    assert pq.read_table(out).column("post_id").to_pylist() == ["a9", "a8", "a7"]
    table = _cli("query", ds.url, sql, "--format", "table", "--limit", "2").stdout
    assert "a9" in table and "a7" not in table and "3 rows (first 2 shown" in table
    _cli("query", ds.url, ds.url, "SELECT count(*) FROM v1", "--as", "v1", "--as", "v2")
    bad = [
        ((ds.url, "SELECT nope FROM posts"), 'SQL: Binder Error: Referenced column "nope"'),
        ((ds.url, "DELETE FROM posts"), "queries are read-only"),
        ((ds.url, "SELECT 1", "--version", "9"), "no version 9"),
        ((tmp_path / "none", "SELECT 1"), "not a shardsmith dataset"),
        ((ds.url, "SELECT 1", "--format", "parquet"), "expected --out PATH"),
    ]
    for args, message in bad:
        done = _cli("query", *args, ok=False)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_credentials_never_appear(moto_endpoint, tmp_path):
    from conftest import make_bucket

    secret = "s3cr3t-SHARDSMITH-never-print"
    options = {
        "key": "AKIDSHARDSMITH",
        "secret": secret,
        "client_kwargs": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }
    url = f"s3://{make_bucket(moto_endpoint)}/posts"
    ds = Dataset.create(url, "posts", storage_options=options)
    _append(ds, posts_table(5, "s"))
    opts = ["--storage-options", json.dumps(options)]
    good = _cli("query", url, "SELECT count(*) AS n FROM posts", *opts)
    assert good.stdout.splitlines() == ['"n"', "5"]
    bad = _cli("query", url, "SELECT nope FROM posts", *opts, ok=False)
    inspected = _cli("inspect", url, "--json", *opts)
    manifest = ds.fs.cat_file(ds.path("manifests/v00000001.json")).decode()
    for text in (good.stdout, good.stderr, bad.stderr, inspected.stdout, manifest):
        assert secret not in text and "AKIDSHARDSMITH" not in text


def test_inspect_each_kind(tmp_path):
    from tablegen import clips_table

    for kind, table in (("posts", posts_table(9, "a")), ("clips", clips_table(3))):
        ds = Dataset.create(str(tmp_path / kind), kind)
        _append(ds, table)
        summary = json.loads(_cli("inspect", ds.url, "--json").stdout)
        assert (summary["kind"], summary["rows"], summary["version"]) == (kind, table.num_rows, 1)
        assert summary["nulls"]["lang" if kind == "posts" else "event"] == table.num_rows
        assert sum(p["rows"] for p in summary["partitions"]) == table.num_rows
    assert summary["clips"]["footage"]["hours"] == round(30 / 3600, 3)
    assert [c["camera"] for c in summary["clips"]["cameras"]] == ["front", "rear"]
    screen = _cli("inspect", ds.url).stdout
    assert "rows per partition" in screen and "footage" in screen
    _cli("inspect", ds.url, "--histogram", tmp_path / "h.png")
    assert Image.open(tmp_path / "h.png").size == (800, 400)


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_inspect_contact_sheet_shows_the_frames(tmp_path):
    from tablegen import clips_table

    from catalog.pictures import contact_sheet

    rows = clips_table(3).to_pylist()
    for i, row in enumerate(rows):
        for c, cam in enumerate(row["cameras"]):
            cam["frames"] = [_jpeg(100 * i + 10 * c + k) for k in range(3)]
    table = pa.Table.from_pylist(rows, schema=clips_table(0).schema)
    ds = Dataset.create(str(tmp_path / "clips"), "clips")
    _append(ds, table)
    sheet = tmp_path / "sheet.png"
    done = _cli("inspect", ds.url, "--contact-sheet", sheet, "--clip", rows[1]["clip_id"])
    assert f"contact sheet: {sheet}" in done.stdout
    layout = contact_sheet([rows[1]], BytesIO())  # where the CLI put each frame
    png = np.asarray(Image.open(sheet).convert("RGB"))
    assert png.shape[1::-1] == layout.size
    cells = [c for c in layout.cells if c.status == "ok"]
    assert len(cells) == 6  # 2 cameras x 3 frames
    for cell in cells:
        left, top, right, bottom = cell.box
        frame = next(cam for cam in rows[1]["cameras"] if cam["camera"] == cell.camera)
        decoded = np.asarray(Image.open(BytesIO(frame["frames"][cell.frame_index])).convert("RGB"))
        assert np.array_equal(png[top:bottom, left:right], decoded)
    done = _cli("inspect", ds.url, "--contact-sheet", sheet, "--clip", "nope", ok=False)
    assert done.returncode == 2 and "--clip nope: no such clip" in done.stderr
