"""Tiny tables of each kind, generated for tests."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from catalog import Dataset
from schemas import POSTS, FileEntry

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)


def posts_table(n: int, prefix: str = "p", start: dt.datetime = T0, step_hours: float = 7.0):
    """``n`` posts, ids ``<prefix>0..``, created every ``step_hours`` (so they span several days)."""
    cols: dict[str, list] = {f.name: [None] * n for f in POSTS.schema}
    cols["post_id"] = [f"{prefix}{i}" for i in range(n)]
    cols["created_at"] = [start + dt.timedelta(hours=step_hours * i) for i in range(n)]
    cols["text"] = [f"post number {i} from {prefix} #tag{i % 3}" for i in range(n)]
    cols["hashtags"] = [[f"tag{i % 3}"] for i in range(n)]
    cols["like_count"] = list(range(n))
    cols["text_hash"] = [i * 2654435761 % 2**64 for i in range(n)]
    return pa.table(cols, schema=POSTS.schema)


def write_data_file(ds: Dataset, rel_path: str, table: pa.Table) -> FileEntry:
    """Write ``table`` to ``rel_path`` in ``ds`` as a plain Parquet file; return its entry."""
    path = ds.path(rel_path)
    ds.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with ds.fs.open(path, "wb") as f:
        pq.write_table(table, f)
    return FileEntry(rel_path, table.num_rows, ds.fs.size(path), "sha256:test")


def read_version(ds: Dataset, version: int | None = None) -> pa.Table:
    """Every row of a version, read with plain pyarrow from its file list."""
    tables = []
    for entry in ds.files(version):
        with ds.fs.open(ds.path(entry.path), "rb") as f:
            tables.append(pq.read_table(f))
    return pa.concat_tables(tables) if tables else POSTS.schema.empty_table()
