"""``WriteShards``: validate, write zstd Parquet shards and rejects, and commit once per run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam import pvalue

from catalog import CommitRequest, Dataset
from catalog.staging import (
    POSITION_COLUMNS,
    StagedPositions,
    StagedRows,
    merge_staged,
    read_staged,
    staged_rows,
    staging_dir,
    write_staged,
)
from catalog.storage import open_url
from schemas import REJECTS_SCHEMA, SourceEntry, conform_table, kind_spec, reject_table
from transforms.parquet_writer import RollingParquetWriter, WrittenFile
from transforms.partitioning import partition_dir, split_partitions, writer_bucket
from transforms.read_ahead import read_ahead
from transforms.run_report import RunReport, SumTallies, by_reason

__all__ = ["SumStats", "WriteShards", "failed_report_path", "shard_file_name"]

_MiB = 1 << 20


def failed_report_path(run_id: str) -> str:
    """Where a run that exceeded its reject rate leaves its report (relative to the root)."""
    return f"rejects/{run_id}.report.json"


def shard_file_name(run_id: str, writer: int, writers: int):
    """``name(seq)`` of the files of writer ``writer`` of ``writers`` (for RollingParquetWriter).

    Writer w of W numbers its files w, w+W, w+2W...: unique in the directory, no coordination.
    """
    return lambda seq: f"{run_id}-{seq * writers + writer:05d}.parquet"


class SumStats(beam.CombineFn):
    """Adds up dicts of numbers (pipeline statistics for the report and the manifest)."""

    def create_accumulator(self) -> dict:
        return {}

    def add_input(self, acc: dict, element: Mapping[str, float]) -> dict:
        for key, value in element.items():
            acc[key] = acc.get(key, 0) + value
        return acc

    def merge_accumulators(self, accs) -> dict:
        total: dict = {}
        for acc in accs:
            self.add_input(total, acc)
        return total

    def extract_output(self, acc: dict) -> dict:
        return dict(sorted(acc.items()))


class _WriteGroupFn(beam.DoFn):
    """Writes one group of tables (one partition x writer) as rolling Parquet files."""

    def __init__(
        self,
        url,
        storage_options,
        schema,
        run_id,
        writers,
        target,
        rg_rows,
        rg_bytes,
        sort_by,
        rejects,
    ):
        self._url = url
        self._storage_options = storage_options
        self._schema = schema
        self._run_id = run_id
        self._writers = writers
        self._target = target
        self._rg_rows = rg_rows
        self._rg_bytes = rg_bytes
        self._sort_by = sort_by
        self._rejects = rejects

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, element):
        (dt, writer), tables = element
        directory = "rejects" if self._rejects else partition_dir(dt)
        out = RollingParquetWriter(
            self._fs,
            self._root,
            directory,
            shard_file_name(self._run_id, writer, self._writers),
            self._schema,
            target_file_bytes=self._target,
            row_group_rows=self._rg_rows,
            row_group_bytes=self._rg_bytes,
            sort_by=self._sort_by,
        )
        reasons: Counter = Counter()
        staged = []
        for table in tables:  # streamed: a group's tables are never all in memory at once
            if isinstance(table, StagedRows):
                staged.append(table)
            elif isinstance(table, StagedPositions):
                staged.extend(staged_rows(self._fs, self._root, table))
            else:
                self._write(out, table, reasons)
        # One batch read ahead keeps reading beside writing (a row group's write takes longer
        # than the reads that fill it); a second held one staged batch more in every writer.
        for table in read_ahead(merge_staged(staged), self._read, depth=1):
            self._write(out, table, reasons)
        for entry in out.close():
            yield WrittenFile(entry, tuple(sorted(reasons.items())) if self._rejects else ())
            reasons = Counter()  # a group's reasons are reported once, with its first file

    def _write(self, out: RollingParquetWriter, table: pa.Table, reasons: Counter) -> None:
        if self._rejects:
            reasons.update(table.column("reason").to_pylist())
        out.write(table)

    def _read(self, staged: StagedRows) -> pa.Table:
        # Runs in read_ahead's thread, one batch ahead of the writer.
        return conform_table(read_staged(self._fs, self._root, staged), self._schema)


def _staged_writer(path: str, writers: int) -> int:
    """The writer of a staged file's rows: one for all of them (a batch is read whole)."""
    return zlib.crc32(path.encode("utf-8")) % writers


