"""Additive schema evolution: datasets written before a kind gained columns still open and read.

The rule (one, for every kind). A kind's ``added_columns`` are the nullable columns its schema
gained after datasets of it were first written (posts: ``withheld_in_countries``, ``geo``).
A stored schema (``dataset.json``, or a data file's) is compatible with this shardsmith's when
removing some of the added columns from the current schema gives exactly the stored schema:
same names, types and nullability, in the same relative order; an added column may be missing
wherever it sits in the field order. Anything else -- a changed type or nullability, a column
removed that is not an added one, an unknown column (a newer shardsmith), a reordering -- is
refused, naming the first difference.

Readers always see the current schema: a missing added column reads as nulls. Filling is per
table (one ``pa.nulls`` per column), never per row, and a table already in the current schema
is returned as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from schemas.kinds import KindSpec, kind_spec
from schemas.validate import SchemaError

__all__ = ["check_evolution", "evolve_table"]


def check_evolution(stored: pa.Schema, kind: str | KindSpec) -> tuple[str, ...]:
    """The columns of ``kind``'s current schema that ``stored`` lacks (added since it was
    written), in schema order; ``SchemaError`` naming the first other difference.

    >>> from schemas.kinds import POSTS
    >>> old = pa.schema([f for f in POSTS.schema if f.name != "geo"])
    >>> check_evolution(old, POSTS)
    ('geo',)
    """
    spec = kind_spec(kind)
    current = spec.schema
    for field in stored:
        if current.get_field_index(field.name) < 0:
            raise SchemaError(
                f"column {field.name!r}: not in this shardsmith's {spec.name} schema "
                f"(written by a newer shardsmith?)"
            )
        expected = current.field(field.name)
        if not field.type.equals(expected.type):
            raise SchemaError(
                f"column {field.name!r}: stored as {field.type}, expected {expected.type}"
            )
        if field.nullable != expected.nullable:
            raise SchemaError(
                f"column {field.name!r}: stored {_nullability(field)}, expected "
                f"{_nullability(expected)}"
            )
    missing = tuple(name for name in current.names if stored.get_field_index(name) < 0)
    removed = [name for name in missing if name not in spec.added_columns]
    if removed:
        raise SchemaError(
            f"column {removed[0]!r}: missing (only columns added since may be: "
            f"{', '.join(spec.added_columns) or 'none'})"
        )
    kept = [name for name in current.names if name not in missing]
    for found, expected in zip(stored.names, kept, strict=True):
        if found != expected:
            raise SchemaError(
                f"column {found!r}: out of the {spec.name} schema's order (expected "
                f"{expected!r} there)"
            )
    return missing


def _nullability(field: pa.Field) -> str:
    return "nullable" if field.nullable else "not null"


def evolve_table(
    table: pa.Table,
    schema: pa.Schema,
    columns: Sequence[str] | None = None,
    *,
    cast: bool = False,
) -> pa.Table:
    """``table`` (read from one data file) with exactly ``schema`` (or its ``columns``, in that
    order): a nullable column the file lacks is filled with nulls.

    ``SchemaError`` for a column of another type (with ``cast``: Arrow's safe cast to the
    target type instead), a missing non-nullable column, or (reading every column) a column
    ``schema`` does not have. Costs nothing for a table already in the target schema.

    >>> target = pa.schema([("a", pa.int64()), ("geo", pa.string())])
    >>> evolve_table(pa.table({"a": [1]}), target).column("geo").to_pylist()
    [None]
    """
    target = schema if columns is None else pa.schema([schema.field(c) for c in columns])
    if table.schema.equals(target):
        return table
    found = table.schema
    arrays = []
    for field in target:
        i = found.get_field_index(field.name)
        if i < 0:
            if not field.nullable:
                raise SchemaError(f"column {field.name!r}: missing; expected type {field.type}")
            arrays.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(i)
        if cast and not column.type.equals(field.type):
            column = column.cast(field.type)
        if not column.type.equals(field.type):
            raise SchemaError(
                f"column {field.name!r}: found type {column.type}, expected type {field.type}"
            )
        arrays.append(column)
    if columns is None:
        extra = [name for name in found.names if target.get_field_index(name) < 0]
        if extra:
            raise SchemaError(f"column {extra[0]!r}: not in the schema; expected {target.names}")
    return pa.Table.from_arrays(arrays, schema=target)
