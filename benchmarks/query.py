"""Query: a scan-and-aggregate through `shardsmith query` against plain DuckDB, and start-up.

Anchor, measured in the same run: plain DuckDB (`duckdb.connect()`) running the same SQL over
``read_parquet([the same files], hive_partitioning = true)``. shardsmith's figure includes
everything the command does besides printing: opening the dataset, reading the manifest,
building the read-only views and running the statement. The ratio is anchor time / shardsmith
time, best of 5 each (DESIGN.md §7 target: >= 0.95x). Start-up is the wall time of
``shardsmith query DATASET "SELECT 1"`` as a new process (target: <= 1 s).

    python benchmarks/query.py [--rows 4000000] [--files 16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from catalog import CommitRequest, Dataset, new_run_id
from catalog.sql import connect, read_query
from schemas import POSTS
from transforms.parquet_writer import RollingParquetWriter
from transforms.partitioning import partition_dir, split_partitions

SQL = (
    "SELECT lang, count(*) AS posts, avg(like_count) AS likes, max(length(text)) AS longest "
    "FROM posts WHERE created_at >= TIMESTAMPTZ '2026-11-03' GROUP BY lang ORDER BY posts DESC"
)


def make_posts(url: str, rows: int, files: int) -> Dataset:
    rng = np.random.default_rng(0)
    ds = Dataset.create(url, "posts")
    run_id, entries = new_run_id(), []
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp() * 1000
    langs = np.array(["en", "es", "ja", "pt", "fr", "de", "ar", "hi", "ko", "tr"])
    per = rows // files
    for f in range(files):
        cols = {field.name: pa.nulls(per, field.type) for field in POSTS.schema}
        cols["post_id"] = pa.array([f"{f}-{i}" for i in range(per)])
        ms = np.sort(t0 + rng.integers(0, 10 * 86_400_000, per))
        cols["created_at"] = pa.array(
            ms.astype("datetime64[ms]"), POSTS.schema.field("created_at").type
        )
        cols["lang"] = pa.array(langs[rng.integers(0, len(langs), per)])
        cols["text"] = pa.array(["post text " * int(k) for k in rng.integers(1, 8, per)])
        cols["like_count"] = pa.array(rng.integers(0, 1000, per))
        table = pa.table(cols, schema=POSTS.schema)
        for dt_, part in split_partitions(table, ds.spec):
            writer = RollingParquetWriter(
                ds.fs,
                ds.root,
                partition_dir(dt_),
                lambda s, f=f: f"{run_id}-{f:05d}.parquet",
                POSTS.schema,
                sort_by=POSTS.sort_by,
            )
            writer.write(part)
            entries += writer.close()
    ds.commit(CommitRequest(run_id=run_id, add=entries))
    return ds


def best(fn, times: int = 5) -> tuple[float, object]:
    out, result = [], None
    for _ in range(times):
        start = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - start)
    return min(out), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--files", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ds = make_posts(f"{tmp}/posts", args.rows, args.files)
        files = [ds.path(f.path) for f in ds.files()]
        listed = ", ".join(f"'{p}'" for p in files)

        def plain():
            con = duckdb.connect()
            con.execute(
                f"CREATE VIEW posts AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true)"
            )
            rows = con.sql(SQL).fetchall()
            con.close()
            return rows

        def ours():
            con = connect(ds.url)
            rows = read_query(con, SQL).fetchall()
            con.close()
            return rows

        t_anchor, want = best(plain)
        t_ours, got = best(ours)
        assert got == want, "shardsmith and plain DuckDB disagree"
        cmd = [str(Path(sys.executable).parent / "shardsmith"), "query", ds.url, "SELECT 1"]
        t_start, _ = best(lambda: subprocess.run(cmd, check=True, capture_output=True), 3)
        size = sum(f.bytes for f in ds.files())
    print(f"input: {args.rows:,} posts in {len(files)} files, {size / 2**20:.1f} MiB")
    print(f"anchor (plain DuckDB):  {t_anchor * 1000:7.1f} ms")
    print(f"shardsmith query:       {t_ours * 1000:7.1f} ms  ratio {t_anchor / t_ours:.2f}x")
    print(f'start-up (`shardsmith query DATASET "SELECT 1"`, new process): {t_start:.2f} s')


if __name__ == "__main__":
    main()
