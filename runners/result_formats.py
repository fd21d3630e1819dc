"""Every DuckDB type in every output format of ``shardsmith query``.

DuckDB hands results over as Arrow. The CSV writer refuses nested, binary and interval columns,
Parquet refuses intervals and unions, and JSON has no bytes, decimals or intervals; so:

==============================  ====================  ===========  ===========  ==================
value                           table (terminal)      CSV cell     JSON lines   Parquet
==============================  ====================  ===========  ===========  ==================
LIST, STRUCT, MAP, UNION        JSON, truncated       JSON text    native       native; UNION as
                                                                                JSON text
BLOB, BIT                       its size              base64       base64       binary
INTERVAL                        months, days, ns      JSON object  object       struct
DECIMAL, HUGEINT                as is                 as is        number       decimal
==============================  ====================  ===========  ===========  ==================

A MAP is a JSON object where its keys are text (as DuckDB writes it), else a list of pairs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal

import orjson
import pyarrow as pa
import pyarrow.types as pt

__all__ = ["cell_text", "for_csv", "for_parquet", "json_lines", "parquet_schema", "python_rows"]

_CELL_CHARS = 80
_INTERVAL = pa.struct([("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())])


def _json_default(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json(value) -> bytes:
    try:
        return orjson.dumps(value, default=_json_default)
    except orjson.JSONEncodeError:  # an integer past 64 bits (HUGEINT): the json module writes it
        return json.dumps(value, default=_json_default, separators=(",", ":")).encode()


def _plain(value, type_: pa.DataType):
    """``value`` (from ``to_pylist``) with every map whose keys are text made a dict, and
    every interval a dict of months, days and nanoseconds."""
    if value is None:
        return None
    if pt.is_interval(type_):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if pt.is_map(type_):
        pairs = [(k, _plain(v, type_.item_type)) for k, v in value]
        return dict(pairs) if pt.is_string(type_.key_type) else [list(p) for p in pairs]
    if pt.is_list(type_) or pt.is_large_list(type_) or pt.is_fixed_size_list(type_):
        return [_plain(v, type_.value_type) for v in value]
    if pt.is_struct(type_):
        return {
            f.name: _plain(value[f.name], f.type)
            for f in (type_.field(i) for i in range(type_.num_fields))
        }
    return value


def _python_column(column: pa.Array) -> list:
    return [_plain(v, column.type) for v in column.to_pylist()]


def python_rows(batch: pa.RecordBatch) -> list[dict]:
    """The rows of ``batch`` as dicts (maps with text keys and intervals as dicts too)."""
    names = batch.schema.names
    columns = [_python_column(c) for c in batch.columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def json_lines(batch: pa.RecordBatch) -> Iterator[bytes]:
    """One JSON object a row (nested values native; see the module's table)."""
    for row in python_rows(batch):
        yield _json(row) + b"\n"


def _csv_writes(type_: pa.DataType) -> bool:
    if pt.is_dictionary(type_):
        return _csv_writes(type_.value_type)
    return any(
        check(type_)
        for check in (
            pt.is_integer,
            pt.is_floating,
            pt.is_boolean,
            pt.is_string,
            pt.is_large_string,
            pt.is_null,
            pt.is_date,
            pt.is_time,
            pt.is_timestamp,
            pt.is_decimal,
        )
    )


def _as_text(column: pa.Array) -> pa.Array:
    def text(value):
        if value is None:
            return None
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        return _json(value).decode()

    return pa.array([text(v) for v in _python_column(column)], pa.string())


def _replace(batch: pa.RecordBatch, keep, convert) -> pa.RecordBatch:
    arrays, fields = [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if not keep(field.type):
            column = convert(column)
            field = pa.field(field.name, column.type)
        arrays.append(column)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def for_csv(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with every column the CSV writer refuses as text (see the module's table)."""
    return _replace(batch, _csv_writes, _as_text)


def _parquet_type(type_: pa.DataType) -> pa.DataType:
    if pt.is_interval(type_):
        return _INTERVAL
    return pa.string() if pt.is_union(type_) else type_


def parquet_schema(schema: pa.Schema) -> pa.Schema:
    """The schema ``for_parquet`` gives batches of ``schema``."""
    return pa.schema([pa.field(f.name, _parquet_type(f.type)) for f in schema])


def _for_parquet(column: pa.Array) -> pa.Array:
    if pt.is_interval(column.type):
        return pa.array(_python_column(column), _INTERVAL)
    return _as_text(column)


def for_parquet(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with intervals as structs and unions as JSON text (Parquet has neither)."""
    return _replace(batch, lambda t: _parquet_type(t) == t, _for_parquet)


def cell_text(value) -> str:
    """One value as a terminal table shows it: nested values as JSON, bytes as their size,
    anything longer than 80 characters cut."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    nested = isinstance(value, list | dict)
    text = _json(value).decode() if nested else str(value)
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 3] + "..."
