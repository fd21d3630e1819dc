"""``ResolvePosts``: duplicates, edits and compliance removals, against this run and the dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from catalog.parquet import read_parquet
from catalog.staging import POSITION_COLUMNS, read_staged, rows_at
from catalog.storage import open_url
from schemas import POSTS
from transforms.posts.removals import (
    Removals,
    apply_marks,
    chain_deletes,
    drop_removed,
    lookup,
    needs_marks,
)
from transforms.posts.resolve import (
    COMMITTED_KEY_COLUMNS,
    TIE_BREAK_COLUMNS,
    dedup_text,
    resolution_keys,
    resolve_bucket,
)
from transforms.posts.rows import edit_roots, split_buckets
from transforms.posts.stage_posts import StagedKeys

__all__ = ["ResolvePosts"]


class _ReadKeysFn(beam.DoFn):
    """Reads a few columns of a committed file, with its path, split into buckets."""

    def __init__(self, url, storage_options, columns, buckets, by_text):
        self._url, self._storage_options = url, storage_options
        self._columns, self._buckets, self._by_text = columns, buckets, by_text

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, path: str):
        table = read_parquet(self._fs, f"{self._root}/{path}", self._columns, schema=POSTS.schema)
        table = table.append_column("_path", pa.array([path] * table.num_rows, pa.string()))
        keys = table.column("text_hash").to_numpy() if self._by_text else edit_roots(table)
        for bucket, part in split_buckets(table, keys, self._buckets):
            yield bucket, ("old", part)


def _key_new(table: pa.Table, buckets: int):
    # Kept keys of the first pass, spread again by text hash (small: keys, not rows), without
    # the tie-breaks of resolving: a quarter of the bytes this shuffle moved.
    table = table.drop_columns([c for c in TIE_BREAK_COLUMNS if c in table.column_names])
    for bucket, part in split_buckets(table, table.column("text_hash").to_numpy(), buckets):
        yield bucket, ("new", part)


def _split(element):
    _, tagged = element
    new = [t for tag, t in tagged if tag == "new"]
    old = [t for tag, t in tagged if tag == "old"]
    return new, old


class _ResolveFn(beam.DoFn):
    """Resolves one bucket: this run's staged keys of it (the bucket's batch of every chunk's
    keys, ``staged``) against the committed ones (grouped with the bucket)."""

    def __init__(self, url, storage_options):
        self._url, self._storage_options = url, storage_options

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, element, removals: Removals, staged: list[StagedKeys]):
        bucket, tagged = element
        old = [t for tag, t in tagged if tag == "old"]
        refs = [ref for keys in staged if (ref := keys.of_bucket(bucket)) is not None]
        if not refs and not old:
            return
        new = [read_staged(self._fs, self._root, ref) for ref in refs]
        table = pa.concat_tables(new) if new else _empty_keys()
        committed = pa.concat_tables(old) if old else None
        # Blocked authors and superseded versions go first, as one vectorized filter; what
        # removes a whole edit chain is narrowed to the ids this bucket names.
        table, dropped = drop_removed(table, removals)
        deletes = chain_deletes([table, *([] if committed is None else [committed])], removals)
        resolution = resolve_bucket(table, committed, deletes)
        resolution.counts.update(dropped)
        yield resolution


class _ScanCommittedFn(beam.DoFn):
    """Committed rows this run's user events remove (a blocked author, a superseded version)
    or mark (withheld, scrub_geo): per file, ``([(path, post_id) to remove, (path, None) to
    rewrite the file with its marks], counts)``; a file is read only when the run has such
    events."""

    def __init__(self, url, storage_options):
        self._url, self._storage_options = url, storage_options

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, path: str, removals: Removals):
        if not removals.touches_committed:
            return
        table = read_parquet(
            self._fs, f"{self._root}/{path}", ["post_id", "author_id"], schema=POSTS.schema
        )
        ids = table.column("post_id").combine_chunks()
        authors = table.column("author_id").combine_chunks()
        # Only blocks this run added: what earlier versions held left no row to find.
        new = pa.array(sorted(removals.new_authors), pa.string())
        blocked = pc.if_else(
            pc.is_in(authors, value_set=new),
            lookup(authors, removals, "authors"),
            pa.scalar(None, pa.string()),
        )
        why = pc.coalesce(blocked, lookup(ids, removals, "superseded"))
        gone = pc.fill_null(pc.is_valid(why), False)
        pairs = [(path, pid) for pid in pc.filter(ids, gone).to_pylist()]
        counts = {
            "info:committed_rows_deleted:" + c["values"]: c["counts"]
            for c in pc.value_counts(pc.filter(why, gone)).to_pylist()
        }
        if removals.new_marks and pc.any(needs_marks(table, removals)).as_py():
            pairs.append((path, None))
        # One element per file (no tagged outputs: Beam's Dask runner mixes them up).
        yield pairs, counts


class _SplitMarkedFn(beam.DoFn):
    """Kept keys -> ``(positions of the rows to write as staged (None: no such rows), [tables
    of the rows a withheld or scrub_geo event changes, read and changed here])`` (few, when
    any)."""

    def __init__(self, url, storage_options):
        self._url, self._storage_options = url, storage_options

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, kept: pa.Table, removals: Removals):
        marked = []
        if removals.marks and kept.num_rows:
            mask = needs_marks(kept, removals)
            if pc.any(mask).as_py():
                for ref in rows_at(kept.filter(mask)):
                    rows = read_staged(self._fs, self._root, ref)
                    marked.append(apply_marks(rows, removals))
                kept = kept.filter(pc.invert(mask))
        # An empty bucket's keys may lack the columns saying where rows are staged.
        positions = kept.select(POSITION_COLUMNS) if kept.num_rows else None
        yield positions, marked


def _empty_keys() -> pa.Table:
    return resolution_keys(POSTS.schema.empty_table())


def _dedup_text(element):
    new, old = _split(element)
    if not new:
        return
    seen = {h for t in old for h in t.column("text_hash").to_pylist() if h}
    kept, dropped = dedup_text(pa.concat_tables(new), seen)
    yield kept, {"deduplicated:text": dropped} if dropped else {}


class ResolvePosts(beam.PTransform):
    """Keep one row per post, the latest version of each edited post, nothing deleted.

    Input: ``{"keys": a ``StagedKeys`` for each chunk (see ``StagePosts``), "removals": one
    ``Removals`` (the run's compliance state)}``. Output:
    ``{"positions": tables of where the rows to write are staged (``POSITION_COLUMNS`` of
    ``catalog.staging``, as ``WriteShards`` takes them), "marked": tables of rows
    to write that compliance changed (withheld countries, scrubbed geo), "remove": (path,
    post_id) of committed rows to delete, ``(path, None)`` of committed files to rewrite with
    their marks, "tallies": counts, "side_files": ``FileEntry`` s written by ``dedup_near``}``.

    The keys of a bucket (every version of the posts whose edit root falls in it) meet the keys
    of the committed rows of ``files`` in the same bucket; each bucket is resolved on its own.
    With ``dedup_text``, a second pass by ``text_hash`` drops posts whose text was already
    seen in this run or in the dataset. Only keys move between steps, never rows.

    Args:
        dataset / storage_options: the dataset the run appends to (and stages in).
        files: the live files of the version the run is based on.
        buckets: how many groups the keys were staged in (``StagePosts``'s ``buckets``).
        dedup_text: also drop posts whose normalized text was already seen.
        dedup_near: a ``DedupNear`` applied to the kept keys (``--dedup-near``), or None.
    """

    def __init__(
        self,
        dataset: str,
        *,
        files: Sequence[str],
        buckets: int,
        storage_options: Mapping[str, Any] | None = None,
        dedup_text: bool = False,
        dedup_near: beam.PTransform | None = None,
    ):
        super().__init__()
        if buckets < 1:
            raise ValueError(f"buckets={buckets}: expected >= 1")
        self._url = dataset
        self._files = list(files)
        self._buckets = buckets
        self._storage_options = dict(storage_options or {})
        self._dedup_text = dedup_text
        self._dedup_near = dedup_near

    def _committed(self, p, label: str, columns: list[str], by_text: bool):
        fn = _ReadKeysFn(self._url, self._storage_options, columns, self._buckets, by_text)
        return p | f"List{label}" >> beam.Create(self._files) | f"Read{label}" >> beam.ParDo(fn)

    def expand(self, inputs):
        keys, removals = inputs["keys"], beam.pvalue.AsSingleton(inputs["removals"])
        p = keys.pipeline
        b = self._buckets
        # Every bucket, with the committed keys that fall in it; the run's keys come as one
        # reference a chunk (a side input), so what is shuffled grows with chunks plus
        # buckets, not with their product. The bucket numbers need no reshuffle of their own
        # (the grouping spreads them): one stage less, 50 ms of every run's start.
        grouped = (
            (
                p
                | "Buckets"
                >> beam.Create(
                    [(bucket, ("bucket", None)) for bucket in range(b)], reshuffle=False
                ),
                self._committed(p, "CommittedKeys", COMMITTED_KEY_COLUMNS, False),
            )
            | "JoinCommitted" >> beam.Flatten()
            | "GroupByEditRoot" >> beam.GroupByKey()
        )
        resolved = grouped | "Resolve" >> beam.ParDo(
            _ResolveFn(self._url, self._storage_options), removals, beam.pvalue.AsList(keys)
        )
        kept = resolved | "Kept" >> beam.Map(lambda r: r.kept)
        tallies = resolved | "ResolveCounts" >> beam.Map(lambda r: dict(r.counts))
        remove = resolved | "CommittedRemovals" >> beam.FlatMap(lambda r: r.remove)
        if self._dedup_text:
            by_text = (
                (
                    kept | "KeyByText" >> beam.FlatMap(_key_new, b),
                    self._committed(p, "CommittedTexts", ["text_hash"], True),
                )
                | "JoinCommittedTexts" >> beam.Flatten()
                | "GroupByText" >> beam.GroupByKey()
                | "DedupText" >> beam.FlatMap(_dedup_text)
            )
            kept = by_text | "TextKept" >> beam.Map(lambda kv: kv[0])
            text_tallies = by_text | "TextCounts" >> beam.Map(lambda kv: kv[1])
            tallies = (tallies, text_tallies) | "AllCounts" >> beam.Flatten()
        if self._dedup_near is not None:
            near = {"kept": kept, "removals": inputs["removals"]} | "DedupNear" >> self._dedup_near
            kept = near["kept"]
            tallies = (tallies, near["tallies"]) | "WithNearCounts" >> beam.Flatten()
            side_files = near["side_files"]
        else:
            side_files = p | "NoSideFiles" >> beam.Create([])
        split = kept | "RowRefs" >> beam.ParDo(
            _SplitMarkedFn(self._url, self._storage_options), removals
        )
        scanned = (
            p
            | "ListCommittedForCompliance" >> beam.Create(self._files)
            | "ScanCommitted"
            >> beam.ParDo(_ScanCommittedFn(self._url, self._storage_options), removals)
        )
        remove = (
            remove,
            scanned | "ScannedRemovals" >> beam.FlatMap(lambda s: s[0]),
        ) | "AllRemovals" >> beam.Flatten()
        tallies = (
            tallies,
            scanned | "ScannedCounts" >> beam.Map(lambda s: s[1]),
        ) | "AllTallies" >> beam.Flatten()
        return {
            "positions": split
            | "Positions" >> beam.FlatMap(lambda s: [] if s[0] is None else [s[0]]),
            "marked": split | "MarkedRows" >> beam.FlatMap(lambda s: s[1]),
            "remove": remove,
            "tallies": tallies,
            "side_files": side_files,
        }
