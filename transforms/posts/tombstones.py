"""Tombstones: the compliance state a posts dataset has applied, stored with its versions.

A run reads the state of the version it builds on (``load_removals``), applies its own events
on top (``transforms.posts.removals``) and writes what changed as one ``tombstones/<run_id>
.parquet`` file (``tombstone_rows``, ``write_tombstones``) that its version lists. Every later
ingest so removes a deleted post, a dropped one or a blocked author's posts even when they
arrive after the event did (a later run, a backfill): ``deleted:tombstone`` in its report.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.parquet import read_parquet
from catalog.storage import join, open_url
from schemas import TOMBSTONES_SCHEMA, FileEntry
from transforms.posts.compliance import Event
from transforms.posts.removals import Removals, build_removals

__all__ = [
    "load_removals",
    "record_run",
    "removals_from_rows",
    "run_removals",
    "tombstone_rows",
    "write_tombstones",
]

_LIFTED = "lifted"


def _changes(before: dict, after: dict) -> Iterable[tuple[str, object]]:
    """(key, new value or None when gone) for every key whose value changed."""
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            yield key, after.get(key)


def tombstone_rows(prior: Removals, after: Removals, run_id: str) -> pa.Table:
    """The rows of ``TOMBSTONES_SCHEMA`` that take ``prior``'s state to ``after``'s."""
    rows: list[tuple[str, str, str, list[str] | None]] = []
    posts_before = {**prior.posts, **prior.superseded}
    posts_after = {**after.posts, **after.superseded}
    for pid, state in _changes(posts_before, posts_after):
        rows.append(("post", pid, state or _LIFTED, None))
    held_before = {a: prior.held.get(a, (k,)) for a, k in prior.authors.items()}
    held_after = {a: after.held.get(a, (k,)) for a, k in after.authors.items()}
    for author, held in _changes(held_before, held_after):
        rows.append(("author", author, held[-1] if held else _LIFTED, list(held or ())))
    for target, state, before, now in (
        ("post_withheld", "withheld", prior.withheld_posts, after.withheld_posts),
        ("author_withheld", "user_withheld", prior.withheld_authors, after.withheld_authors),
    ):
        for key, countries in _changes(before, now):
            rows.append((target, key, state if countries else _LIFTED, list(countries or ())))
    for author, up_to in _changes(prior.scrub_geo, after.scrub_geo):
        rows.append(("author_geo", author, "scrub_geo", [up_to]))
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.Table.from_arrays(
        [
            *(pa.array(c, f.type) for c, f in zip(columns, TOMBSTONES_SCHEMA, strict=False)),
            pa.array([run_id] * len(rows), pa.string()),
        ],
        schema=TOMBSTONES_SCHEMA,
    )


def removals_from_rows(tables: Sequence[pa.Table]) -> Removals:
    """The state tombstone tables (oldest version first) leave: later rows override earlier
    ones of the same target and id."""
    state: dict[tuple[str, str], tuple[str, list[str] | None]] = {}
    for table in tables:
        for target, key, s, detail in zip(
            *(table.column(c).to_pylist() for c in ("target", "id", "state", "detail")),
            strict=True,
        ):
            state[(target, key)] = (s, detail)
    out = Removals()
    for (target, key), (s, detail) in state.items():
        if s == _LIFTED:
            continue
        if target == "post":
            (out.superseded if s == "tweet_edit" else out.posts)[key] = s
        elif target == "author":
            out.authors[key] = s
            out.held[key] = tuple(detail or (s,))
        elif target == "post_withheld":
            out.withheld_posts[key] = tuple(detail or ())
        elif target == "author_withheld":
            out.withheld_authors[key] = tuple(detail or ())
        elif target == "author_geo":
            out.scrub_geo[key] = (detail or [""])[0]
    return out


def load_removals(fs, root: str, entries: Sequence[FileEntry]) -> Removals:
    """The state the tombstone files ``entries`` (a manifest's, in version order) hold."""
    return removals_from_rows([read_parquet(fs, join(root, e.path)) for e in entries])


def write_tombstones(fs, root: str, run_id: str, table: pa.Table) -> FileEntry | None:
    """Write ``table`` as ``tombstones/<run_id>.parquet``; its manifest entry (None if empty).

    The name holds the run id, so a retried run rewrites its own file and nothing else."""
    if table.num_rows == 0:
        return None
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    path = f"tombstones/{run_id}.parquet"
    fs.makedirs(join(root, "tombstones"), exist_ok=True)
    with fs.open(join(root, path), "wb") as f:
        f.write(data)
    return FileEntry(path, table.num_rows, len(data), "sha256:" + hashlib.sha256(data).hexdigest())


def run_removals(
    deletes: Iterable[str],
    events: Iterable[Event],
    *,
    url: str,
    storage_options: dict,
    entries: Sequence[FileEntry],
) -> tuple[Removals, Removals]:
    """(the state of the base version, the state after this run's ``deletes`` and ``events``)."""
    fs, root = open_url(url, storage_options)
    prior = load_removals(fs, root, entries)
    return prior, build_removals(deletes, events, prior)


def record_run(
    states: tuple[Removals, Removals], *, url: str, storage_options: dict, run_id: str
) -> Iterable[FileEntry]:
    """Write what the run changed of the state (nothing when it changed nothing)."""
    fs, root = open_url(url, storage_options)
    entry = write_tombstones(fs, root, run_id, tombstone_rows(*states, run_id))
    if entry is not None:
        yield entry
