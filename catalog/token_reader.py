"""``TokenReader``: training batches from a ``tokens`` dataset, deterministic, sharded and resumable.

One epoch is one global stream of every example of a pinned version. Its order depends only on
(seed, epoch): the units of the stream are the row groups of the version's files (sorted by path),
and with ``shuffle`` their order is permuted by a generator seeded from ``(seed, epoch)`` and the
rows inside unit ``u`` by a generator seeded from ``(seed, epoch, u + 1)``. Rank ``r`` of ``W``
takes the contiguous slice ``[r*N//W, (r+1)*N//W)`` of that stream, so every machine computes the
same split without talking to the others and each rank reads only the row groups its slice
touches. Only the row group being read is held in memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.dataset import Dataset, DatasetError
from catalog.expiry import expired_message, latest_record
from catalog.storage import join

__all__ = ["TokenReader"]

_COLUMNS = ["example_id", "input_ids", "doc_lens", "media"]
_PACKS = ("concat", "pad")
_STATE_KEYS = (
    "version",
    "seed",
    "shuffle",
    "epoch",
    "rank",
    "world_size",
    "batch_size",
    "next_batch",
)
_MUST_MATCH = ("version", "seed", "shuffle", "rank", "world_size", "batch_size")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}")
    return int(value)


def _list_parts(arr: pa.ListArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, starts, lengths) of a list<int32> array, as numpy (nulls count as empty)."""
    lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return values, starts, lengths


@dataclass
class _Unit:
    """One row group in memory, columns unpacked; ``order`` is its rows in epoch order."""

    index: int
    where: str
    order: np.ndarray
    example_id: list[str]
    ids: tuple[np.ndarray, np.ndarray, np.ndarray]
    doc_lens: tuple[np.ndarray, np.ndarray, np.ndarray]
    media: pa.ListArray | None