class _StagePositionsFn(beam.DoFn):
    """A table of positions of rows to write (``POSITION_COLUMNS``) ->
    ``((dt, writer), StagedPositions)`` for each writer group it has rows of, the group's
    positions staged as one record batch: the shuffle moves one reference a group, not one a
    staged batch (``StagedPositions``)."""

    def __init__(self, url, storage_options, run_id, writers):
        self._url, self._storage_options = url, storage_options
        self._run_id, self._writers = run_id, writers

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, table: pa.Table):
        if table.num_rows == 0:
            return
        writers = self._writers
        dts = pc.dictionary_encode(table.column("_dt")).combine_chunks()
        files = pc.dictionary_encode(table.column("_file")).combine_chunks()
        writer_of = np.array([_staged_writer(f, writers) for f in files.dictionary.to_pylist()])
        group = (
            dts.indices.to_numpy().astype(np.int64) * writers + writer_of[files.indices.to_numpy()]
        )
        order = np.argsort(group, kind="stable")
        parts = np.split(order, np.flatnonzero(np.diff(group[order])) + 1)
        positions = table.select(POSITION_COLUMNS)
        # Named by its first row: every staged row is kept by one table of positions only, and
        # a retry writes the same file again.
        first = "\0".join(str(positions.column(c)[0].as_py()) for c in POSITION_COLUMNS)
        name = hashlib.sha256(first.encode("utf-8")).hexdigest()[:24]
        path = f"{staging_dir(self._run_id)}/{name}.positions.arrow"
        write_staged(self._fs, self._root, path, [positions.take(part) for part in parts])
        for batch, part in enumerate(parts):
            dt, writer = divmod(int(group[part[0]]), writers)
            yield (dts.dictionary[dt].as_py(), writer), StagedPositions(path, batch)


def _as_rejects(element: Any, run_id: str) -> pa.Table:
    if isinstance(element, pa.Table | pa.RecordBatch):
        table = conform_table(element, REJECTS_SCHEMA)
        if table.column("run_id").to_pylist() != [run_id] * table.num_rows:
            ids = pa.array([run_id] * table.num_rows, pa.string())
            index = REJECTS_SCHEMA.get_field_index("run_id")
            table = table.set_column(index, REJECTS_SCHEMA.field("run_id"), ids)
        return table
    if isinstance(element, Mapping):
        return reject_table([element], run_id=run_id)
    raise TypeError(f"a reject must be a dict or an Arrow table, got {type(element).__name__}")


def _crash_for_tests(point: str) -> None:
    # Exists for the crash tests (tests/test_schedule.py): SIGKILL the whole run -- the CLI and
    # its Beam workers, in the process group `shardsmith schedule` gives each tick -- right
    # before or after its commit, as a power cut would.
    if os.environ.get("SHARDSMITH_FAULT") == point:
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _commit(*args, url, storage_options, run_id, **kwargs):
    try:
        yield from _commit_run(
            *args, url=url, storage_options=storage_options, run_id=run_id, **kwargs
        )
    finally:
        # Whatever the outcome, the run's staged rows are of no more use.
        ds = Dataset.open(url, storage_options=storage_options)
        staged = ds.path(staging_dir(run_id))
        if ds.fs.exists(staged):
            ds.fs.rm(staged, recursive=True)


