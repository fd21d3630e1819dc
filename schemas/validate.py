"""Checking a table against a kind's schema before anything is written."""

from __future__ import annotations

import pyarrow as pa

from schemas.kinds import KindSpec, kind_spec

__all__ = ["SchemaError", "conform_table"]


class SchemaError(ValueError):
    """A table does not match its kind's schema; the message names the column and both types."""


def conform_table(table: pa.Table | pa.RecordBatch, kind: str | KindSpec | pa.Schema) -> pa.Table:
    """Return ``table`` with exactly the schema of ``kind``, or raise ``SchemaError``.

    Columns may come in any order (they are put in schema order); a missing or unexpected
    column, a type that differs in any way (no implicit casts: ``int32`` is not ``int64``), or a
    null in a non-nullable column is an error naming the column, the type found and the type
    expected.

    >>> conform_table(pa.table({"x": [1]}), pa.schema([("x", pa.int64())])).num_rows
    1
    """
    schema = kind if isinstance(kind, pa.Schema) else kind_spec(kind).schema
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    found = {f.name: f for f in table.schema}
    for field in schema:
        got = found.get(field.name)
        if got is None:
            raise SchemaError(f"column {field.name!r}: missing; expected type {field.type}")
        if not got.type.equals(field.type):
            raise SchemaError(
                f"column {field.name!r}: found type {got.type}, expected type {field.type}"
            )
        if not field.nullable and table.column(field.name).null_count:
            raise SchemaError(
                f"column {field.name!r}: found {table.column(field.name).null_count} nulls, "
                f"expected type {field.type} not null"
            )
    extra = [name for name in table.column_names if name not in schema.names]
    if extra:
        raise SchemaError(f"column {extra[0]!r}: not in the schema; expected one of {schema.names}")
    return pa.Table.from_arrays([table.column(n) for n in schema.names], schema=schema)
