"""``ReadShards``: a dataset version as a PCollection of Arrow tables, split by row group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from catalog import Dataset
from catalog.storage import open_url
from schemas import evolve_table

__all__ = ["ReadShards", "read_row_group", "row_groups"]


def row_groups(fs, root: str, path: str) -> list[tuple[str, int]]:
    """``(path, i)`` for every row group of the file at ``root/path``."""
    with fs.open(f"{root}/{path}", "rb") as f:
        n = pq.ParquetFile(f).metadata.num_row_groups
    return [(path, i) for i in range(n)]


def read_row_group(
    fs, root: str, path: str, index: int, schema: pa.Schema, columns: Sequence[str] | None = None
) -> pa.Table:
    """Row group ``index`` of ``root/path``, with the dataset's schema (or the chosen columns);
    a column added to the kind after the file was written reads as nulls (``schemas.evolution``)."""
    with fs.open(f"{root}/{path}", "rb") as f:
        # One thread: see catalog.parquet.read_parquet (Arrow threads + Python files abort at exit).
        # A requested column the file lacks is left out by pyarrow; evolve_table fills it.
        table = pq.ParquetFile(f).read_row_group(
            index, columns=list(columns) if columns else None, use_threads=False
        )
    return evolve_table(table, schema, columns, cast=True)


class _SplitFileFn(beam.DoFn):
    def __init__(self, url, storage_options):
        self._url, self._storage_options = url, storage_options

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, path):
        yield from row_groups(self._fs, self._root, path)


class _ReadRowGroupFn(beam.DoFn):
    def __init__(self, url, storage_options, schema, columns):
        self._url, self._storage_options = url, storage_options
        self._schema, self._columns = schema, columns

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, unit):
        path, index = unit
        yield read_row_group(self._fs, self._root, path, index, self._schema, self._columns)


class ReadShards(beam.PTransform):
    """Read one version of a dataset as ``pyarrow.Table`` elements, one per row group.

    The version is pinned when the pipeline is built, so every worker reads the same files
    even if a new version is committed meanwhile. Files are split into row groups on the
    workers and redistributed, so a dataset of a few large files still reads in parallel.

    Example::

        with beam.Pipeline() as p:
            tables = p | ReadShards("s3://bucket/posts", version=3, columns=["post_id", "text"])

    Args:
        dataset: dataset URL.
        version: the version to read (default: the latest).
        columns: read only these columns (default: all, in schema order).
        storage_options: fsspec options for ``dataset``.
    """

    def __init__(
        self,
        dataset: str,
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self._storage_options = dict(storage_options or {})
        ds = Dataset.open(dataset, storage_options=self._storage_options)
        unknown = [c for c in columns or () if c not in ds.info.schema.names]
        if unknown:
            raise ValueError(
                f"columns {unknown}: not in the {ds.kind} schema; expected {ds.info.schema.names}"
            )
        self._url = dataset
        self._schema = ds.info.schema
        self._columns = list(columns) if columns else None
        self.manifest = ds.manifest(version)
        self._paths = [f.path for f in self.manifest.files] if self.manifest else []

    def expand(self, pbegin):
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._paths)
            | "SplitRowGroups" >> beam.ParDo(_SplitFileFn(self._url, self._storage_options))
            | "Redistribute" >> beam.Reshuffle()
            | "ReadRowGroups"
            >> beam.ParDo(
                _ReadRowGroupFn(self._url, self._storage_options, self._schema, self._columns)
            )
        )
