"""``shardsmith query``: SQL over dataset versions, as a table on a terminal or a machine format."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pyarrow as pa

from runners.errors import UserError

FORMATS = ("table", "csv", "json", "parquet")


def _batches(rel) -> Iterator[pa.RecordBatch]:
    yield from rel.fetch_record_batch(65_536)


def write_result(rel, fmt: str, out: str | None) -> int:
    """Write the relation's rows in ``fmt`` to ``out`` (or stdout); returns the row count.

    Every DuckDB type is written in every format (see ``runners.result_formats``)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from runners.result_formats import for_csv, for_parquet, json_lines, parquet_schema

    sink = open(out, "wb") if out else sys.stdout.buffer  # noqa: SIM115 (closed below)
    rows = 0
    try:
        if fmt == "parquet":
            writer = None
            for batch in map(for_parquet, _batches(rel)):
                if writer is None:
                    writer = pq.ParquetWriter(sink, batch.schema, compression="zstd")
                writer.write_batch(batch)
                rows += batch.num_rows
            if writer is None:  # no rows: the file still says what the columns are
                schema = parquet_schema(rel.to_arrow_table().schema)
                writer = pq.ParquetWriter(sink, schema, compression="zstd")
            writer.close()
        elif fmt == "csv":
            writer = None
            for batch in map(for_csv, _batches(rel)):
                if writer is None:
                    writer = pacsv.CSVWriter(sink, batch.schema)
                writer.write_batch(batch)
                rows += batch.num_rows
            if writer is None:
                sink.write((",".join(rel.columns) + "\n").encode())
            else:
                writer.close()
        else:
            for batch in _batches(rel):
                sink.writelines(json_lines(batch))
                rows += batch.num_rows
    finally:
        sink.flush()
        if out:
            sink.close()
    return rows


def print_result(rel, limit: int) -> None:
    """The first ``limit`` rows as a table, and how many rows there were."""
    from runners.console import print_table
    from runners.result_formats import cell_text, python_rows

    shown, total = [], 0
    for batch in _batches(rel):
        if len(shown) < limit:
            shown += python_rows(batch.slice(0, limit - len(shown)))
        total += batch.num_rows
    print_table("", rel.columns, ([cell_text(row[c]) for c in rel.columns] for row in shown))
    more = (
        f" (first {len(shown)} shown; --limit N or --format csv for more)" if total > limit else ""
    )
    print(f"{total:,} row{'s' if total != 1 else ''}{more}")


def query(args) -> int:
    """Run one read-only SQL statement over the datasets' views and print or write the result."""
    import duckdb

    from catalog.sql import connect, describe_failure, read_query
    from runners.options import parse_storage_options

    *datasets, sql = args.datasets_and_sql
    if not datasets:
        raise UserError('query: expected DATASET... "SQL" (at least one dataset, then the SQL)')
    fmt = args.format or ("table" if sys.stdout.isatty() and not args.out else "csv")
    if fmt == "parquet" and not args.out:
        raise UserError("--format parquet: expected --out PATH (Parquet is not for a terminal)")
    if fmt == "table" and args.out:
        raise UserError(
            "--format table: only for the terminal; use csv, json or parquet with --out"
        )
    versions = args.version
    try:
        con = connect(
            *datasets,
            version=versions[0] if versions and len(versions) == 1 else versions,
            aliases=args.alias,
            storage_options=parse_storage_options(args.storage_options),
        )
    except ValueError as exc:
        raise UserError(f"query: {exc}") from None
    try:
        try:
            rel = read_query(con, sql)
            if fmt == "table":
                print_result(rel, args.limit)
            else:
                write_result(rel, fmt, args.out)
        except duckdb.Error as exc:
            raise UserError(f"SQL: {describe_failure(exc)}") from None
        except ValueError as exc:
            raise UserError(f"SQL: {exc}") from None
    finally:
        con.close()
    return 0