class TokenReader:
    """Batches of one version of a ``tokens`` dataset for one rank, in a seeded epoch order.

    Every (seed, epoch) gives one order of all N examples, the same on every machine; rank ``r``
    of ``world_size`` reads the contiguous slice ``[r*N//W, (r+1)*N//W)`` of it, so together the
    ranks read every example exactly once. Each batch is a dict:

    * ``input_ids``: int32 ``[b, seq_len]``; examples shorter than ``seq_len`` (the last one of a
      shard file in ``concat`` mode) are padded with the tokenizer's pad id;
    * ``attention_mask``: uint8 ``[b, seq_len]``, 1 for real tokens;
    * ``lengths``: int32 ``[b]``, real tokens per example (``concat``: the stored tokens;
      ``pad``: the sum of ``doc_lens``, so pad tokens stored by the packer are not counted);
    * ``doc_lens``: list of int32 arrays; ``example_id``: list of str;
    * ``batch_index``: the batch's index in this rank's epoch;
    * ``media`` (only when an example of the batch has media): per example, a list of
      ``{"kind": str, "patches": uint8 array of the stored shape}``.

    The position is a small JSON-able dict (``state_dict``/``load_state_dict``), so a job
    resumes exactly where it stopped. The reader pickles to plain data (files are opened
    lazily in each process), for ``TokenIterableDataset`` and DataLoader workers.

    Example::

        reader = TokenReader("s3://bucket/tokens", batch_size=8, rank=rank, world_size=world,
                             seed=1234, storage_options={"anon": False})
        for epoch in range(3):
            reader.set_epoch(epoch)
            for batch in reader:
                train_step(batch["input_ids"], batch["attention_mask"])
                checkpoint["reader"] = reader.state_dict()

    Args:
        dataset: the dataset's URL, or an open ``Dataset``.
        batch_size: examples per batch (>= 1); the last batch of a rank may be smaller.
        rank / world_size: this reader's share of every epoch (0 <= rank < world_size).
        seed / epoch: the epoch order (integers >= 0); ``set_epoch`` starts another epoch.
        version: the version to read (default: the latest when the reader is made). A version
            ``gc`` expired (before or while reading) is a ``DatasetError`` naming the oldest
            live one.
        shuffle: False reads files in path order and rows in file order.
        drop_last: every rank reads the same number of full batches (``N // world_size``
            examples each, the last partial batch dropped), so distributed steps stay in
            lockstep; without it ranks cover every example and may differ by one batch.
        storage_options: fsspec options for ``dataset`` when it is a URL.
    """

    def __init__(
        self,
        dataset: str | Dataset,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        epoch: int = 0,
        version: int | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ):
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.world_size = _check_int("world_size", world_size, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.world_size:
            raise ValueError(f"rank={rank!r}: expected 0 <= rank < world_size={world_size}")
        self.seed = _check_int("seed", seed, 0)
        epoch = _check_int("epoch", epoch, 0)
        if version is not None:
            version = _check_int("version", version, 1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)

        if isinstance(dataset, Dataset):
            if storage_options is not None:
                raise ValueError(
                    "storage_options: only for a dataset given as a URL, not an open Dataset"
                )
            ds = dataset
        else:
            ds = Dataset.open(dataset, storage_options=storage_options)
        if ds.kind != "tokens":
            raise DatasetError(
                f"{ds.url}: is a {ds.kind} dataset; TokenReader reads tokens datasets"
            )
        manifest = ds.manifest(version)
        if manifest is None:
            raise DatasetError(f"{ds.url}: no committed version to read")
        self.version = manifest.version
        self.url = ds.url
        where = f"{ds.url} version {self.version}"
        self.properties = dict(manifest.properties)
        self.seq_len, self.pack, self.pad_id = _token_properties(self.properties, where)

        self._fs = ds.fs
        self._root = ds.root
        self._footers: dict[str, pq.FileMetaData] = {}
        units: list[tuple[str, int, int]] = []
        for entry in sorted(manifest.files, key=lambda e: e.path):
            meta = self._footer(entry.path)
            sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            if sum(sizes) != entry.rows:
                raise DatasetError(
                    f"{where}: {entry.path} holds {sum(sizes)} rows, the manifest says {entry.rows}"
                )
            units += [(entry.path, i, n) for i, n in enumerate(sizes) if n]
        # (file path, row group, rows) in path order: plain data, so the reader pickles.
        self._units = units
        self.num_examples = sum(n for _, _, n in units)
        total = self.num_examples
        if self.drop_last:
            share = total // self.world_size
            self._begin, self._end = self.rank * share, (self.rank + 1) * share
        else:
            self._begin = self.rank * total // self.world_size
            self._end = (self.rank + 1) * total // self.world_size
        self._file: tuple[int, str, Any, pq.ParquetFile] | None = None
        self._unit: _Unit | None = None
        self._set_epoch(epoch)

    # -- the epoch and the position ------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def next_batch(self) -> int:
        """How many batches of this epoch were already yielded (the index of the next one)."""
        return self._next_batch

    def __len__(self) -> int:
        """Batches of this rank per epoch."""
        rows = self._end - self._begin
        return rows // self.batch_size if self.drop_last else math.ceil(rows / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (its own order) at its first batch."""
        self._set_epoch(_check_int("epoch", epoch, 0))

    def _set_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self._next_batch = 0
        self._unit = None  # the rows' order inside a unit depends on the epoch
        order = np.arange(len(self._units), dtype=np.int64)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        sizes = np.array([self._units[u][2] for u in order], dtype=np.int64)
        starts = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        self._order = order  # epoch slot -> unit
        self._starts = starts  # epoch slot -> first stream position

    def state_dict(self) -> dict[str, int]:
        """The reader's position, as plain JSON-able data; see ``load_state_dict``."""
        return {
            "version": self.version,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "epoch": self._epoch,
            "rank": self.rank,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "next_batch": self._next_batch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at ``state`` (from ``state_dict``): the next batches are those an
        uninterrupted read would have yielded next. The state must come from a reader of the
        same version, seed, shuffle, rank, world_size and batch_size (``ValueError`` otherwise)."""
        if not isinstance(state, Mapping):
            raise ValueError(
                f"state: expected a dict from state_dict(), got {type(state).__name__}"
            )
        for key in _STATE_KEYS:
            if key not in state:
                raise ValueError(f"state: no {key!r} (expected the keys {list(_STATE_KEYS)})")
        for key in _MUST_MATCH:
            if state[key] != getattr(self, key):
                hint = f" (open the reader with version={state[key]!r})" if key == "version" else ""
                raise ValueError(
                    f"state: {key} is {state[key]!r}, this reader's {key} is "
                    f"{getattr(self, key)!r}{hint}"
                )
        epoch = _check_int("state epoch", state["epoch"], 0)
        next_batch = _check_int("state next_batch", state["next_batch"], 0)
        if next_batch > len(self):
            raise ValueError(
                f"state: next_batch is {next_batch}, but this rank has {len(self)} batches"
            )
        self._set_epoch(epoch)
        self._next_batch = next_batch

    # -- reading -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The batches of this epoch from the current position on."""
        while self._next_batch < len(self):
            batch = self.batch(self._next_batch)
            self._next_batch += 1
            yield batch
        self.close()

    def batch(self, index: int) -> dict[str, Any]:
        """Batch ``index`` of this rank's epoch, without moving the position."""
        if not _is_int(index) or not 0 <= index < len(self):
            raise IndexError(f"batch {index!r}: this rank has batches 0..{len(self) - 1}")
        lo = self._begin + index * self.batch_size
        hi = min(lo + self.batch_size, self._end)
        examples: list[tuple] = []
        pos = lo
        while pos < hi:
            slot = int(np.searchsorted(self._starts, pos, side="right")) - 1
            first = int(self._starts[slot])
            stop = min(hi, int(self._starts[slot + 1]))
            unit = self._load(int(self._order[slot]))
            examples += [
                self._example(unit, int(r)) for r in unit.order[pos - first : stop - first]
            ]
            pos = stop
        return self._assemble(examples, int(index))

    def close(self) -> None:
        """Close the open file and drop the row group in memory (reading reopens them)."""
        if self._file is not None:
            pid, _, f, _ = self._file
            self._file = None
            if pid == os.getpid():
                f.close()
        self._unit = None

    def _footer(self, path: str) -> pq.FileMetaData:
        if path not in self._footers:
            with self._open(path) as f:
                self._footers[path] = pq.ParquetFile(f, pre_buffer=False).metadata
        return self._footers[path]

    def _open(self, path: str):
        try:
            return self._fs.open(join(self._root, path), "rb")
        except FileNotFoundError:
            # The usual cause: gc expired the pinned version since the reader was made (or
            # since the checkpoint it resumes from). Say so, and what can be read instead.
            record = latest_record(self._fs, self._root)
            if record is not None and self.version <= record.through:
                raise DatasetError(
                    expired_message(self.url, self.version, record, record.oldest_live)
                    + "; make a new TokenReader at a live version"
                ) from None
            raise

    def _parquet(self, path: str) -> pq.ParquetFile:
        # A forked worker inherits the parent's open file: sharing its offset would garble both
        # reads, so each process opens its own.
        if self._file is not None and (self._file[0] != os.getpid() or self._file[1] != path):
            self.close()
        if self._file is None:
            f = self._open(path)
            pf = pq.ParquetFile(f, metadata=self._footer(path), pre_buffer=False)
            self._file = (os.getpid(), path, f, pf)
        return self._file[3]

    def _load(self, index: int) -> _Unit:
        if self._unit is not None and self._unit.index == index:
            return self._unit
        self._unit = None  # hold one row group at a time
        path, group, rows = self._units[index]
        where = f"{self.url}/{path} row group {group}"
        # One thread, no pre-buffering: see catalog.parquet.read_parquet.
        table = self._parquet(path).read_row_group(group, columns=_COLUMNS, use_threads=False)
        if table.num_rows != rows:
            raise DatasetError(f"{where}: {table.num_rows} rows, the footer said {rows}")
        ids = table.column("input_ids").combine_chunks()
        if ids.null_count:
            raise DatasetError(f"{where}: {ids.null_count} examples have null input_ids")
        media = table.column("media").combine_chunks()
        has_media = media.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).any()
        order = np.arange(rows, dtype=np.int64)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self._epoch, index + 1]).permutation(order)
        self._unit = _Unit(
            index=index,
            where=where,
            order=order,
            example_id=table.column("example_id").to_pylist(),
            ids=_list_parts(ids),
            doc_lens=_list_parts(table.column("doc_lens").combine_chunks()),
            media=media if has_media else None,
        )
        return self._unit

    def _example(self, unit: _Unit, row: int) -> tuple:
        example_id = unit.example_id[row]
        values, starts, lengths = unit.ids
        ids = values[starts[row] : starts[row] + lengths[row]]
        if len(ids) > self.seq_len:
            raise DatasetError(
                f"{unit.where}: example {example_id!r} has {len(ids)} tokens, "
                f"more than seq_len {self.seq_len}"
            )
        values, starts, lengths = unit.doc_lens
        docs = values[starts[row] : starts[row] + lengths[row]].copy()
        real = len(ids)
        if self.pack == "pad":
            real = int(docs.sum())
            if real > len(ids):
                raise DatasetError(
                    f"{unit.where}: example {example_id!r} has doc_lens summing to {real}, "
                    f"more than its {len(ids)} tokens"
                )
        media = []
        if unit.media is not None:
            media = _decode_media(unit.media[row], f"{unit.where} example {example_id!r}")
        return example_id, ids, real, docs, media

    def _assemble(self, examples: list[tuple], index: int) -> dict[str, Any]:
        n = len(examples)
        input_ids = np.full((n, self.seq_len), self.pad_id, dtype=np.int32)
        lengths = np.zeros(n, dtype=np.int32)
        for i, (_, ids, real, _, _) in enumerate(examples):
            input_ids[i, : len(ids)] = ids
            lengths[i] = real
        attention_mask = (np.arange(self.seq_len) < lengths[:, None]).astype(np.uint8)
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "lengths": lengths,
            "doc_lens": [e[3] for e in examples],
            "example_id": [e[0] for e in examples],
            "batch_index": index,
        }
        if any(e[4] for e in examples):
            batch["media"] = [e[4] for e in examples]
        return batch

    # -- pickling ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # Plain data only: open files, footers and the row group in memory are re-read lazily.
        state = dict(self.__dict__)
        state.update(_file=None, _unit=None, _footers={})
        return state

    def __repr__(self) -> str:
        return (
            f"TokenReader({self.url!r}, version={self.version}, rank={self.rank}/"
            f"{self.world_size}, epoch={self._epoch}, next_batch={self._next_batch}/{len(self)})"
        )


