"""Plain functions behind post ingestion: text cleaning, entities, PII, the dedup hash, parsing."""

from __future__ import annotations

import json

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.posts import (
    ParseOptions,
    clean_text,
    dedup_hash,
    extract_entities,
    parse_line,
    scrub_pii,
)
from transforms.posts.lines import open_decompressed, read_lines
from transforms.posts.parse import Chunk
from transforms.posts.text import dedup_form


def test_clean_text_unescapes_normalizes_and_drops_controls():
    assert clean_text("Q&amp;A &lt;3 &gt; &amp;copy;") == "Q&A <3 > &copy;"
    assert clean_text("cafe\u0301") == "café" and len(clean_text("cafe\u0301")) == 4
    assert clean_text("bell\x07 tab\tnew\nline\x00") == "bell tab\tnew\nline"
    family = "👨\u200d👩\u200d👧"
    assert clean_text(family) == family  # zero-width joiners hold the emoji together


def test_entities_in_any_script_but_not_inside_urls_or_emails():
    text = (
        "#東京 #भारत #İstanbul #1 #a1 mail jane.doe@example.com @bob_1 @ $TSLA $5 "
        "https://x.com/p#frag?u=@me, end"
    )
    e = extract_entities(text)
    assert e.hashtags == ["東京", "भारत", "İstanbul", "a1"]
    assert e.mentions == ["bob_1"]
    assert e.cashtags == ["TSLA"]
    assert e.urls == ["https://x.com/p#frag?u=@me"]


def test_scrub_pii_replaces_emails_and_phones_only():
    text = "mail jane.doe@example.com or +1 415 555 0142, see https://t.co/x/2122123097065660416 at 10:30 on 2026-11-20"
    scrubbed, n = scrub_pii(text)
    assert (
        scrubbed
        == "mail <email> or <phone>, see https://t.co/x/2122123097065660416 at 10:30 on 2026-11-20"
    )
    assert n == 2
    # An address inside a link stays, as do the link's digits; one outside goes, and the link
    # after it (moved by the replacement) still keeps its digits.
    kept = "https://x.com/u?to=jane@example.com&id=4155550142 or call"
    assert scrub_pii(kept) == (kept, 0)
    moved = "jane@example.com https://x.com/4155550142 +1 415 555 0142"
    assert scrub_pii(moved) == ("<email> https://x.com/4155550142 <phone>", 2)
    assert scrub_pii("no contact here, 12 items") == ("no contact here, 12 items", 0)


def test_dedup_hash_ignores_repost_prefix_links_case_and_spacing():
    base = dedup_hash("Crypto giveaway!!! Send 1 $ETH")
    assert dedup_hash("RT @spam_bot: crypto  giveaway!!! send 1 $ETH https://t.co/abc") == base
    assert dedup_hash("Crypto giveaway!!! Send 2 $ETH") != base
    assert dedup_hash("https://t.co/only-a-link") == 0


# Pieces of texts around links: schemes in any case (and the long s that matches "s" without
# case), "://" with and without a scheme, what ends a link, and what a link may run over.
_LINK_PIECES = ["http", "https", "HTTP", "hTtPs", "htt", "\u017f", "s", "://", ":/", "/", "t.co/x"]
_LINK_PIECES += [" ", "  ", "\t", "\u3000", "\u2028", "<", ">", '"', "'", "a", "日本", "\u0130"]
_LINK_PIECES += ["RT @a: ", "RT @"]


def _dedup_form_by_the_rule(text: str) -> str:
    """dedup_form as its docstring states it, with every substitution run on every text."""
    core = regex.sub(r"^RT @\w{1,15}: ", "", text)
    core = regex.sub(r"https?://[^\s<>\"'\u3000]+", "", core, flags=regex.IGNORECASE)
    return regex.sub(r"\s+", " ", core).strip().casefold()


@given(st.lists(st.sampled_from(_LINK_PIECES), max_size=12).map("".join))
@settings(max_examples=3000, deadline=None)
def test_dedup_form_shortcuts_keep_to_the_rule(text):
    """dedup_form runs a substitution only where it can match: the same forms all the same."""
    for tail in ("", "https://t.co/abc", " http://x.y/z", "://"):
        assert dedup_form(text + tail) == _dedup_form_by_the_rule(text + tail)


def _parse(*lines: bytes, options: ParseOptions | None = None) -> Chunk:
    chunk = Chunk("mem://in.jsonl")
    for n, line in enumerate(lines, 1):
        parse_line(line, n, chunk, options or ParseOptions())
    return chunk


