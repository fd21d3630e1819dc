"""What compliance asks of a run's posts: the net effect of its events on top of the dataset's.

Events of one run are applied in time order (``event_at``; events without a time first; at one
time, a lifting event after the one it lifts), each on top of the state the dataset already
holds (its tombstones, ``transforms.posts.tombstones``):

* ``delete`` -- the post (every version) is removed, for good;
* ``drop`` -- removed while dropped; ``undrop`` lets it in again;
* ``tweet_edit`` -- the versions before the latest are removed (the edit rules: only the
  latest version of a post is kept);
* ``user_delete`` / ``user_protect`` / ``user_suspend`` (and batch ``deactivated``) -- every
  post of the author is removed; ``user_undelete`` / ``user_unprotect`` / ``user_unsuspend``
  lift that block for posts ingested afterwards (removed posts do not come back);
* ``withheld`` / ``user_withheld`` -- kept, the country codes in ``withheld_in_countries``;
* ``scrub_geo`` -- ``geo`` nulled on the author's posts up to ``up_to_tweet_id``;
* ``user_profile_modification`` -- counted, nothing stored changes.

The sets are Arrow arrays, so a bucket of posts is filtered with ``pyarrow.compute.is_in``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from transforms.posts.compliance import BLOCKING, UNBLOCKING, Event

__all__ = [
    "Removals",
    "apply_marks",
    "build_removals",
    "chain_deletes",
    "drop_removed",
    "lookup",
    "needs_marks",
]

# Which blocks an un-event lifts: an account reactivated after deactivation is undeleted.
_LIFTS = {
    "user_undelete": ("user_delete", "user_deactivate"),
    "user_unprotect": ("user_protect",),
    "user_unsuspend": ("user_suspend",),
}


def _order(e: Event) -> tuple:
    lifting = e.action in UNBLOCKING or e.action == "undrop"
    return (e.at is not None, e.at or 0, lifting, e.action, e.id, e.detail)


def _as_array(mapping: Mapping[str, object]) -> tuple[pa.Array, list]:
    keys = sorted(mapping)
    return pa.array(keys, pa.string()), [mapping[k] for k in keys]


@dataclass
class Removals:
    """The compliance state a run applies (see the module docstring).

    ``posts``: post id -> why it is removed with its whole edit chain (``delete``, ``drop``,
    ``tombstone``); ``superseded``: older versions named by ``tweet_edit`` (removed by id);
    ``authors``: author id -> the block (``user_delete``...); ``withheld_posts`` /
    ``withheld_authors``: id -> country codes; ``scrub_geo``: author id -> the last post id
    whose geo goes; ``held``: author id -> every block held, oldest first (``authors`` names
    the latest; an un-event lifts only its own). ``new_*``: what this run's events added, the part committed rows still
    need (what earlier versions held was applied to their rows when it came).
    """

    posts: dict[str, str] = field(default_factory=dict)
    superseded: dict[str, str] = field(default_factory=dict)
    authors: dict[str, str] = field(default_factory=dict)
    withheld_posts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    withheld_authors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scrub_geo: dict[str, str] = field(default_factory=dict)
    held: dict[str, tuple[str, ...]] = field(default_factory=dict)
    new_posts: frozenset[str] = frozenset()
    new_authors: frozenset[str] = frozenset()
    new_marks: bool = False

    def __post_init__(self):
        self._arrays: dict[str, tuple[pa.Array, list]] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_arrays", None)  # rebuilt on the worker, once
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._arrays = {}

    def array(self, name: str) -> tuple[pa.Array, list]:
        """The keys of mapping ``name`` as a sorted string array, and the values in that order."""
        if name not in self._arrays:
            self._arrays[name] = _as_array(getattr(self, name))
        return self._arrays[name]

    @property
    def marks(self) -> bool:
        """True if some row may need ``withheld_in_countries`` or ``geo`` changed."""
        return bool(self.withheld_posts or self.withheld_authors or self.scrub_geo)

    @property
    def touches_committed(self) -> bool:
        """True if committed rows may need removing or marking by author or exact id."""
        return bool(self.new_authors or self.new_marks or self.new_superseded)

    @property
    def new_superseded(self) -> bool:
        return bool(self.new_posts & self.superseded.keys())


def build_removals(
    deletes: Iterable[str], events: Iterable[Event], prior: Removals | None = None
) -> Removals:
    """The state after this run's ``deletes`` (post ids) and ``events`` on top of ``prior``."""
    prior = prior or Removals()
    posts = dict(prior.posts)
    superseded = dict(prior.superseded)
    withheld_posts = dict(prior.withheld_posts)
    withheld_authors = dict(prior.withheld_authors)
    scrub = dict(prior.scrub_geo)
    blocks: dict[str, dict[str, None]] = {
        a: dict.fromkeys(prior.held.get(a, (k,))) for a, k in prior.authors.items()
    }
    new_posts: set[str] = set()
    new_marks = False
    for pid in deletes:
        posts[pid] = "delete"
        new_posts.add(pid)
    for e in sorted(events, key=_order):
        a = e.action
        if a == "drop":
            if posts.get(e.id) != "delete":
                posts[e.id] = "drop"
                new_posts.add(e.id)
        elif a == "undrop":
            if posts.get(e.id) == "drop":
                del posts[e.id]
                new_posts.discard(e.id)
        elif a == "tweet_edit":
            for old in e.detail:
                superseded[old] = "tweet_edit"
                new_posts.add(old)
        elif a in BLOCKING:
            held = blocks.setdefault(e.id, {})
            held.pop(a, None)
            held[a] = None  # the latest block names the author's state
        elif a in UNBLOCKING:
            held = blocks.get(e.id, {})
            for lifted in _LIFTS[a]:
                held.pop(lifted, None)
        elif a == "withheld":
            withheld_posts[e.id] = e.detail
            new_marks = True
        elif a == "user_withheld":
            withheld_authors[e.id] = e.detail
            new_marks = True
        elif a == "scrub_geo":
            up_to = e.detail[0]
            if e.id not in scrub or _id_key(up_to) > _id_key(scrub[e.id]):
                scrub[e.id] = up_to
            new_marks = True
    authors = {a: next(reversed(held)) for a, held in blocks.items() if held}
    new_authors = frozenset(a for a, k in authors.items() if prior.authors.get(a) != k)
    return Removals(
        posts=posts,
        superseded=superseded,
        authors=authors,
        withheld_posts={k: v for k, v in withheld_posts.items() if v},
        withheld_authors={k: v for k, v in withheld_authors.items() if v},
        scrub_geo=scrub,
        held={a: tuple(held) for a, held in blocks.items() if held},
        new_posts=frozenset(new_posts),
        new_authors=new_authors,
        new_marks=new_marks,
    )


