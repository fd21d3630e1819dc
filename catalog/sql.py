"""SQL over dataset versions with DuckDB: one read-only view per dataset, over exactly the files
of the requested version (DESIGN.md §2, §6).

A view is ``read_parquet([every file of the version])`` -- never a glob -- so files being
written, left by a crash, or collected are never visible. Remote datasets are read through
their fsspec filesystem registered with DuckDB, so credentials stay in the storage options and
never appear in SQL, logs or errors.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from catalog.dataset import Dataset
from catalog.sql_evolution import view_select
from catalog.storage import is_local, protocol, to_url
from catalog.tombstones import create_tombstone_view, empty_tombstones, tombstone_view

__all__ = ["ViewSpec", "connect", "describe_failure", "read_query", "view_specs"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ViewSpec:
    """One dataset as a view: its ``name``, the ``Dataset``, the pinned ``version`` and the
    full URLs of its files."""

    def __init__(self, name: str, ds: Dataset, version: int, urls: list[str]):
        self.name, self.ds, self.version, self.urls = name, ds, version, urls


def _versions(version, n: int) -> list[int | None]:
    if version is None or isinstance(version, int):
        if isinstance(version, int) and n > 1:
            raise ValueError(
                f"version={version}: ambiguous with {n} datasets; give one version per dataset"
            )
        return [version] * n
    versions = list(version)
    if len(versions) != n:
        raise ValueError(f"version: {len(versions)} versions given for {n} datasets")
    return versions


def _names(datasets: list[Dataset], aliases) -> list[str]:
    if aliases is None:
        names = [ds.kind for ds in datasets]
    elif isinstance(aliases, Mapping):
        names = [aliases.get(ds.url, ds.kind) for ds in datasets]
    else:
        names = list(aliases)
        if len(names) != len(datasets):
            raise ValueError(f"aliases: {len(names)} names given for {len(datasets)} datasets")
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"view name {name!r}: expected letters, digits and _")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"two datasets would both be the view {repeated[0]!r}; name them apart "
            f"(aliases / --as NAME)"
        )
    return names


def view_specs(
    datasets: Sequence[str | Dataset],
    *,
    version: int | Sequence[int | None] | None = None,
    aliases: Sequence[str] | Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[ViewSpec]:
    """Open the datasets and pin their versions (latest by default)."""
    if not datasets:
        raise ValueError("expected at least one dataset")
    opened = [
        d if isinstance(d, Dataset) else Dataset.open(d, storage_options=storage_options)
        for d in datasets
    ]
    specs = []
    for ds, name, v in zip(
        opened, _names(opened, aliases), _versions(version, len(opened)), strict=True
    ):
        pinned = ds.latest_version() if v is None else v
        if pinned:
            ds.manifest(pinned)  # DatasetError naming the versions there are
        urls = [to_url(ds.fs, ds.path(f.path)) for f in ds.files(pinned)] if pinned else []
        specs.append(ViewSpec(name, ds, pinned, urls))
    return specs


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _register_filesystems(con: duckdb.DuckDBPyConnection, specs: list[ViewSpec]) -> None:
    # The fsspec filesystem objects carry the storage options: DuckDB reads through them, and
    # no credential is ever written into SQL.
    registered = set()
    for spec in specs:
        if not is_local(spec.ds.fs) and protocol(spec.ds.fs) not in registered:
            con.register_filesystem(spec.ds.fs)
            registered.add(protocol(spec.ds.fs))


def connect(
    *datasets: str | Dataset,
    version: int | Sequence[int | None] | None = None,
    aliases: Sequence[str] | Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    helpers: bool = True,
) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection with one view per dataset.

    Each view is named after its dataset's kind (``posts``, ``clips``, ``tokens``) or its alias,
    and reads exactly the files of the pinned version, with the ``dt`` partition column of
    partitioned kinds. A posts view comes with a ``tombstones`` view (``<alias>_tombstones``
    for an alias): the compliance log of that version (``catalog.tombstones``). The database is read-only: ``CREATE``/``INSERT``/``DROP`` fail with
    DuckDB's error. With ``helpers``, SQL functions are registered: ``detokenize(input_ids)``
    (the tokenizer recorded in a tokens dataset's manifest), ``jpeg_width(frame)`` /
    ``jpeg_height(frame)``. Close the connection when done.

    Example::

        con = connect("s3://bucket/posts", storage_options={...})
        con.sql("SELECT lang, count(*) FROM posts GROUP BY ALL ORDER BY 2 DESC").show()

    Args:
        datasets: dataset URLs or open ``Dataset`` s.
        version: a version for a single dataset, or one per dataset (None: latest).
        aliases: view names, one per dataset (or ``{url: name}``).
        storage_options: fsspec options for dataset URLs (never stored or shown).
        helpers: register the SQL helper functions.
    """
    specs = view_specs(datasets, version=version, aliases=aliases, storage_options=storage_options)
    con = duckdb.connect()
    _register_filesystems(con, specs)
    # The views live in a throwaway database file, attached read-only once they are made: the
    # one way DuckDB refuses every write to the catalog the queries run in.
    tmp = tempfile.mkdtemp(prefix="shardsmith-sql-")
    try:
        db = _sql_string(os.path.join(tmp, "views.duckdb"))
        con.execute(f"ATTACH {db} AS views_setup")
        for spec in specs:
            if spec.urls:
                files = "[" + ", ".join(_sql_string(u) for u in spec.urls) + "]"
                select = view_select(con, spec.ds, files)
                con.execute(f'CREATE VIEW views_setup."{spec.name}" AS {select}')
        tombstone_views = _tombstone_views(con, specs)
        con.execute("DETACH views_setup")
        con.execute(f"ATTACH {db} AS datasets (READ_ONLY)")
        con.execute("USE datasets")
    except BaseException:
        con.close()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # DuckDB keeps the open file; Linux frees it later
    for spec in specs:
        if not spec.urls:
            # An empty version is an empty view with the kind's columns.
            con.register(spec.name, spec.ds.info.schema.empty_table())
    for name in tombstone_views.get(None, []):
        con.register(name, empty_tombstones())
    if helpers:
        from catalog.sql_helpers import register_helpers

        register_helpers(con, specs)
    return con


def _tombstone_views(con: duckdb.DuckDBPyConnection, specs: list[ViewSpec]) -> dict:
    """A tombstones view beside every posts view (``catalog.tombstones``), unless a dataset
    view already has its name; ``{None: names}`` of those to register empty."""
    taken = {spec.name for spec in specs}
    empty = []
    for spec in specs:
        if spec.ds.kind != "posts" or tombstone_view(spec.name) in taken:
            continue
        if create_tombstone_view(con, spec, "views_setup") is None:
            empty.append(tombstone_view(spec.name))
    return {None: empty}


def describe_failure(exc: duckdb.Error) -> str:
    """DuckDB's message as one line (what a user needs to fix the query)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


_READ_STATEMENTS = {"SELECT", "EXPLAIN"}


def read_query(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation:
    """The result of one read-only statement (``SELECT``, ``WITH ... SELECT``, ``EXPLAIN``).

    Anything else (``COPY``, ``CREATE``, ``ATTACH``, ``SET``, several statements) raises
    ``ValueError`` saying what was found: queries never write, and never change the connection.
    """
    statements = con.extract_statements(sql)
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, found {len(statements)}")
    kind = statements[0].type.name
    if kind not in _READ_STATEMENTS:
        raise ValueError(
            f"a {kind} statement: queries are read-only (SELECT or EXPLAIN); to save a result "
            f"use --format csv|json|parquet --out PATH"
        )
    return con.sql(sql)
