"""``ResolvePosts``: duplicates, edits and compliance deletes, against this run and the dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa

from catalog.parquet import read_parquet
from catalog.storage import open_url
from schemas import POSTS
from transforms.posts.resolve import COMMITTED_KEY_COLUMNS, dedup_text, resolve_bucket
from transforms.posts.rows import edit_roots, split_buckets

__all__ = ["ResolvePosts"]


class _ReadKeysFn(beam.DoFn):
    """Reads a few columns of a committed file, with its path, split into buckets."""

    def __init__(self, url, storage_options, columns, buckets, by_text):
        self._url, self._storage_options = url, storage_options
        self._columns, self._buckets, self._by_text = columns, buckets, by_text

    def setup(self):
        self._fs, self._root = open_url(self._url, self._storage_options)

    def process(self, path: str):
        table = read_parquet(self._fs, f"{self._root}/{path}", self._columns)
        table = table.append_column("_path", pa.array([path] * table.num_rows, pa.string()))
        keys = table.column("text_hash").to_numpy() if self._by_text else edit_roots(table)
        for bucket, part in split_buckets(table, keys, self._buckets):
            yield bucket, ("old", part)


def _key_new(table: pa.Table, buckets: int, by_text: bool):
    keys = table.column("text_hash").to_numpy() if by_text else edit_roots(table)
    for bucket, part in split_buckets(table, keys, buckets):
        yield bucket, ("new", part)


def _split(element):
    _, tagged = element
    new = [t for tag, t in tagged if tag == "new"]
    old = [t for tag, t in tagged if tag == "old"]
    return new, old


def _resolve(element, deletes: list[str]):
    new, old = _split(element)
    if not new and not old:
        return
    table = pa.concat_tables(new) if new else POSTS.schema.empty_table()
    committed = pa.concat_tables(old) if old else None
    yield resolve_bucket(table, committed, set(deletes))


def _dedup_text(element):
    new, old = _split(element)
    if not new:
        return
    seen = {h for t in old for h in t.column("text_hash").to_pylist() if h}
    kept, dropped = dedup_text(pa.concat_tables(new), seen)
    yield kept, {"deduplicated:text": dropped} if dropped else {}


class ResolvePosts(beam.PTransform):
    """Keep one row per post, the latest version of each edited post, nothing deleted.

    Input: ``{"posts": tables, "deletes": post ids}``. Output: ``{"posts": tables to write,
    "remove": (path, post_id) of committed rows to delete, "tallies": counts}``.

    Rows are spread over ``buckets`` by edit root (so all versions of a post meet) together
    with the keys of the committed rows of ``files``; each bucket is resolved on its own.
    With ``dedup_text``, a second pass by ``text_hash`` drops posts whose text was already
    seen in this run or in the dataset.

    Args:
        dataset / storage_options: the dataset the run appends to.
        files: the live files of the version the run is based on.
        buckets: how many groups to spread the posts over (more for more data).
        dedup_text: also drop posts whose normalized text was already seen.
    """

    def __init__(
        self,
        dataset: str,
        *,
        files: Sequence[str],
        buckets: int,
        storage_options: Mapping[str, Any] | None = None,
        dedup_text: bool = False,
    ):
        super().__init__()
        if buckets < 1:
            raise ValueError(f"buckets={buckets}: expected >= 1")
        self._url = dataset
        self._files = list(files)
        self._buckets = buckets
        self._storage_options = dict(storage_options or {})
        self._dedup_text = dedup_text

    def _committed(self, p, label: str, columns: list[str], by_text: bool):
        fn = _ReadKeysFn(self._url, self._storage_options, columns, self._buckets, by_text)
        return p | f"List{label}" >> beam.Create(self._files) | f"Read{label}" >> beam.ParDo(fn)

    def expand(self, inputs):
        posts, deletes = inputs["posts"], inputs["deletes"]
        p = posts.pipeline
        b = self._buckets
        grouped = (
            (
                posts | "KeyByEditRoot" >> beam.FlatMap(_key_new, b, False),
                self._committed(p, "CommittedKeys", COMMITTED_KEY_COLUMNS, False),
            )
            | "JoinCommitted" >> beam.Flatten()
            | "GroupByEditRoot" >> beam.GroupByKey()
        )
        resolved = grouped | "Resolve" >> beam.FlatMap(_resolve, beam.pvalue.AsList(deletes))
        kept = resolved | "Kept" >> beam.Map(lambda r: r.kept)
        tallies = resolved | "ResolveCounts" >> beam.Map(lambda r: dict(r.counts))
        remove = resolved | "CommittedRemovals" >> beam.FlatMap(lambda r: r.remove)
        if self._dedup_text:
            by_text = (
                (
                    kept | "KeyByText" >> beam.FlatMap(_key_new, b, True),
                    self._committed(p, "CommittedTexts", ["text_hash"], True),
                )
                | "JoinCommittedTexts" >> beam.Flatten()
                | "GroupByText" >> beam.GroupByKey()
                | "DedupText" >> beam.FlatMap(_dedup_text)
            )
            kept = by_text | "TextKept" >> beam.Map(lambda kv: kv[0])
            text_tallies = by_text | "TextCounts" >> beam.Map(lambda kv: kv[1])
            tallies = (tallies, text_tallies) | "AllCounts" >> beam.Flatten()
        kept = kept | "NonEmpty" >> beam.Filter(lambda t: t.num_rows > 0)
        return {"posts": kept, "remove": remove, "tallies": tallies}
