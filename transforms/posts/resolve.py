"""Deciding which posts of one bucket survive: duplicates, edits, compliance deletes (plain functions).

A bucket holds every version of the posts whose edit root hashes to it -- new rows from this
run, and the keys of rows already committed -- so each decision needs only the bucket.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.posts.lang_id import DETECTED
from transforms.posts.rows import COLUMN, edit_root_array

__all__ = [
    "COMMITTED_KEY_COLUMNS",
    "RESOLVE_KEY_COLUMNS",
    "TIE_BREAK_COLUMNS",
    "Resolution",
    "dedup_text",
    "resolution_keys",
    "resolve_bucket",
    "row_score",
]

# What is read of committed rows to resolve against them (plus the file path).
COMMITTED_KEY_COLUMNS = ["post_id", "created_at", "edit_history_ids"]
# What resolving a new row needs of it: ``resolution_keys`` adds its completeness ``score``
# (``author_id``: compliance removes every post of some authors).
RESOLVE_KEY_COLUMNS = [
    "post_id",
    "author_id",
    "created_at",
    "edit_history_ids",
    "source_uri",
    "source_line",
    "text_hash",
]
# The kept keys' columns that only resolving reads (its tie-breaks): what moves on after it
# (to ``--dedup-text``, ``--dedup-near``) can leave them behind.
TIE_BREAK_COLUMNS = ("source_uri", "source_line", "score")


@dataclass
class Resolution:
    """The rows to write, committed rows to remove as ``(path, post_id)``, and the counts."""

    kept: pa.Table
    remove: list[tuple[str, str]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


def resolution_keys(posts: pa.Table) -> pa.Table:
    """The columns of ``posts`` that resolving needs, plus ``score``: how complete each row is.

    Of two copies of one post (a page and a plain export), the one that says more is kept:
    ``score`` counts a row's non-null columns plus its media items; a detected ``lang`` does
    not count (the source did not say it: a copy with X's own ``lang`` says more).
    """
    score = None
    for column in posts.columns:
        valid = pc.cast(pc.is_valid(column), pa.int64())
        score = valid if score is None else pc.add(score, valid)
    media = pc.fill_null(pc.list_value_length(posts.column("media")), 0)
    detected = pc.fill_null(pc.equal(posts.column("lang_source"), DETECTED), False)
    score = pc.subtract(pc.add(score, pc.cast(media, pa.int64())), pc.cast(detected, pa.int64()))
    keys = posts.select(RESOLVE_KEY_COLUMNS)
    return keys.append_column("score", score)


_MEDIA = COLUMN["media"]
_LANG_SOURCE = COLUMN["lang_source"]


def row_score(row: list) -> int:
    """``score`` (see ``resolution_keys``) of one row, its values in schema order as parsing
    handles them (``rows.row_values``): its non-null columns plus its media items, less one for
    a detected ``lang``."""
    score = len(row) - row.count(None) + len(row[_MEDIA] or ())
    return score - 1 if row[_LANG_SOURCE] == DETECTED else score


def resolve_bucket(
    new: pa.Table, committed: pa.Table | None, deletes: set[str] | Mapping[str, str]
) -> Resolution:
    """Keep one row per post, the latest version of every edited post, and nothing deleted.

    Args:
        new: this run's rows in the bucket: ``resolution_keys`` of posts (other columns, such
            as where a staged row is, are carried along).
        committed: committed rows' ``post_id``, ``created_at``, ``edit_history_ids`` and
            ``_path``, or None.
        deletes: every post id compliance removes with its whole edit chain, or a mapping
            of them to why (``delete``, ``drop``, ``tombstone``: the ``deleted:<why>`` count).

    Rows of ``new`` end up kept, ``deduplicated`` (``post_id``: already seen or committed;
    ``edit_superseded``: an older version of an edited post) or ``deleted``. Committed rows that
    are deleted, or superseded by a newer version in ``new``, are listed in ``remove``.
    """
    out = Resolution(kept=new.slice(0, 0))
    why = deletes if isinstance(deletes, Mapping) else dict.fromkeys(deletes, "delete")

    # 1. One row per post id: the most complete, then the first by source and line.
    best = _one_row_per_post(new)
    out.counts["deduplicated:post_id"] += new.num_rows - len(best)
    out.counts["deduplicated:edit_superseded"] += 0  # in the report even when none are

    # 2. Edits meet by edit root; a compliance delete of any version deletes the whole post.
    # Most posts are the only version of their root in the run and have none committed: they
    # are kept as they are, without the per-post loop below (which then sees only the rest).
    roots = edit_root_array(new).take(pa.array(best))
    alone = np.zeros(len(best), bool)
    if not why:
        codes = pc.dictionary_encode(roots).indices.to_numpy()
        alone = np.bincount(codes)[codes] == 1
        if committed is not None and committed.num_rows:
            known = edit_root_array(committed)
            alone &= ~pc.is_in(roots, value_set=known).to_numpy(zero_copy_only=False)
    keep = list(best[alone])
    rest = best[~alone]

    sub = new.take(pa.array(rest, pa.int64()))
    ids = sub.column("post_id").to_pylist()
    hist_len = pc.fill_null(pc.list_value_length(sub.column("edit_history_ids")), 0).to_pylist()
    created = sub.column("created_at").cast(pa.int64()).to_pylist()

    def rank(i: int) -> tuple:
        return (hist_len[i], created[i], ids[i])

    by_root: dict[str, list[int]] = defaultdict(list)
    for i, root in enumerate(roots.filter(pa.array(~alone)).to_pylist()):
        by_root[root].append(i)
    committed_rows = []
    if committed is not None and committed.num_rows:
        committed_rows = list(
            zip(
                committed.column("post_id").to_pylist(),
                committed.column("edit_history_ids").to_pylist(),
                committed.column("created_at").cast(pa.int64()).to_pylist(),
                committed.column("_path").to_pylist(),
                strict=True,
            )
        )
    deleted_roots = _deleted_roots(sub, ids, by_root, committed_rows, why) if why else {}
    for root in deleted_roots.keys() & by_root.keys():
        out.counts["deleted:" + deleted_roots[root]] += len(by_root.pop(root))

    old_by_root: dict[str, list[tuple[tuple, str, str]]] = defaultdict(list)
    for pid, hist, ts, path in committed_rows:
        root = hist[0] if hist else pid
        if root in deleted_roots:
            out.remove.append((path, pid))
            out.counts["info:committed_rows_deleted"] += 1
        else:
            old_by_root[root].append(((len(hist or ()) or 1, ts, pid), pid, path))

    for root, members in by_root.items():
        winner = max(members, key=rank)
        out.counts["deduplicated:edit_superseded"] += len(members) - 1
        old = old_by_root.get(root, [])
        committed_ids = {pid for _, pid, _ in old}
        if ids[winner] in committed_ids:
            out.counts["deduplicated:post_id"] += 1  # already in the dataset
            continue
        if old and max(r for r, _, _ in old) > rank(winner):
            out.counts["deduplicated:edit_superseded"] += 1  # a newer version is committed
            continue
        for _, pid, path in old:  # older committed versions give way to this one
            out.remove.append((path, pid))
            out.counts["info:committed_rows_superseded"] += 1
        keep.append(rest[winner])
    keep.sort()
    out.kept = new.take(pa.array(keep, pa.int64()))
    return out


def _one_row_per_post(new: pa.Table) -> np.ndarray:
    """The row kept of each post id of ``new``: the highest ``score``, then the least
    (``source_uri``, ``source_line``), then the first; in order of each id's first row."""
    if new.num_rows == 0:
        return np.zeros(0, np.int64)
    keys = [
        ("post_id", "ascending"),
        ("score", "descending"),
        ("source_uri", "ascending"),
        ("source_line", "ascending"),
    ]
    order = pc.sort_indices(new.select([k for k, _ in keys]), sort_keys=keys).to_numpy()  # stable
    ids = new.column("post_id").take(pa.array(order)).combine_chunks()
    starts = np.flatnonzero(
        np.concatenate(([True], pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)))
    )
    first_seen = np.minimum.reduceat(order, starts)
    return order[starts][np.argsort(first_seen)]


