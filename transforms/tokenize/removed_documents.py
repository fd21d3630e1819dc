"""Which documents of a ``tokens`` dataset a posts dataset's compliance removals take out.

A tokens version records, per posts input, the posts version whose compliance state it has
applied (``applied``). Removals since then are the tombstone rows of later versions (DESIGN.md
§3 ``tombstones``) that remove something: ``post`` rows (delete, drop, tweet_edit) name posts;
``author`` rows (a block) name authors, resolved to their posts against the applied posts
version -- the one the tokens were read from, so it holds every post of theirs the tokens can
hold (the posts are gone from later versions). With ``threads`` a document is a reply thread,
so a removed post takes its whole thread (``conversation_id``) out. Lifts, withheld and
scrub_geo rows remove nothing from tokens (tokens hold no geo, and withheld posts are kept).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from catalog import Dataset, DatasetError
from catalog.parquet import read_parquet
from schemas.errors import UserError

__all__ = ["applied_versions", "removed_documents", "tombstone_rows_since"]

_LIFTED = "lifted"


def applied_versions(properties: Mapping) -> dict[str, int]:
    """Posts dataset label -> the posts version whose removals a tokens version has applied.

    Tokens versions written before this was recorded applied, at least, the state of the
    versions they read (``inputs``)."""
    applied = dict(properties.get("applied") or {})
    for entry in properties.get("inputs") or ():
        if entry.get("kind") == "posts":
            applied.setdefault(entry["dataset"], int(entry["version"]))
    return applied


def tombstone_rows_since(posts: Dataset, since: int, upto: int) -> pa.Table:
    """The tombstone rows of ``posts`` added by versions ``since < v <= upto``."""
    manifest = posts.manifest(upto)
    tables = [
        read_parquet(posts.fs, posts.path(e.path), ["target", "id", "state"])
        for e in (manifest.tombstones if manifest else ())
        if since < e.version <= upto
    ]
    if not tables:
        return pa.table(
            {"target": [], "id": [], "state": []},
            pa.schema([(c, pa.string()) for c in ("target", "id", "state")]),
        )
    return pa.concat_tables(tables)


def _ids(rows: pa.Table, target: str) -> set[str]:
    mine = pc.and_(
        pc.equal(rows.column("target"), target), pc.not_equal(rows.column("state"), _LIFTED)
    )
    return set(rows.filter(mine).column("id").to_pylist())


def _read(posts: Dataset, version: int, columns: list[str]) -> pa.Table:
    tables = [read_parquet(posts.fs, posts.path(f.path), columns) for f in posts.files(version)]
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.concat_tables(tables)


def _author_posts(
    posts: Dataset, authors: set[str], since: int, upto: int, held: Callable[[], set[str]]
) -> set[str]:
    """The posts of ``authors`` that tokens read at posts version ``since`` can hold.

    Version ``since`` holds them all. When ``gc`` has expired it, they are the held posts the
    version read now (``upto``) no longer has: a superset (a post an overwrite dropped goes
    too), never a miss."""
    try:
        lookup = _read(posts, since, ["post_id", "author_id"])
    except DatasetError:
        kept = pa.array(sorted(held()), pa.string())
        live = _read(posts, upto, ["post_id"]).column("post_id")
        return set(kept.filter(pc.invert(pc.is_in(kept, value_set=live))).to_pylist())
    mine = pc.is_in(lookup.column("author_id"), pa.array(sorted(authors), pa.string()))
    return set(lookup.filter(pc.fill_null(mine, False)).column("post_id").to_pylist())


def _threads(posts: Dataset, removed: set[str], since: int, label: str) -> set[str]:
    """The reply threads (documents of a ``threads`` tokenize) holding the ``removed`` posts."""
    try:
        lookup = _read(posts, since, ["post_id", "conversation_id"])
    except DatasetError as e:
        raise UserError(
            f"tokenize: cannot find the reply threads of the posts {label} removed since "
            f"version {since}: {e}; tokenize the posts afresh into another --to dataset"
        ) from None
    hit = lookup.filter(pc.is_in(lookup.column("post_id"), pa.array(sorted(removed), pa.string())))
    return set(pc.coalesce(hit.column("conversation_id"), hit.column("post_id")).to_pylist())


def removed_documents(
    posts: Dataset,
    label: str,
    *,
    since: int,
    upto: int,
    threads: bool,
    held: Callable[[], set[str]],
) -> tuple[set[str], dict[str, int]]:
    """(document ids to remove, counts) for the removals of ``posts`` in ``since < v <= upto``.

    ``held()`` gives the ids of the documents of ``label`` the tokens hold (asked for only when
    an author block must be resolved and version ``since`` has expired). Counts: ``posts``
    (post rows), ``authors`` (author blocks) and ``author_posts`` (their posts found)."""
    rows = tombstone_rows_since(posts, since, upto)
    post_ids, authors = _ids(rows, "post"), _ids(rows, "author")
    counts = {"posts": len(post_ids), "authors": len(authors), "author_posts": 0}
    if since == 0 or not (post_ids or authors):
        # Nothing removed, or nothing of this dataset was ever tokenized into the tokens.
        return set(), counts
    removed = set(post_ids)
    if authors:
        author_posts = _author_posts(posts, authors, since, upto, held)
        counts["author_posts"] = len(author_posts)
        removed |= author_posts
    if threads:
        removed |= _threads(posts, removed, since, label)
    return removed, counts
