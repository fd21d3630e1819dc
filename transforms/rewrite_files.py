"""``RewriteWithout``: committed files rewritten without some of their rows (compliance deletes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from catalog.parquet import read_parquet
from catalog.storage import open_url
from schemas import conform_table, kind_spec

__all__ = ["RewriteWithout", "RewrittenFile"]


@dataclass
class RewrittenFile:
    """A live file to replace: the rows it keeps (written anew by the run) and how many went."""

    path: str
    kept: pa.Table
    removed: int


class _RewriteFn(beam.DoFn):
    def __init__(self, url, storage_options, kind, amend):
        self._url, self._storage_options, self._kind = url, storage_options, kind
        self._amend = amend

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)
        self._spec = kind_spec(self._kind)

    def process(self, element, *amend_with):
        path, keys = element
        doomed = pa.array(sorted({k for k in keys if k is not None}), pa.string())
        # A file written before the kind gained columns is rewritten with them (as nulls).
        table = conform_table(
            read_parquet(self._fs, f"{self._root}/{path}", schema=self._spec.schema), self._spec
        )
        gone = pc.is_in(table.column(self._spec.key), value_set=doomed)
        kept = table.filter(pc.invert(gone))
        if self._amend is not None:
            kept = self._amend(kept, *amend_with)
        yield RewrittenFile(path, kept, table.num_rows - kept.num_rows)


class RewriteWithout(beam.PTransform):
    """``(path, key)`` pairs -> one ``RewrittenFile`` per path, without the rows of those keys.

    The new rows are written by the run as new files and the old files removed in its commit:
    committed files are never modified in place, so older versions stay readable.

    With ``amend``, every rewritten file's kept rows also go through ``amend(rows, *side)``
    (``side``: the values of ``amend_with``, Beam side inputs such as ``AsSingleton(p)``), and
    a ``(path, None)`` pair rewrites a file only to amend it (compliance marks).
    """

    def __init__(
        self,
        dataset: str,
        kind: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        amend: Callable[..., pa.Table] | None = None,
        amend_with: Sequence[Any] = (),
    ):
        super().__init__()
        self._fn = _RewriteFn(dataset, dict(storage_options or {}), kind_spec(kind).name, amend)
        self._amend_with = tuple(amend_with)

    def expand(self, pairs):
        return (
            pairs
            | "GroupByFile" >> beam.GroupByKey()
            | "Rewrite" >> beam.ParDo(self._fn, *self._amend_with)
        )