def _token_properties(props: Mapping[str, Any], where: str) -> tuple[int, str, int]:
    """(seq_len, pack, pad id) from a tokens manifest's properties, checked."""
    seq_len = props.get("seq_len")
    if not _is_int(seq_len) or seq_len < 1:
        raise DatasetError(
            f"{where}: manifest property seq_len is {seq_len!r}, expected an int >= 1"
        )
    pack = props.get("pack")
    if pack not in _PACKS:
        raise DatasetError(f"{where}: manifest property pack is {pack!r}, expected one of {_PACKS}")
    tokenizer = props.get("tokenizer")
    specials = tokenizer.get("special_tokens") if isinstance(tokenizer, Mapping) else None
    pad = specials.get("pad") if isinstance(specials, Mapping) else None
    if not _is_int(pad) or pad < 0:
        raise DatasetError(
            f"{where}: manifest property tokenizer.special_tokens.pad is {pad!r}, "
            "expected a token id"
        )
    return int(seq_len), pack, int(pad)


def _decode_media(items: pa.Scalar, where: str) -> list[dict[str, Any]]:
    """The media of one example: ``{"kind", "patches"}`` with patches as shaped uint8 arrays."""
    if not items.is_valid:
        return []
    out = []
    for item in items.values:
        kind = item["kind"].as_py()
        shape = item["shape"].as_py()
        patches = item["patches"]
        data = patches.as_buffer() if patches.is_valid else pa.py_buffer(b"")
        if shape is None or any(d is None or d < 0 for d in shape):
            raise DatasetError(f"{where}: media {kind!r} has shape {shape!r}")
        if math.prod(shape) != data.size:
            raise DatasetError(
                f"{where}: media {kind!r} has shape {shape} ({math.prod(shape)} bytes) "
                f"but {data.size} bytes of patches"
            )
        # A copy, so the array is writable (torch.from_numpy warns on read-only memory).
        array = np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()
        out.append({"kind": kind, "patches": array})
    return out