def _id_key(pid: str) -> tuple[int, str]:
    # Post ids are snowflakes: later posts have larger numbers (compared as numbers).
    return (int(pid), "") if pid.isdigit() else (-1, pid)


def lookup(values: pa.Array, removals: Removals, name: str) -> pa.Array:
    """For each of ``values``, the value of mapping ``name`` it is a key of, or null."""
    keys, found = removals.array(name)
    if not len(keys):
        return pa.nulls(len(values), pa.string())
    index = pc.index_in(values, value_set=keys)
    return pc.take(pa.array(found, pa.string()), index)


def drop_removed(rows: pa.Table, removals: Removals) -> tuple[pa.Table, dict[str, int]]:
    """``rows`` without the posts of blocked authors and the versions ``tweet_edit`` superseded,
    and how many went by why (``deleted:<why>``). Vectorized: one ``index_in`` per column."""
    if rows.num_rows == 0 or not (removals.authors or removals.superseded):
        return rows, {}
    authors = rows.column("author_id").combine_chunks()
    ids = rows.column("post_id").combine_chunks()
    why = pc.coalesce(
        _fresh(authors, lookup(authors, removals, "authors"), removals.new_authors),
        _fresh(ids, lookup(ids, removals, "superseded"), removals.new_posts),
    )
    gone = pc.is_valid(why)
    if not pc.any(gone).as_py():
        return rows, {}
    counts = pc.value_counts(pc.filter(why, gone)).to_pylist()
    return rows.filter(pc.invert(gone)), {"deleted:" + c["values"]: c["counts"] for c in counts}


