"""``resolve_bucket`` keeps what a plain per-post reading of its rules keeps, on random buckets.

The reference below decides every post one at a time, as ``resolve_bucket`` did before it
learned to keep a post that is alone in its edit chain without looking at it in Python.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pyarrow as pa
import pytest

from transforms.posts.resolve import resolve_bucket

_TS = pa.timestamp("ms", tz="UTC")
_NEW = pa.schema(
    [
        ("post_id", pa.string()),
        ("created_at", _TS),
        ("edit_history_ids", pa.list_(pa.string())),
        ("source_uri", pa.string()),
        ("source_line", pa.int64()),
        ("score", pa.int64()),
    ]
)
_COMMITTED = pa.schema(
    [
        ("post_id", pa.string()),
        ("created_at", _TS),
        ("edit_history_ids", pa.list_(pa.string())),
        ("_path", pa.string()),
    ]
)


def _bucket(rng: random.Random, n: int, committed: int):
    """Posts of a few edit chains (root ``c<k>``, versions ``c<k>v<j>``), many repeated."""
    rows = []
    for _ in range(n):
        chain, version = rng.randrange(n // 2 + 1), rng.randrange(3)
        pid = f"c{chain}" if version == 0 else f"c{chain}v{version}"
        history = [f"c{chain}", *(f"c{chain}v{j}" for j in range(1, version + 1))]
        rows.append(
            {
                "post_id": pid,
                "created_at": 1_700_000_000_000 + chain * 1000 + version,
                "edit_history_ids": rng.choice([history, history if version else [], None]),
                "source_uri": rng.choice(["a.jsonl", "b.jsonl"]),
                "source_line": rng.randrange(5),
                "score": rng.randrange(3),
            }
        )
    old = []
    for k in range(committed):
        chain, version = rng.randrange(n), rng.randrange(3)
        pid = f"c{chain}" if version == 0 else f"c{chain}v{version}"
        history = [f"c{chain}", *(f"c{chain}v{j}" for j in range(1, version + 1))]
        old.append(
            {
                "post_id": pid,
                "created_at": 1_700_000_000_000 + chain * 1000 + version,
                "edit_history_ids": history,
                "_path": f"data/{k % 3}.parquet",
            }
        )
    return pa.Table.from_pylist(rows, schema=_NEW), pa.Table.from_pylist(old, schema=_COMMITTED)


def _reference(new: pa.Table, committed: pa.Table, deletes: set[str]):
    rows, old = new.to_pylist(), committed.to_pylist()

    def root(r):
        return r["edit_history_ids"][0] if r["edit_history_ids"] else r["post_id"]

    def rank(i):
        r = rows[i]
        return (len(r["edit_history_ids"] or ()), r["created_at"], r["post_id"])

    counts, remove = Counter(), []
    best = {}
    for i, r in enumerate(rows):
        j = best.get(r["post_id"])
        key = (-r["score"], r["source_uri"], r["source_line"])
        if j is None or key < (-rows[j]["score"], rows[j]["source_uri"], rows[j]["source_line"]):
            best[r["post_id"]] = i
    counts["deduplicated:post_id"] += len(rows) - len(best)
    by_root = defaultdict(list)
    for i in best.values():
        by_root[root(rows[i])].append(i)
    deleted = set()
    for k, members in by_root.items():
        named = {k, *(rows[i]["post_id"] for i in members)}
        named.update(h for i in members for h in rows[i]["edit_history_ids"] or ())
        if named & deletes:
            deleted.add(k)
    for o in old:
        if {o["post_id"], *o["edit_history_ids"]} & deletes:
            deleted.add(root(o))
    old_by_root = defaultdict(list)
    for o in old:
        if root(o) in deleted:
            remove.append((o["_path"], o["post_id"]))
            counts["deleted_committed"] += 1
        else:
            old_by_root[root(o)].append(o)
    keep = []
    for k, members in by_root.items():
        if k in deleted:
            counts["deleted"] += len(members)
            continue
        winner = max(members, key=rank)
        counts["deduplicated:edit_superseded"] += len(members) - 1
        prior = old_by_root.get(k, [])
        if rows[winner]["post_id"] in {o["post_id"] for o in prior}:
            counts["deduplicated:post_id"] += 1
            continue
        ranks = [(len(o["edit_history_ids"]) or 1, o["created_at"], o["post_id"]) for o in prior]
        if prior and max(ranks) > rank(winner):
            counts["deduplicated:edit_superseded"] += 1
            continue
        remove.extend((o["_path"], o["post_id"]) for o in prior)
        keep.append(winner)
    return sorted(keep), sorted(remove), counts


@pytest.mark.parametrize("seed", range(12))
def test_resolve_bucket_keeps_what_the_rules_keep(seed):
    rng = random.Random(seed)
    new, committed = _bucket(rng, n=rng.choice([1, 5, 40, 300]), committed=rng.choice([0, 3, 30]))
    ids = [r["post_id"] for r in new.to_pylist()]
    deletes = set(rng.sample(ids, k=min(len(ids), rng.choice([0, 0, 2])))) if ids else set()
    new = new.append_column("_row", pa.array(range(new.num_rows), pa.int64()))
    got = resolve_bucket(new, committed if committed.num_rows else None, deletes)
    keep, remove, counts = _reference(new, committed, deletes)
    assert got.kept.column("_row").to_pylist() == keep
    assert sorted(got.remove) == remove
    want = {
        "deduplicated:post_id": counts["deduplicated:post_id"],
        "deduplicated:edit_superseded": counts["deduplicated:edit_superseded"],
    }
    assert {k: got.counts[k] for k in want} == want
    deleted = sum(v for k, v in got.counts.items() if k.startswith("deleted:"))
    assert deleted == counts["deleted"]
    assert got.counts["info:committed_rows_deleted"] == counts["deleted_committed"]
