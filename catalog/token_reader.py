"""``TokenReader``: training batches from a ``tokens`` dataset, deterministic, sharded and resumable.

One epoch is one global stream of every example of a pinned version. Its order depends only on
(seed, epoch): the units of the stream are the row groups of the version's files (sorted by path),
and with ``shuffle`` their order is permuted by a generator seeded from ``(seed, epoch)`` and the
rows inside unit ``u`` by a generator seeded from ``(seed, epoch, u + 1)``. Rank ``r`` of ``W``
takes the contiguous slice ``[r*N//W, (r+1)*N//W)`` of that stream, so every machine computes the
same split without talking to the others and each rank reads only the row groups its slice
touches.

Elastic resume: a state saved by ranks in lockstep says which positions of the stream are still
to be read (``catalog.epoch_plan``); readers of any world size split those positions the same
way, so the new ranks read exactly what the old ones had not, in the epoch's order.

Read-ahead: the next ``prefetch`` row groups of the rank's share are fetched in threads (one
ranged request each, ``catalog.row_group_fetch``) while the training loop works, so a store's
latency is not paid in the loop; memory holds at most ``prefetch`` fetched row groups besides
the one being read.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from catalog.dataset import Dataset, DatasetError
from catalog.epoch_plan import EpochPlan, Runs, merge_runs, parse_runs
from catalog.expiry import expired_message, latest_record
from catalog.prefetch import prefetch as prefetched
from catalog.row_group_fetch import FetchedRowGroup, decode_row_group, fetch_row_group
from catalog.storage import join
from catalog.token_rows import TokenRows, assemble, unpack

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
# Saved since elastic resume; a state without them resumes only on its own rank and world size.
_ELASTIC_KEYS = ("drop_last", "plan")
_MUST_MATCH = ("version", "seed", "shuffle")
_DEFAULT_PREFETCH = 2


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}")
    return int(value)


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
    * ``batch_index``: the batch's index in this rank's epoch (since the last elastic resume);
    * ``media`` (only when an example of the batch has media): per example, a list of
      ``{"kind": str, "patches": uint8 array of the stored shape}``.

    The position is a small JSON-able dict (``state_dict``/``load_state_dict``), so a job
    resumes exactly where it stopped, on the same world size or (saved in lockstep) on any
    other. The reader pickles to plain data (files are read with one ranged request per row
    group, no handle kept), for ``TokenIterableDataset`` and DataLoader workers.

    Example::

        reader = TokenReader("s3://bucket/tokens", batch_size=8, rank=rank, world_size=world,
                             seed=1234, drop_last=True, storage_options={"anon": False})
        if "reader" in checkpoint:  # saved by any world size
            reader.load_state_dict(checkpoint["reader"])
        for epoch in range(reader.epoch, 3):
            if epoch != reader.epoch:
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
        prefetch: row groups fetched ahead in background threads while iterating (default 2;
            0 fetches each one when needed). Memory holds at most this many fetched (still
            compressed) row groups besides the one being read.
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
        prefetch: int = _DEFAULT_PREFETCH,
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
        self.prefetch = _check_int("prefetch", prefetch, 0)

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
        self._bytes: dict[str, int] = {}
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
        self._unit: TokenRows | None = None
        self._generation = 0
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
        """Batches of this rank per epoch (since the last elastic resume)."""
        return self._plan.batches(self.rank)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (its own order, every example) at its first batch."""
        self._set_epoch(_check_int("epoch", epoch, 0))

    def _set_epoch(self, epoch: int, runs: Runs | None = None, next_batch: int = 0) -> None:
        self._epoch = epoch
        self._next_batch = next_batch
        self._generation += 1  # an iteration of the previous position stops
        self._unit = None  # the rows' order inside a unit depends on the epoch
        if runs is None:
            runs = merge_runs([(0, self.num_examples)])
        self._plan = EpochPlan(runs, self.world_size, self.batch_size, self.drop_last)
        self._begin, self._end = self._plan.share(self.rank)
        order = np.arange(len(self._units), dtype=np.int64)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        sizes = np.array([self._units[u][2] for u in order], dtype=np.int64)
        starts = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        self._order = order  # epoch slot -> unit
        self._starts = starts  # epoch slot -> first stream position

    def state_dict(self) -> dict[str, Any]:
        """The reader's position, as plain JSON-able data; see ``load_state_dict``.

        ``plan`` lists the ``[start, stop)`` positions of the epoch's stream the ranks share
        (the whole epoch unless it was resumed elastically)."""
        return {
            "version": self.version,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "epoch": self._epoch,
            "rank": self.rank,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "next_batch": self._next_batch,
            "drop_last": self.drop_last,
            "plan": self._plan.to_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at ``state`` (from ``state_dict`` of a reader of the same version, seed and
        shuffle; ``ValueError`` otherwise).

        * Same world_size, batch_size and drop_last: the next batches are those an
          uninterrupted read would have yielded next (this rank's own state, or any rank's when
          the ranks were in lockstep).
        * Otherwise (elastic): the state must come from ranks in lockstep, every one at
          ``next_batch``, which ``drop_last=True`` guarantees; without it, a state is accepted
          while no rank can have run out of batches before the others. The new ranks then split
          what the old ones had still to read, in the epoch's order: together they read each of
          those examples once, whatever the new world size, batch size or DataLoader workers,
          and the order depends only on (seed, epoch, the state). ``batch_index`` restarts at 0.
        """
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
        world = _check_int("state world_size", state["world_size"], 1)
        rank = _check_int("state rank", state["rank"], 0)
        batch_size = _check_int("state batch_size", state["batch_size"], 1)
        if rank >= world:
            raise ValueError(f"state: rank is {rank}, expected < its world_size {world}")
        if all(key in state for key in _ELASTIC_KEYS):
            drop_last = state["drop_last"]
            if not isinstance(drop_last, bool):
                raise ValueError(f"state: drop_last is {drop_last!r}, expected true or false")
            runs = parse_runs(state["plan"], self.num_examples)
        else:  # saved before elastic resume: the whole epoch, split by this reader's rules
            drop_last, runs = self.drop_last, merge_runs([(0, self.num_examples)])
        old = EpochPlan(runs, world, batch_size, drop_last)
        if next_batch > old.batches(rank):
            raise ValueError(
                f"state: next_batch is {next_batch}, but this rank has {old.batches(rank)} batches"
            )
        in_lockstep = next_batch <= old.lockstep_batches()
        same = (world, batch_size, drop_last) == (self.world_size, self.batch_size, self.drop_last)
        if same and (rank == self.rank or in_lockstep):
            self._set_epoch(epoch, runs, next_batch)
            return
        if not all(key in state for key in _ELASTIC_KEYS):
            raise ValueError(
                f"state: saved without 'plan' and 'drop_last' (before elastic resume), so it "
                f"resumes only as rank {rank} of world_size {world} with batch_size {batch_size}"
            )
        if not in_lockstep:
            short = min(range(world), key=old.batches)
            raise ValueError(
                f"state: rank {rank} of {world} is at batch {next_batch}, past the "
                f"{old.batches(short)} batches of rank {short}, so the ranks were not in lockstep "
                f"and what the others read is unknown; resume it as rank {rank} of world_size "
                f"{world} (batch_size {batch_size}), or save states with drop_last=True (every "
                "rank the same number of batches) to resume on another world size"
            )
        self._set_epoch(epoch, old.unread(next_batch))

    # -- reading -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The batches of this epoch from the current position on."""
        generation = self._generation
        for batch in self.batches(range(self._next_batch, len(self))):
            if self._generation != generation:  # set_epoch/load_state_dict meanwhile
                return
            self._next_batch = batch["batch_index"] + 1
            yield batch
        self.close()

    def batches(self, indices: Iterable[int]) -> Iterator[dict[str, Any]]:
        """Batches ``indices`` of this rank's epoch, in that order, with the next ``prefetch``
        row groups read ahead; the position does not move (``TokenIterableDataset``'s workers
        each read every k-th batch this way)."""
        # The epoch as it is now: the reading threads and a set_epoch meanwhile do not mix.
        epoch, order, cut = self._epoch, self._order, self._cutter()

        def cuts() -> Iterator[tuple[int, list[tuple[int, int, int]]]]:
            for index in indices:  # lazily: an epoch can have millions of batches
                self._check_index(index)
                yield index, cut(index)

        ahead, now = itertools.tee(cuts())  # the fetching runs at most `prefetch` row groups ahead

        def needed() -> Iterator[int]:
            last = None
            for _, batch in ahead:
                for slot, _, _ in batch:
                    if slot != last:
                        yield slot
                    last = slot

        # The threads only fetch (waiting on the store); decoding stays in this thread, where it
        # does not compete for the GIL and the cores with the loop (DataLoader workers decode in
        # parallel processes).
        fetched = prefetched(
            needed(), lambda slot: self._fetch(int(order[slot])), depth=self.prefetch
        )
        unit = None
        for index, batch in now:
            parts = []
            for slot, first, stop in batch:
                if unit is None or unit.slot != slot:
                    unit = None  # let the previous row group go before the next arrives
                    unit = self._unpack(next(fetched), int(order[slot]), slot, epoch)
                parts.append((unit, unit.order[first:stop]))
            yield assemble(parts, index, self.seq_len)

    def batch(self, index: int) -> dict[str, Any]:
        """Batch ``index`` of this rank's epoch, without moving the position (no read-ahead)."""
        self._check_index(index)
        parts = []
        for slot, first, stop in self._cutter()(index):
            unit = self._load(slot)
            parts.append((unit, unit.order[first:stop]))
        return assemble(parts, int(index), self.seq_len)

    def close(self) -> None:
        """Drop the row group held for ``batch`` (reading reads it again)."""
        self._unit = None

    def _check_index(self, index: Any) -> None:
        if not _is_int(index) or not 0 <= index < len(self):
            raise IndexError(f"batch {index!r}: this rank has batches 0..{len(self) - 1}")

    def _cutter(self) -> Callable[[int], list[tuple[int, int, int]]]:
        """For the current epoch: batch index -> (epoch slot, first, stop) runs of rows of each
        slot's row order."""
        plan, begin, end, starts = self._plan, self._begin, self._end, self._starts
        size = self.batch_size

        def cut(index: int) -> list[tuple[int, int, int]]:
            lo = begin + index * size
            out = []
            for pos, stop_pos in plan.positions(lo, min(lo + size, end)):
                while pos < stop_pos:
                    slot = int(np.searchsorted(starts, pos, side="right")) - 1
                    first = int(starts[slot])
                    stop = min(stop_pos, int(starts[slot + 1]))
                    out.append((slot, pos - first, stop - first))
                    pos = stop
            return out

        return cut

    def _footer(self, path: str) -> pq.FileMetaData:
        if path not in self._footers:
            with self._open(path) as f:
                self._bytes[path] = f.seek(0, io.SEEK_END)
                self._footers[path] = pq.ParquetFile(f, pre_buffer=False).metadata
        return self._footers[path]

    def _open(self, path: str):
        try:
            return self._fs.open(join(self._root, path), "rb")
        except FileNotFoundError:
            self._raise_if_expired()
            raise

    def _raise_if_expired(self) -> None:
        # The usual cause of a missing file: gc expired the pinned version since the reader was
        # made (or since the checkpoint it resumes from). Say so, and what can be read instead.
        record = latest_record(self._fs, self._root)
        if record is not None and self.version <= record.through:
            raise DatasetError(
                expired_message(self.url, self.version, record, record.oldest_live)
                + "; make a new TokenReader at a live version"
            ) from None

    def _load(self, slot: int) -> TokenRows:
        if self._unit is None or self._unit.slot != slot:
            self._unit = None  # hold one row group at a time
            index = int(self._order[slot])
            self._unit = self._unpack(self._fetch(index), index, slot, self._epoch)
        return self._unit

    def _fetch(self, index: int) -> FetchedRowGroup:
        """The bytes of row group ``index`` (one ranged request); thread-safe."""
        path, group, _ = self._units[index]
        try:
            return fetch_row_group(
                self._fs,
                join(self._root, path),
                metadata=self._footer(path),
                group=group,
                columns=_COLUMNS,
            )
        except FileNotFoundError:
            self._raise_if_expired()
            raise

    def _unpack(self, fetched: FetchedRowGroup, index: int, slot: int, epoch: int) -> TokenRows:
        """Row group ``index`` (at ``slot`` of epoch ``epoch``'s order), decoded and unpacked."""
        path, group, rows = self._units[index]
        where = f"{self.url}/{path} row group {group}"
        table = decode_row_group(
            fetched, self._fs, size=self._bytes[path], metadata=self._footer(path), columns=_COLUMNS
        )
        if table.num_rows != rows:
            raise DatasetError(f"{where}: {table.num_rows} rows, the footer said {rows}")
        order = np.arange(rows, dtype=np.int64)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch, index + 1]).permutation(order)
        return unpack(
            table,
            slot=slot,
            where=where,
            order=order,
            seq_len=self.seq_len,
            pack=self.pack,
            pad=self.pad_id,
        )

    # -- pickling ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # Plain data only: open files, footers and the row group in memory are re-read lazily.
        state = dict(self.__dict__)
        state.update(_unit=None, _footers={})
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
