"""The SQL a dataset view reads its files with, whatever schema each file was written with.

Files written with the current schema are read as DuckDB reads them (``read_parquet`` of the
list), at no extra cost. A dataset created before its kind gained columns
(``Dataset.missing_columns``) may mix files with and without them: those are read with
``union_by_name`` (DuckDB reads every footer when the view is bound), under an empty row of the
current schema's exact types, so the view has the current columns in schema order and the
columns a file lacks are typed nulls -- never a type DuckDB widened to make the union fit.
"""

from __future__ import annotations

import duckdb

from catalog.dataset import Dataset

__all__ = ["view_select"]


def view_select(con: duckdb.DuckDBPyConnection, ds: Dataset, files_sql: str) -> str:
    """``SELECT ...`` of ``ds``'s view over ``files_sql`` (a SQL list of file URLs)."""
    hive = "true" if ds.spec.partition_by else "false"
    if not ds.missing_columns:
        return f"SELECT * FROM read_parquet({files_sql}, hive_partitioning = {hive})"
    typed = ", ".join(
        f'CAST(NULL AS {duck_type}) AS "{name}"' for name, duck_type in _duck_types(con, ds)
    )
    return (
        f"SELECT {typed} WHERE false UNION ALL BY NAME SELECT * FROM "
        f"read_parquet({files_sql}, hive_partitioning = {hive}, union_by_name = true)"
    )


def _duck_types(con: duckdb.DuckDBPyConnection, ds: Dataset) -> list[tuple[str, str]]:
    # DuckDB's own names of the Arrow types (what it gives the same columns read from Parquet),
    # not a hand-kept mapping.
    name = "__shardsmith_schema"
    con.register(name, ds.info.schema.empty_table())
    try:
        return [(row[0], row[1]) for row in con.execute(f'DESCRIBE "{name}"').fetchall()]
    finally:
        con.unregister(name)