@pytest.mark.parametrize(
    ("line", "reason", "message"),
    [
        (b'{"id": "1", "text": "cut', "json_invalid", "unexpected end of data"),
        (b'{"id": "1", "text": "\xff"}', "invalid_utf8", "invalid UTF-8 at byte 21"),
        (b"[1, 2]", "not_an_object", "expected a JSON object, got an array"),
        (b'{"id": "1", "text": "t", "author_id": "2"}', "missing_field", "created_at: missing"),
        (
            b'{"id": "1", "created_at": "2026-11-20T00:00:00Z", "author_id": "2"}',
            "missing_field",
            "text: missing",
        ),
        (
            b'{"id": [1], "text": "t", "created_at": "2026-11-20T00:00:00Z", "author_id": "2"}',
            "wrong_type",
            "id: expected an id string, got an array",
        ),
        (
            b'{"id": "1", "text": "t", "created_at": "soon", "author_id": "2"}',
            "bad_timestamp",
            "created_at: 'soon' is not an ISO-8601 timestamp",
        ),
        (
            b'{"id": "1", "text": "t", "created_at": "2026-11-20T00:00:00Z", "author_id": "2", '
            b'"public_metrics": {"like_count": "many"}}',
            "wrong_type",
            "like_count: expected an integer, got a string",
        ),
        (b'{"hello": "world"}', "unknown_payload", "no post, page or delete event"),
        (b'{"action": "delete"}', "missing_field", "id: missing"),
    ],
)
def test_every_reject_reason_names_what_is_wrong(line, reason, message):
    chunk = _parse(line)
    assert [r["reason"] for r in chunk.rejects] == [reason]
    assert message in chunk.rejects[0]["message"]
    assert chunk.rejects[0]["locator"] == "line 1" and chunk.rejects[0]["payload"] == line
    assert chunk.counts["records_in"] == 1 and not chunk.rows


def test_one_bad_tweet_in_a_page_rejects_only_that_tweet():
    good = {"id": "1", "text": "ok", "created_at": "2026-11-20T00:00:00.000Z", "author_id": "9"}
    bad = {"id": "2", "text": "no time", "author_id": "9"}
    chunk = _parse(json.dumps({"data": [good, bad, good | {"id": "3"}]}).encode())
    assert [r["post_id"] for r in chunk.rows] == ["1", "3"]
    assert [(r["locator"], r["reason"]) for r in chunk.rejects] == [
        ("line 1 data[1]", "missing_field")
    ]
    assert chunk.counts["records_in"] == 3


def test_non_posts_are_skipped_and_counted():
    chunk = _parse(
        b'{"data": [{"start": "a", "end": "b", "tweet_count": 3}], "meta": {}}',
        b'{"data": [{"id": "1", "name": "n", "username": "u"}]}',
        b'{"data": [{"id": "1", "name": "a list"}]}',
        b'{"data": [], "meta": {"result_count": 0}}',
        b'{"errors": [{"value": "1", "title": "Not Found Error"}, {"value": "2"}]}',
        b"   ",
        b'{"action": "delete", "id": "7"}',
        b'{"data": {"delete": {"tweet": {"id": "8", "author_id": "1"}, "event_at": "x"}}}',
    )
    assert not chunk.rows and not chunk.rejects and chunk.deletes == ["7", "8"]
    assert {k: v for k, v in chunk.counts.items() if k != "records_in"} == {
        "skipped:tweet_counts": 1,
        "skipped:user_page": 1,
        "skipped:list_page": 1,
        "skipped:empty_page": 1,
        "skipped:error_entry": 2,
        "skipped:blank_line": 1,
        "skipped:compliance_delete": 2,
    }
    assert chunk.counts["records_in"] == 9


def test_filters_count_what_they_drop():
    rows = [
        {"id": "1", "text": "hello there", "lang": "en"},
        {"id": "2", "text": "こんにちは", "lang": "ja"},
        {"id": "3", "text": "hi", "lang": "en"},
        {
            "id": "4",
            "text": "RT @a: hello there",
            "lang": "en",
            "referenced_tweets": [{"type": "retweeted", "id": "1"}],
        },
    ]
    lines = [
        json.dumps(r | {"created_at": "2026-11-20T00:00:00Z", "author_id": "9"}).encode()
        for r in rows
    ]
    options = ParseOptions(langs=frozenset({"en"}), min_chars=5, drop_reposts=True)
    chunk = _parse(*lines, options=options)
    assert [r["post_id"] for r in chunk.rows] == ["1"]
    assert chunk.counts["skipped:filter_lang"] == 1
    assert chunk.counts["skipped:filter_min_chars"] == 1
    assert chunk.counts["skipped:filter_repost"] == 1


def test_lines_are_read_in_blocks_and_long_lines_cut(tmp_path):
    import gzip

    data = b"a\n" + b"x" * (3 << 20) + b"\nbb\r\nlast"
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(data))
    with open(path, "rb") as f:
        lines = [
            (ln.number, len(ln.data), ln.length, ln.too_long)
            for ln in read_lines(open_decompressed(f), 1 << 20)
        ]
    assert lines == [
        (1, 1, 1, False),
        (2, 65536, 3 << 20, True),
        (3, 2, 2, False),
        (4, 4, 4, False),
    ]