def _deleted_roots(new, ids, by_root, committed_rows, why: Mapping[str, str]) -> dict[str, str]:
    """The edit roots (of ``by_root``, this run's posts, and of the committed rows) a delete in
    ``why`` names by any version's id, each with the why of its least id. Only called when a
    run has deletes: most have none, and then no chain's ids need listing."""
    histories = new.column("edit_history_ids").to_pylist()
    deleted: dict[str, str] = {}
    for root, members in by_root.items():
        named = {root, *(ids[i] for i in members)}
        named.update(h for i in members for h in histories[i] or ())
        hit = named & why.keys()
        if hit:
            deleted[root] = why[min(hit)]
    for pid, hist, _, _ in committed_rows:
        hit = {pid, *(hist or ())} & why.keys()
        if hit:
            deleted.setdefault(hist[0] if hist else pid, why[min(hit)])
    return deleted


def dedup_text(new: pa.Table, committed_hashes: set[int]) -> tuple[pa.Table, int]:
    """Drop rows whose ``text_hash`` was seen (committed, or an earlier post of this run).

    The earliest post (by ``created_at``, then ``post_id``) of a text is kept. Returns the kept
    rows and how many were dropped. Hash 0 (no text left after normalization) never matches.
    """
    hashes = new.column("text_hash").to_pylist()
    created = new.column("created_at").cast(pa.int64()).to_pylist()
    ids = new.column("post_id").to_pylist()
    order = sorted(range(new.num_rows), key=lambda i: (created[i], ids[i]))
    seen = set(committed_hashes)
    keep = []
    for i in order:
        h = hashes[i]
        if h and h in seen:
            continue
        seen.add(h)
        keep.append(i)
    keep.sort()
    return new.take(pa.array(keep, pa.int64())), new.num_rows - len(keep)
