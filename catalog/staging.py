"""A run's staging area: rows parsed by the run, kept in files until they are written.

A pipeline that shuffles posts only needs a few key columns of each row to decide which rows
survive; the rows themselves only have to reach the writer. Moving them through Beam's data
plane costs a serialization, a copy into the runner (which holds every shuffled byte in
memory on the local runner) and another copy out, twice per run. Instead a worker writes the
rows once to ``_staging/<run_id>/`` inside the dataset and Beam moves references to them
(``StagedRows``: a file, a record batch, row numbers) -- a few bytes per row. The dataset URL
is reachable from every worker on every runner, so the staging area is too.

Staged files are Arrow IPC files (LZ4), one record batch per group the reader will ask for
(a bucket of keys, a ``dt`` partition of rows), so a reader reads only its batch. The commit
step removes the run's staging area; ``gc`` removes what a crashed run left there.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fsspec import AbstractFileSystem

from catalog.storage import is_local, join

__all__ = [
    "POSITION_COLUMNS",
    "STAGING_DIR",
    "StagedPositions",
    "StagedRows",
    "merge_staged",
    "read_staged",
    "rows_at",
    "staged_batches",
    "staged_rows",
    "staging_dir",
    "write_staged",
]

STAGING_DIR = "_staging"
# Single-threaded: a worker writes and reads its batches one at a time, and Arrow's I/O thread
# pool only added hand-offs (a footer read took 0.19 ms through it, 0.05 ms without; writing a
# file of keys 5.1 ms, 1.5 ms without). Beam's workers are the parallelism.
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)
_PLAIN = pa.ipc.IpcWriteOptions(use_threads=False)
_READ = pa.ipc.IpcReadOptions(use_threads=False)
# The columns of a table of positions: each row names one staged row (file, record batch, row)
# and its ``dt`` partition.
POSITION_COLUMNS = ("_file", "_batch", "_row", "_dt")


def staging_dir(run_id: str) -> str:
    """The staging area of ``run_id``, relative to the dataset root."""
    return f"{STAGING_DIR}/{run_id}"


@dataclass(frozen=True)
class StagedRows:
    """Rows of one record batch of a staged file.

    Args:
        path: the staged file, relative to the dataset root.
        batch: the record batch's index in the file.
        rows: row numbers within the batch, ascending (``None``: every row).
        dt: the ``dt`` partition the rows belong to (``""`` when not partitioned).
    """

    path: str
    batch: int
    rows: np.ndarray | None = None
    dt: str = ""

    def __reduce__(self):
        # Beam moves references between steps as pickles, and the local runner holds every
        # shuffled one in memory: as int64s, the row numbers of the rows a 1 M-line run writes
        # were 8 MB there. Packed, they take 1-2 bytes a row.
        return (_unpack, (self.path, self.batch, _pack_rows(self.rows), self.dt))


@dataclass(frozen=True)
class StagedPositions:
    """Where rows to write are staged, itself staged: record batch ``batch`` of ``path`` is a
    table of ``POSITION_COLUMNS``, one row per staged row (``staged_rows`` reads it).

    The rows a run keeps are scattered over every chunk it staged, and a reference per chunk
    and group of keys (``StagedRows``) grows as chunks times groups, both growing with the
    input: on the local runner, which holds every shuffled reference, that was 30 MiB more in
    its process at 1 M lines. A group's positions cross the shuffle as one such reference.
    """

    path: str
    batch: int


def rows_at(positions: pa.Table) -> list[StagedRows]:
    """A table of positions (``POSITION_COLUMNS``) -> one ``StagedRows`` per staged record
    batch it names, with its rows in ascending order."""
    rows = positions.column("_row").to_numpy()
    dts = positions.column("_dt")
    return [
        StagedRows(path, batch, np.sort(rows[group]), dts[int(group[0])].as_py())
        for path, batch, group in staged_batches(
            positions.column("_file"), positions.column("_batch").to_numpy()
        )
    ]


def staged_rows(fs: AbstractFileSystem, root: str, positions: StagedPositions) -> list[StagedRows]:
    """The rows the staged ``positions`` name (``rows_at``)."""
    return rows_at(read_staged(fs, root, StagedRows(positions.path, positions.batch)))


def _pack_rows(rows: np.ndarray | None):
    """Row numbers in their smallest form: ``(span, bitmap of span rows)`` when they are dense
    (and ascending and distinct, all a bitmap can say), else in the smallest unsigned type."""
    if rows is None or len(rows) == 0 or rows.min() < 0:
        return rows
    span = int(rows.max()) + 1
    if span < 16 * len(rows) and np.all(rows[1:] > rows[:-1]):  # under 2 bytes a row
        mask = np.zeros(span, np.bool_)
        mask[rows] = True
        return span, np.packbits(mask).tobytes()
    return rows.astype(np.min_scalar_type(span))


def _unpack(path: str, batch: int, rows, dt: str) -> StagedRows:
    if isinstance(rows, tuple):
        span, bits = rows
        rows = np.flatnonzero(np.unpackbits(np.frombuffer(bits, np.uint8), count=span))
    elif rows is not None:
        rows = rows.astype(np.int64)
    return StagedRows(path, batch, rows, dt)


def write_staged(
    fs: AbstractFileSystem,
    root: str,
    path: str,
    tables: Sequence[pa.Table],
    *,
    compress: bool = True,
) -> list[int]:
    """Write ``tables`` (one schema) to ``path`` as one record batch each; returns the row counts.
    ``compress=False`` for columns LZ4 cannot shrink (hashes): it would only cost time.

    Rewriting a file with the same tables (a retried bundle) gives the same file.
    """
    schema = tables[0].schema
    full = join(root, path)
    fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
    # A step may run again while another reads its file (Dask recomputes a shared step for
    # each branch that uses it): on local disk, write aside and rename, which is atomic, so a
    # reader never sees half a file. Object stores publish an object whole when it is closed.
    target = f"{full}.{uuid.uuid4().hex}.tmp" if is_local(fs) else full
    options = _OPTIONS if compress else _PLAIN
    with fs.open(target, "wb") as f, pa.ipc.new_file(f, schema, options=options) as writer:
        for table in tables:
            batch = table.combine_chunks().to_batches()
            writer.write_batch(batch[0] if batch else pa.RecordBatch.from_pylist([], schema))
    if target != full:
        os.replace(target, full)
    return [t.num_rows for t in tables]


def merge_staged(refs: Iterable[StagedRows]) -> list[StagedRows]:
    """``refs`` with the references to one record batch made one, in order of file and batch.

    References come from many groups (each bucket of a resolve names the rows it keeps of every
    chunk), and a record batch is read and decompressed whole: merged, each is read once, not
    once per group -- at 1M lines that was 24 reads of every staged batch.
    """
    by_batch: dict[tuple[str, int], list[StagedRows]] = defaultdict(list)
    for ref in refs:
        by_batch[(ref.path, ref.batch)].append(ref)
    merged = []
    for (path, batch), same in sorted(by_batch.items()):
        if any(ref.rows is None for ref in same):
            rows = None
        else:
            rows = np.sort(np.concatenate([ref.rows for ref in same]))
        merged.append(StagedRows(path, batch, rows, same[0].dt))
    return merged


def staged_batches(
    files: pa.ChunkedArray | pa.Array, batches: np.ndarray
) -> Iterator[tuple[str, int, np.ndarray]]:
    """``(file, batch, positions)`` for each staged record batch that rows name: ``files`` (the
    staged file of each row) and ``batches`` (its record batch there); ``positions`` are the
    rows' positions, ascending."""
    if not len(batches):
        return
    encoded = pc.dictionary_encode(files).combine_chunks()
    where = (encoded.indices.to_numpy().astype(np.int64) << 32) | np.asarray(batches, np.int64)
    order = np.argsort(where, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(where[order])) + 1):
        first = int(group[0])
        path = encoded.dictionary[encoded.indices[first].as_py()].as_py()
        yield path, int(where[first] & 0xFFFFFFFF), group


def read_staged(fs: AbstractFileSystem, root: str, staged: StagedRows) -> pa.Table:
    """The rows ``staged`` refers to, as a table."""
    path = join(root, staged.path)
    if is_local(fs):
        # Mapped: an uncompressed batch (signatures, near-dup keys) is used where the page
        # cache holds it, not copied into fresh memory first -- at 1 M lines with --dedup-near
        # those copies were ~1 M page faults. Read as one buffer: through the mapped file
        # Arrow reads the footer on its I/O thread pool, four times slower.
        source = pa.memory_map(path).read_buffer()
        batch = pa.ipc.open_file(source, options=_READ).get_batch(staged.batch)
    else:
        with fs.open(path, "rb") as f:
            batch = pa.ipc.open_file(f, options=_READ).get_batch(staged.batch)
    table = pa.Table.from_batches([batch])
    if staged.rows is not None and len(staged.rows) != table.num_rows:
        table = table.take(pa.array(staged.rows))
    return table