def _commit_run(
    _,
    data_files,
    reject_files,
    tallies,
    removed,
    stats,
    tombstones,
    side_files,
    *,
    url,
    storage_options,
    kind,
    run_id,
    operation,
    remove,
    sources,
    config,
    properties,
    base_version,
    max_reject_rate,
    running_totals,
):
    ds = Dataset.open(url, storage_options=storage_options)
    remove = sorted({*remove, *removed})
    if remove and operation == "append":
        operation = "delete"
    report = RunReport(run_id=run_id, dataset=ds.url, kind=kind, operation=operation)
    report.records_written = tallies.get(
        "written", sum(f.entry.rows for f in data_files) - tallies.get("carried", 0)
    )
    report.records_rejected = sum(f.entry.rows for f in reject_files)
    report.deleted_by_reason = by_reason(tallies, "deleted")
    report.records_deleted = tallies.get("deleted", 0) + sum(report.deleted_by_reason.values())
    report.deduplicated_by_reason = by_reason(tallies, "deduplicated")
    report.skipped_by_reason = by_reason(tallies, "skipped")
    report.info = by_reason(tallies, "info")
    report.stats = dict(stats)
    reasons: Counter = Counter()
    for f in reject_files:
        reasons.update(dict(f.reasons))
    report.rejects_by_reason = dict(sorted(reasons.items()))
    # A writer-only pipeline (no tallies) read exactly what it wrote or rejected.
    report.records_in = tallies.get("records_in", report.accounted)
    report.files_written = len(data_files)
    report.bytes_written = sum(f.entry.bytes for f in data_files)
    report.files_removed = len(remove)
    report.reject_files = sorted(f.entry.path for f in reject_files)
    report.check_nothing_lost()

    if report.reject_rate > max_reject_rate:
        report.status = "failed"
        report.message = (
            f"{report.records_rejected} of {report.records_in} records rejected "
            f"({report.reject_rate:.2%} > --max-reject-rate {max_reject_rate:.2%}); "
            f"nothing committed"
        )
        with ds.fs.open(ds.path(failed_report_path(run_id)), "wb") as f:
            f.write(json.dumps(report.to_dict(), indent=1).encode())
        yield report.to_dict()
        return
    if not (data_files or reject_files or remove or sources or tombstones or side_files):
        report.status = "nothing-new"
        yield report.to_dict()
        return
    report.status = "committed"
    _crash_for_tests("before-commit")
    manifest = ds.commit(
        CommitRequest(
            run_id=run_id,
            operation=operation,
            add=sorted((f.entry for f in data_files), key=lambda e: e.path),
            remove=remove,
            rejects=sorted((f.entry for f in reject_files), key=lambda e: e.path),
            tombstones=sorted(tombstones, key=lambda e: e.path),
            side_files=sorted(side_files, key=lambda e: e.path),
            sources=tuple(sources),
            report=report.to_dict(),
            config=dict(config),
            properties=dict(properties),
            totals={name: stats.get(name, 0) for name in running_totals},
            base_version=base_version,
        )
    )
    _crash_for_tests("after-commit")
    report.version = manifest.version
    yield report.to_dict()


