"""``RepackFiles``: live ``tokens`` files rewritten without removed documents (compliance)."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from catalog.parquet import read_parquet
from catalog.storage import open_url
from schemas import TOKENS, conform_table
from transforms.parquet_writer import WrittenFile
from transforms.tokenize.pack_shards import tokens_writer
from transforms.tokenize.repack import RepackOptions, repack_without

__all__ = ["RepackFiles", "RepackedFile"]


@dataclass
class RepackedFile:
    """One rewritten file: the ``files`` written in its place (none if no example is left),
    the ``path`` it replaces, a run-report ``tally`` and ``stats`` (negative running totals)."""

    path: str
    files: list[WrittenFile] = field(default_factory=list)
    tally: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


class _RepackFn(beam.DoFn):
    def __init__(self, url, storage_options, run_id, files, removed, opts, target):
        self._url, self._storage_options, self._run_id = url, storage_options, run_id
        self._files, self._removed, self._opts, self._target = files, removed, opts, target

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, element):
        index, path = element
        table = conform_table(read_parquet(self._fs, f"{self._root}/{path}"), TOKENS)
        out = repack_without(table, self._removed, self._opts)
        written = []
        if out.table.num_rows:
            # Named like a tokenize run's shards: writer ``index`` of ``files``, unique per run.
            writer = tokens_writer(
                self._fs, self._root, self._run_id, index, self._files, self._target
            )
            writer.write(out.table)
            written = [WrittenFile(e, ()) for e in writer.close()]
        c = out.counts
        kept = c["examples_in"] - c.get("examples_removed", 0)
        tally = {
            "records_in": c["examples_in"],
            "written": kept,
            "carried": 0,
            "deleted:compliance": c.get("examples_removed", 0),
            "info:examples_repacked": c.get("examples_repacked", 0),
            "info:spans_removed": c.get("spans_removed", 0),
            "info:tokens_removed": c.get("tokens_removed", 0),
        }
        stats = {"tokens": -c.get("tokens_removed", 0), "examples": -c.get("examples_removed", 0)}
        yield RepackedFile(path, written, {k: v for k, v in tally.items() if v}, stats)


class RepackFiles(beam.PTransform):
    """``(index, path)`` of live ``tokens`` files -> one ``RepackedFile`` each: the file's
    examples without the documents ``removed`` (dataset label -> ids), re-packed
    (``transforms.tokenize.repack``) and written as new files of run ``run_id``. The old files
    are removed by the run's commit (``WriteShards(remove=...)``), never modified.

    Example::

        repacked = p | beam.Create(list(enumerate(paths))) | RepackFiles(
            "/data/tokens", run_id=run_id, files=len(paths), removed={"/data/posts": {"17"}},
            opts=RepackOptions(seed=0, seq_len=2048, mode="concat"))

    Args:
        dataset: the ``tokens`` dataset URL.
        run_id: the run's id (in the names of the files written).
        files: how many files the run rewrites (indexes are below it; names stay unique).
        removed: document ids to remove, by the dataset label in ``sources``.
        opts: the dataset's seed, seq_len and pack mode.
        storage_options: fsspec options for ``dataset``.
        target_file_bytes: roll to a new file past this size.
    """

    def __init__(
        self,
        dataset: str,
        *,
        run_id: str,
        files: int,
        removed: Mapping[str, Set[str]],
        opts: RepackOptions,
        storage_options: Mapping[str, Any] | None = None,
        target_file_bytes: int = 256 << 20,
    ):
        super().__init__()
        if files < 1:
            raise ValueError(f"files={files}: expected >= 1")
        removed = {label: frozenset(ids) for label, ids in removed.items()}
        self._fn = _RepackFn(
            dataset,
            dict(storage_options or {}),
            run_id,
            files,
            removed,
            opts,
            target_file_bytes,
        )

    def expand(self, paths):
        return paths | "Repack" >> beam.ParDo(self._fn)
