"""Repeats of a post within a source are dropped at parse time exactly when resolving would
drop them (``transforms.posts.repeats``); the datasets written are unchanged (proved end to end
by test_ingest_unchanged.py), and these tests pin the rule itself."""

from __future__ import annotations

import io

import orjson
import pytest
from test_parse_unchanged import hostile_lines, text_lines

from transforms.posts import ParseOptions, parse_source
from transforms.posts.parse import Chunk, parse_line
from transforms.posts.repeats import SeenPosts
from transforms.posts.resolve import resolution_keys, row_score
from transforms.posts.rows import rows_to_table
from transforms.samples.firehose import firehose_lines

URI = "mem://repeats.jsonl"


def post(pid="7", history=None, **extra) -> bytes:
    doc = {"id": pid, "text": "hello", "created_at": "2026-11-20T08:00:00Z", "author_id": "1"}
    if history:
        doc["edit_history_tweet_ids"] = history
    return orjson.dumps({**doc, **extra})


def parse(lines: list[bytes], *, drop_repeats: bool = True):
    data = io.BytesIO(b"\n".join(lines) + b"\n")
    chunks = list(
        parse_source(data, URI, ParseOptions(), max_line_bytes=1 << 20, drop_repeats=drop_repeats)
    )
    rows = [r for c in chunks for r in c.posts.to_pylist()]
    dropped = sum(c.tally.get("deduplicated:post_id", 0) for c in chunks)
    return rows, dropped


def test_a_later_copy_that_says_no_more_is_dropped():
    rows, dropped = parse(
        [post(), post(like_count=5), post(lang="en"), post(lang="en", like_count=1)]
    )
    # Line 2 says more (a like count), line 3 as much (a language: the source's, where lines 1
    # and 2 have only a detected one, which does not count), line 4 more again.
    assert [(r["source_line"], r["like_count"], r["lang"]) for r in rows] == [
        (1, None, "und"),
        (2, 5, "und"),
        (4, 1, "en"),
    ]
    assert dropped == 1  # line 3: resolving keeps the first of two as complete


def test_other_histories_and_other_ids_are_kept():
    rows, dropped = parse([post(), post(history=["3", "7"]), post("8"), post(history=["3", "7"])])
    assert [r["source_line"] for r in rows] == [1, 2, 3]
    assert dropped == 1  # line 4: the same post and history as line 2


def test_off_by_default_and_counted_as_records():
    lines = [post(), post(), post()]
    rows, dropped = parse(lines, drop_repeats=False)
    assert (len(rows), dropped) == (3, 0)
    data = io.BytesIO(b"\n".join(lines))
    chunks = list(
        parse_source(data, URI, ParseOptions(), max_line_bytes=1 << 20, drop_repeats=True)
    )
    assert sum(c.tally["records_in"] for c in chunks) == 3
    assert sum(c.posts.num_rows for c in chunks) + chunks[0].tally["deduplicated:post_id"] == 3


def test_memory_is_bounded_and_forgetting_only_keeps_more():
    seen = SeenPosts(limit=2)
    assert not seen.is_repeat(("1", "0", "1"), 5)
    assert not seen.is_repeat(("1", "1"), 5)
    assert seen.is_repeat(("1", "1"), 5)
    assert not seen.is_repeat(("3", "1"), 5)  # table full: emptied, then remembered
    assert not seen.is_repeat(("1", "1"), 5)  # forgotten: kept, resolving decides


@pytest.mark.parametrize("corpus", ["firehose", "texts", "hostile"])
def test_row_score_is_the_score_resolving_uses(corpus):
    lines = {
        "firehose": lambda: firehose_lines(300, seed=3),
        "texts": text_lines,
        "hostile": hostile_lines,
    }[corpus]()
    chunk = Chunk(URI)
    for number, line in enumerate(lines, 1):
        parse_line(line, number, chunk, ParseOptions())
    assert chunk.rows
    scores = resolution_keys(rows_to_table(chunk.rows)).column("score").to_pylist()
    assert [row_score([*r.values()]) for r in chunk.rows] == scores
    assert len(set(scores)) > 1  # the corpus has rows that say more than others


def test_a_bad_timestamp_costs_every_line_that_repeats_it():
    """created_at_ms caches the values it parsed, not the ones it rejected."""
    chunk = Chunk(URI)
    for number in (1, 2):
        parse_line(post(created_at="2026-13-45T99:00:00Z"), number, chunk, ParseOptions())
    assert [(r["locator"], r["reason"]) for r in chunk.rejects] == [
        ("line 1", "bad_timestamp"),
        ("line 2", "bad_timestamp"),
    ]