class WriteShards(beam.PTransform):
    """Write Arrow tables of one kind as a new version of a dataset: data, rejects, one commit.

    The input is a PCollection of ``pyarrow.Table``/``RecordBatch`` of the dataset's kind, or a
    dict of PCollections: ``{"data": tables, "rejects": rejects, "tallies": tallies, "remove":
    paths}`` where rejects are dicts or tables with the columns of ``schemas.REJECTS_SCHEMA``,
    tallies are ``transforms.tally(...)`` dicts and ``remove`` holds live files (paths relative
    to the root) that the run replaces -- found while it runs, e.g. files rewritten without
    deleted posts; an ``append`` that removes files is committed as a ``delete``. ``files`` are
    ``WrittenFile`` s a step wrote itself (named with ``shard_file_name``: tokens shards, whose
    row order is the content); ``staged`` are ``catalog.staging.StagedRows``: rows a step left
    in the run's staging area, read by the writer itself (the staging area is removed when the
    run ends); ``positions`` are tables of where such rows are (``POSITION_COLUMNS`` of
    ``catalog.staging``), for rows scattered over many staged batches, staged again
    by writer so that one reference a writer crosses the shuffle; ``stats`` are dicts of
    numbers, summed into the report's ``stats``; ``tombstones`` are ``FileEntry`` s of
    ``tombstones/`` files the run wrote (posts: the compliance state it changed), listed by the
    version with its number; ``side_files`` are ``FileEntry`` s of ``minhash/`` and
    ``near_duplicates/`` files (``--dedup-near``), listed the same way. Every table is checked
    against the kind's schema (a mismatch fails the run, naming the column). Rows are split
    into hive ``dt=`` partitions when the kind has one, written as zstd Parquet files of about
    ``target_file_bytes`` named ``<run_id>-<nnnnn>.parquet``, and committed as one manifest
    version once everything is written. The output is a PCollection holding the run report as
    one dict (``status`` ``committed``, ``nothing-new`` or ``failed``).

    Example::

        with beam.Pipeline() as p:
            tables = p | beam.Create([posts_table])
            tables | WriteShards("/data/posts", "posts", run_id=new_run_id())

    Args:
        dataset: dataset URL (created if absent).
        kind: ``posts``, ``clips`` or ``tokens``.
        run_id: the run's id (``catalog.new_run_id()``); in every file name and the manifest.
        storage_options: fsspec options for ``dataset`` (never stored).
        operation: ``append`` (default), ``overwrite`` or ``delete`` (with ``remove``).
        remove: live files this run replaces (``delete``).
        sources: the sources this run consumed, recorded for incremental runs.
        config: the run's options, stored in the manifest with their hash (no credentials).
        properties: kind-specific manifest facts (tokens: tokenizer, seq_len, ...).
        running_totals: stats whose dataset-wide totals the manifest keeps in ``properties``
            as ``total_<name>`` (each version adds its run's to its parent's).
        base_version: the version the run read (default: latest at construction).
        target_file_bytes: close a data file once it reaches this size (default 256 MiB).
        writers_per_partition: parallel writers per ``dt`` partition (default 1), each with
            row groups of 1/N of the kind's ``row_group_bytes``, so that memory stays the same.
        max_reject_rate: fail without committing above this fraction of rejects (default 0.01).
    """

    def __init__(
        self,
        dataset: str,
        kind: str,
        *,
        run_id: str,
        storage_options: Mapping[str, Any] | None = None,
        operation: str = "append",
        remove: Sequence[str] = (),
        sources: Sequence[SourceEntry] = (),
        config: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        base_version: int | None = None,
        target_file_bytes: int = 256 * _MiB,
        writers_per_partition: int = 1,
        max_reject_rate: float = 0.01,
        running_totals: Sequence[str] = (),
    ):
        super().__init__()
        self._spec = kind_spec(kind)
        if operation not in ("append", "overwrite", "delete"):
            raise ValueError(f"operation={operation!r}: expected append, overwrite or delete")
        if target_file_bytes < 1:
            raise ValueError(f"target_file_bytes={target_file_bytes}: expected a positive size")
        if writers_per_partition < 1:
            raise ValueError(f"writers_per_partition={writers_per_partition}: expected >= 1")
        if not 0 <= max_reject_rate <= 1:
            raise ValueError(f"max_reject_rate={max_reject_rate}: expected a fraction in [0, 1]")
        self._url = dataset
        self._run_id = run_id
        self._storage_options = dict(storage_options or {})
        self._operation = operation
        self._remove = tuple(remove)
        self._sources = tuple(sources)
        self._config = dict(config or {})
        self._properties = dict(properties or {})
        self._target = target_file_bytes
        self._writers = writers_per_partition
        self._max_reject_rate = max_reject_rate
        self._running_totals = tuple(running_totals)
        # Created (or checked) now, on the machine that builds the pipeline: a wrong kind fails
        # before any worker starts.
        ds = Dataset.create(dataset, self._spec, storage_options=self._storage_options)
        self._base_version = ds.latest_version() if base_version is None else base_version

    def expand(self, inputs):
        if isinstance(inputs, pvalue.PCollection):
            inputs = {"data": inputs}
        known = (
            "data",
            "staged",
            "positions",
            "files",
            "rejects",
            "tallies",
            "remove",
            "stats",
            "tombstones",
            "side_files",
        )
        unknown = set(inputs) - set(known)
        if unknown or not ({"data", "staged", "positions", "files"} & set(inputs)):
            raise ValueError(
                f"WriteShards inputs {sorted(inputs)}: expected data, staged, positions and/or "
                f"files, and any of {', '.join(known[4:])}"
            )
        p = next(iter(inputs.values())).pipeline

        def empty(name):
            return inputs[name] if name in inputs else p | f"No{name.title()}" >> beam.Create([])

        spec, writers = self._spec, self._writers

        def keyed(table):
            table = conform_table(table, spec)
            for dt, rows in split_partitions(table, spec):
                yield (dt, writer_bucket(rows, spec.key, writers)), rows

        common = dict(
            url=self._url,
            storage_options=self._storage_options,
            run_id=self._run_id,
            target=self._target,
        )

        def staged_key(rows: StagedRows):
            return (rows.dt, _staged_writer(rows.path, writers)), rows

        data_files = (
            (
                empty("data") | "ConformAndPartition" >> beam.FlatMap(keyed),
                empty("staged") | "StagedPartition" >> beam.Map(staged_key),
                empty("positions")
                | "StagePositions"
                >> beam.ParDo(
                    _StagePositionsFn(self._url, self._storage_options, self._run_id, writers)
                ),
            )
            | "AllData" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteData"
            >> beam.ParDo(
                _WriteGroupFn(
                    schema=spec.schema,
                    writers=self._writers,
                    rg_rows=spec.row_group_rows,
                    # A day's writers run at once: together they hold one row group's worth.
                    rg_bytes=spec.row_group_bytes // writers,
                    sort_by=spec.sort_by,
                    rejects=False,
                    **common,
                )
            )
        )
        if "files" in inputs:
            data_files = (data_files, inputs["files"]) | "AllDataFiles" >> beam.Flatten()
        run_id = self._run_id
        reject_files = (
            empty("rejects")
            | "AsRejectTables" >> beam.Map(lambda r: (("", 0), _as_rejects(r, run_id)))
            | "GroupRejects" >> beam.GroupByKey()
            | "WriteRejects"
            >> beam.ParDo(
                _WriteGroupFn(
                    schema=REJECTS_SCHEMA,
                    writers=1,
                    rg_rows=100_000,
                    rg_bytes=64 * _MiB,
                    sort_by=(),
                    rejects=True,
                    **common,
                )
            )
        )
        total = empty("tallies") | "SumTallies" >> beam.CombineGlobally(SumTallies())
        stats = empty("stats") | "SumStats" >> beam.CombineGlobally(SumStats())
        return (
            p
            | "CommitTrigger" >> beam.Create([None])
            | "Commit"
            >> beam.FlatMap(
                _commit,
                beam.pvalue.AsList(data_files),
                beam.pvalue.AsList(reject_files),
                beam.pvalue.AsSingleton(total),
                beam.pvalue.AsList(empty("remove")),
                beam.pvalue.AsSingleton(stats),
                beam.pvalue.AsList(empty("tombstones")),
                beam.pvalue.AsList(empty("side_files")),
                url=self._url,
                storage_options=self._storage_options,
                kind=spec.name,
                run_id=self._run_id,
                operation=self._operation,
                remove=self._remove,
                sources=self._sources,
                config=self._config,
                properties=self._properties,
                base_version=self._base_version,
                max_reject_rate=self._max_reject_rate,
                running_totals=self._running_totals,
            )
        )
