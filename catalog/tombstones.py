"""The ``tombstones`` view: the compliance log a posts dataset version holds, for SQL.

One row per change a version made to the dataset's compliance state (``schemas.tombstones``),
with the ``version`` that made it. The state at the pinned version is, per ``(target, id)``,
the row of the highest version; removals since version V are the rows with ``version > V``.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from catalog.parquet import read_parquet
from catalog.storage import to_url
from schemas import TOMBSTONES_SCHEMA

__all__ = [
    "TOMBSTONE_STATE_SQL",
    "create_tombstone_view",
    "empty_tombstones",
    "read_tombstones",
    "tombstone_counts",
    "tombstone_view",
]

# The current state of each key, from the log: the latest version's row.
TOMBSTONE_STATE_SQL = (
    'SELECT target, id, arg_max(state, version) AS state FROM "{view}" GROUP BY target, id'
)


def tombstone_view(name: str) -> str:
    """The tombstones view of the posts view ``name``: ``tombstones`` for ``posts``."""
    return "tombstones" if name == "posts" else f"{name}_tombstones"


def create_tombstone_view(con: duckdb.DuckDBPyConnection, spec, schema: str) -> str | None:
    """Create the tombstones view of ``spec`` (a posts ``ViewSpec``) in ``schema``; its name,
    or None when the version lists no tombstones (the caller registers an empty one)."""
    name = tombstone_view(spec.name)
    manifest = spec.ds.manifest(spec.version) if spec.version else None
    entries = list(manifest.tombstones) if manifest else []
    if not entries:
        return None
    parts = [
        f"SELECT *, {int(e.version)} AS version FROM read_parquet("
        + "'"
        + to_url(spec.ds.fs, spec.ds.path(e.path)).replace("'", "''")
        + "')"
        for e in entries
    ]
    con.execute(f'CREATE VIEW {schema}."{name}" AS ' + " UNION ALL ".join(parts))
    return name


def empty_tombstones() -> pa.Table:
    """The tombstones view of a version that lists none: no rows, every column."""
    return TOMBSTONES_SCHEMA.append(pa.field("version", pa.int64())).empty_table()


def tombstone_counts(con: duckdb.DuckDBPyConnection, view: str) -> list[dict[str, Any]]:
    """Keys per target and current state, and the log rows behind them."""
    rel = con.sql(
        f"SELECT s.target, s.state, count(*) AS keys FROM ({TOMBSTONE_STATE_SQL.format(view=view)}) s "
        "GROUP BY ALL ORDER BY 1, 2"
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def read_tombstones(ds, version: int | None = None, *, since: int = 0) -> pa.Table:
    """The tombstone rows of ``ds`` (a posts ``Dataset``) at ``version`` (default: latest)
    added by versions after ``since``, with a ``version`` column, oldest first: what a derived
    dataset built on version ``since`` has to remove (``state`` other than ``lifted``)."""
    manifest = ds.manifest(version)
    tables = []
    for entry in manifest.tombstones if manifest else ():
        if entry.version > since:
            table = read_parquet(ds.fs, ds.path(entry.path))
            versions = pa.array([entry.version] * table.num_rows, pa.int64())
            tables.append(table.append_column("version", versions))
    return pa.concat_tables(tables) if tables else empty_tombstones()