def _fresh(keys: pa.Array, why: pa.Array, new: frozenset[str]) -> pa.Array:
    """``why`` where this run's events set it, ``tombstone`` where an earlier version did."""
    this_run = pc.is_in(keys, value_set=pa.array(sorted(new), pa.string()))
    return pc.if_else(pc.or_kleene(this_run, pc.is_null(why)), why, "tombstone")


def chain_deletes(tables: Iterable[pa.Table], removals: Removals) -> dict[str, str]:
    """The ids named by ``tables`` (``post_id`` and ``edit_history_ids``) that compliance
    removes with their edit chain, with why: only these reach ``resolve_bucket``, however many
    the dataset holds."""
    keys, _ = removals.array("posts")
    if not len(keys):
        return {}
    hits: set[str] = set()
    for t in tables:
        for named in (t.column("post_id"), pc.list_flatten(t.column("edit_history_ids"))):
            named = named.combine_chunks() if isinstance(named, pa.ChunkedArray) else named
            hits.update(pc.filter(named, pc.is_in(named, value_set=keys)).to_pylist())
    return {h: removals.posts[h] if h in removals.new_posts else "tombstone" for h in hits}


def needs_marks(rows: pa.Table, removals: Removals) -> pa.Array:
    """Which of ``rows`` a ``withheld``, ``user_withheld`` or ``scrub_geo`` may change."""
    ids = rows.column("post_id").combine_chunks()
    authors = rows.column("author_id").combine_chunks()
    mask = pc.is_in(ids, value_set=removals.array("withheld_posts")[0])
    for name in ("withheld_authors", "scrub_geo"):
        mask = pc.or_(mask, pc.is_in(authors, value_set=removals.array(name)[0]))
    return pc.fill_null(mask, False)


def apply_marks(rows: pa.Table, removals: Removals) -> pa.Table:
    """``rows`` (posts) with ``withheld_in_countries`` and ``geo`` as compliance says: the
    post's own countries, its events' and its author's (a union); geo nulled on the posts of a
    ``scrub_geo`` author up to the event's post id. Rows no event names are returned as they
    are (first, in their order); only the others are looked at one by one."""
    if not removals.marks or rows.num_rows == 0:
        return rows
    mask = needs_marks(rows, removals)
    if not pc.any(mask).as_py():
        return rows
    plain, marked = rows.filter(pc.invert(mask)), rows.filter(mask)
    ids = marked.column("post_id").to_pylist()
    authors = marked.column("author_id").to_pylist()
    countries = marked.column("withheld_in_countries").to_pylist()
    geo = marked.column("geo").to_pylist()
    for i, (pid, author) in enumerate(zip(ids, authors, strict=True)):
        extra = {*removals.withheld_posts.get(pid, ()), *removals.withheld_authors.get(author, ())}
        if extra:
            countries[i] = sorted(extra.union(countries[i] or ()))
        up_to = removals.scrub_geo.get(author)
        if up_to is not None and _id_key(pid) <= _id_key(up_to):
            geo[i] = None
    for name, values in (("withheld_in_countries", countries), ("geo", geo)):
        i = marked.schema.get_field_index(name)
        field_ = marked.schema.field(i)
        marked = marked.set_column(i, field_, pa.array(values, field_.type))
    return pa.concat_tables([plain, marked])
