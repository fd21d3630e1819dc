"""Reading a Parquet file from any fsspec filesystem."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from schemas.evolution import evolve_table

__all__ = ["read_parquet"]


def read_parquet(
    fs: AbstractFileSystem,
    path: str,
    columns: Sequence[str] | None = None,
    *,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """The table at ``path`` on ``fs`` (only ``columns`` if given).

    With ``schema`` (a dataset's ``info.schema``), the table has exactly that schema (or its
    ``columns``): a data file written before the kind gained a column reads with nulls there
    (``schemas.evolution``); ``SchemaError`` for any other difference.
    """
    with fs.open(path, "rb") as f:
        # With a Python file object, Arrow's reader threads (pre_buffer, use_threads) leave
        # state that aborts the interpreter at exit while a table read that way is alive
        # ("terminate called without an active exception", pyarrow 25). Workers read whole
        # files in parallel anyway, so one thread per read costs little.
        if schema is None:
            return pq.read_table(
                f, columns=list(columns) if columns else None, pre_buffer=False, use_threads=False
            )
        parquet = pq.ParquetFile(f, pre_buffer=False)
        names = parquet.schema_arrow.names
        # Columns the file lacks are not asked for (read_table refuses them); evolve fills them.
        present = [c for c in columns if c in names] if columns else None
        table = parquet.read(columns=present, use_threads=False)
    return evolve_table(table, schema, columns)
