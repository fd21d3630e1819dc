"""Hostile post input: the line parser and the reader survive anything and account for all of it.

The property, for any bytes: nothing raises out of ``parse_line`` or ``parse_source``; every line
becomes at least one record, and every record is a row, a counted skip or a reject whose reason,
message, file and line say what went wrong (``records_in == rows + skipped + rejected``); rows
conform to the posts schema and can be read back; rejects make a valid rejects table.

Inputs: random bytes, any JSON document, valid posts of every form with one field replaced,
dropped or duplicated by every JSON type (and by huge numbers, lone surrogates, NUL, invalid
UTF-8, BOMs, 100k-deep nesting, huge strings), truncated and byte-flipped posts, and whole files
of such lines (CRLF, BOM, gzip, zstd, cut short, read in blocks of any size); compression bombs
and over-long lines in bounded memory. The coverage-guided fuzzer (tests/fuzz/) checks the same
properties with ``check_chunk`` and ``check_parsed`` from here; ``SHARDSMITH_FUZZ=1`` (``make
test-long``) runs it, and more examples per property.
"""

from __future__ import annotations

import copy
import gzip
import io
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import MAX_PAYLOAD_BYTES, POSTS, conform_table, reject_table
from transforms.posts import ParseOptions, ParsePosts, parse_line, parse_source, scrub_pii
from transforms.posts.lines import open_decompressed, read_lines
from transforms.posts.parse import MAX_POSTS_PER_LINE, Chunk
from transforms.posts.rows import rows_to_table
from transforms.run_report import SumTallies

URI = "mem://hostile/in.jsonl"
_LOCATOR = re.compile(r"line ([1-9]\d*)(?: (?:data|includes\.tweets|referenced_tweets)\[\d+\])?\Z")
_REASON = re.compile(r"[a-z][a-z0-9_]*\Z")
# SHARDSMITH_FUZZ=1 (make test-long) runs the coverage-guided fuzzer for SHARDSMITH_FUZZ_SECONDS
# and 2,000 examples per property; the defaults keep this file well under a minute.
_FUZZ = os.environ.get("SHARDSMITH_FUZZ") == "1"
_FUZZ_SECONDS = int(os.environ.get("SHARDSMITH_FUZZ_SECONDS", "600"))
_EXAMPLES = int(os.environ.get("SHARDSMITH_HYPOTHESIS_EXAMPLES", "2000" if _FUZZ else "250"))
_FAST = settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------- the properties


def check_chunk(chunk: Chunk, lines: set[int] | range) -> None:
    """What every ``parse_line`` result keeps, for lines numbered ``lines``."""
    counts = chunk.counts
    assert all(v >= 0 for v in counts.values()), counts
    SumTallies().add_input(Counter(), counts)  # only keys the run report knows
    skipped = sum(v for k, v in counts.items() if k.startswith("skipped:"))
    assert counts["records_in"] == len(chunk.rows) + len(chunk.rejects) + skipped, counts
    assert len(chunk.deletes) == counts["skipped:compliance_delete"]
    assert all(isinstance(d, str) and d for d in chunk.deletes)
    for r in chunk.rejects:
        check_reject(r, lines)
    for row in chunk.rows:
        assert row["source_uri"] == chunk.source_uri and row["source_line"] in lines
    check_tables(chunk.rows, chunk.rejects)


def check_reject(r: dict, lines: set[int] | range) -> None:
    assert r["source_uri"] == URI
    where = _LOCATOR.match(r["locator"])
    assert where and int(where.group(1)) in lines, r["locator"]
    assert _REASON.match(r["reason"]), r["reason"]
    assert isinstance(r["message"], str) and r["message"].strip(), r
    assert isinstance(r["payload"], bytes) and len(r["payload"]) <= MAX_PAYLOAD_BYTES


def check_tables(rows: list[dict], rejects: list[dict]) -> None:
    """Rows make a posts table that a reader can turn back into Python; rejects a rejects table."""
    if rows:
        conform_table(rows_to_table(rows), POSTS).to_pylist()
    if rejects:
        reject_table(rejects, run_id="hostile")


def check_parsed(chunks, lines: range | None = None) -> Counter:
    """What every ``parse_source`` result (chunks, or the generator) keeps; returns the summed
    tally."""
    total = Counter()
    for c in chunks:
        posts = conform_table(c.posts, POSTS)
        if posts.num_rows:
            posts.to_pylist()
        if c.rejects:
            reject_table(c.rejects, run_id="hostile")
        skipped = sum(v for k, v in c.tally.items() if k.startswith("skipped:"))
        assert c.tally["records_in"] == posts.num_rows + len(c.rejects) + skipped, c.tally
        for r in c.rejects:
            check_reject(r, lines or range(1, 1 << 62))
        total.update(c.tally)
    return total


def parse_one(data: bytes, options: ParseOptions | None = None) -> Chunk:
    chunk = Chunk(URI)
    parse_line(data, 7, chunk, options or ParseOptions())
    check_chunk(chunk, {7})
    assert chunk.counts["records_in"] >= 1, "a line that became no record at all"
    return chunk


def reasons(chunk: Chunk) -> list[str]:
    return [r["reason"] for r in chunk.rejects]


# ----------------------------------------------------------------------------- inputs

T = "2026-11-20T08:00:00.000Z"
USER = {"id": "9", "username": "road_en", "name": "Road"}
MEDIA = {
    "media_key": "3_1",
    "type": "video",
    "preview_image_url": "https://pbs.example/3_1.jpg",
    "duration_ms": 1200,
    "width": 1280,
    "height": 720,
    "alt_text": "a road",
    "variants": [
        {"content_type": "video/mp4", "bit_rate": 256000, "url": "https://video.example/1.mp4"},
        {"content_type": "application/x-mpegURL", "url": "https://video.example/1.m3u8"},
    ],
}
TWEET = {
    "id": "101",
    "text": "Q&amp;A #AI @road_en $TSLA https://t.co/x mail a@b.co or +1 415 555 0142",
    "created_at": T,
    "author_id": "9",
    "lang": "en",
    "conversation_id": "100",
    "possibly_sensitive": False,
    "public_metrics": {"like_count": 5, "retweet_count": 1, "reply_count": 1, "quote_count": 0},
    "entities": {
        "hashtags": [{"tag": "AI"}],
        "mentions": [{"username": "road_en"}],
        "cashtags": [{"tag": "TSLA"}],
        "urls": [{"url": "https://t.co/x", "expanded_url": "https://x.com/a"}],
    },
    "attachments": {"media_keys": ["3_1"]},
    "referenced_tweets": [{"type": "replied_to", "id": "100"}],
    "edit_history_tweet_ids": ["101"],
}
FORMS = {
    "page": {
        "data": [TWEET],
        "includes": {
            "users": [USER],
            "media": [MEDIA],
            "tweets": [{"id": "100", "text": "root", "created_at": T, "author_id": "9"}],
        },
        "errors": [{"value": "5", "title": "Not Found Error"}],
        "meta": {"result_count": 1},
    },
    "stream": {
        "data": TWEET,
        "includes": {"users": [USER], "media": [MEDIA]},
        "matching_rules": [{"id": "1", "tag": "t"}],
    },
    "twarc2": {k: v for k, v in TWEET.items() if k != "attachments"}
    | {
        "author": USER,
        "attachments": {"media": [MEDIA]},
        "referenced_tweets": [
            {"type": "quoted", "id": "102", "text": "q", "created_at": T, "author_id": "9"}
        ],
    },
    "plain": {
        "id": 7,
        "text": "plain café",
        "created_at": "Wed Oct 10 20:19:24 +0000 2018",
        "author_id": 9,
        "author_username": "plain_user",
        "reply_to_post_id": "6",
        "like_count": 3,
        "edit_history_ids": ["6", 7],
    },
    "delete": {"action": "delete", "id": "7"},
    "stream_delete": {"data": {"delete": {"tweet": {"id": "8", "author_id": "1"}, "event_at": T}}},
    "counts": {"data": [{"start": "a", "end": "b", "tweet_count": 3}], "meta": {}},
    "errors": {"errors": [{"value": "1", "title": "Not Found Error"}, {"value": "2"}]},
}


class Raw:
    """JSON text placed as is: what ``json.dumps`` cannot write (1e400, lone surrogates...)."""

    def __init__(self, text: bytes):
        self.text = text


def render(value) -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        items = (json.dumps(k).encode() + b":" + render(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(render(v) for v in value) + b"]"
    return json.dumps(value).encode()


def paths(value, at: tuple = ()):
    """Every place in a document: each key of each object and each index of each array."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield (*at, key)
        yield from paths(child, (*at, key))


def mutated(doc, path: tuple, how: str, raw: bytes = b"") -> bytes:
    """``doc`` with the value at ``path`` replaced by ``raw``, dropped, or its key repeated with
    ``raw`` as the second value (the last one wins in orjson)."""
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "drop":
        del parent[key]
    elif how == "dup" and isinstance(parent, dict):
        parent[key] = Raw(render(parent[key]) + b"," + json.dumps(key).encode() + b":" + raw)
    else:
        parent[key] = Raw(raw)
    return render(doc)


_DEEP = 100_000
RAW_VALUES = {
    "null": b"null",
    "true": b"true",
    "false": b"false",
    "zero": b"0",
    "negative": b"-1",
    "2**63": str(2**63).encode(),
    "2**64": str(2**64).encode(),
    "2**200": str(2**200).encode(),
    "-2**200": str(-(2**200)).encode(),
    "float": b"1.5",
    "1e400": b"1e400",
    "-1e400": b"-1e400",
    "1e-400": b"1e-400",
    "10k digits": b"9" * 10_000,
    "empty string": b'""',
    "string": b'"x"',
    "digit string": b'"123"',
    "lone high surrogate": b'"\\ud800"',
    "lone low surrogate": b'"\\udfff"',
    "reversed surrogates": b'"\\udc00\\ud800"',
    "escaped NUL": b'"a\\u0000b"',
    "raw NUL in string": b'"a\x00b"',
    "raw NUL": b"\x00",
    "invalid UTF-8": b'"\xff\xfe"',
    "overlong UTF-8": b'"\xc0\xaf"',
    "CESU-8 surrogate": b'"\xed\xa0\x80"',
    "BOM in string": '"\ufeffx"'.encode(),
    "raw BOM": b"\xef\xbb\xbf1",
    "CRLF in string": b'"a\\r\\nb"',
    "raw CR in string": b'"a\rb"',
    "empty array": b"[]",
    "array": b'[1, "x", null, {}, []]',
    "empty object": b"{}",
    "object": b'{"a": [1], "id": "5"}',
    "duplicate keys": b'{"id": "1", "id": [], "text": "a", "text": 5}',
    "nested 300": b"[" * 300 + b"]" * 300,
    "nested 100k arrays": b"[" * _DEEP + b"]" * _DEEP,
    "nested 100k objects": b'{"a":' * _DEEP + b"1" + b"}" * _DEEP,
    "huge string": b'"' + b"x" * (256 << 10) + b'"',
    "truncated": b'{"a": [1, "b',
}
PATHS = [(form, path) for form, doc in FORMS.items() for path in paths(doc)]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=()), max_size=20)  # lone surrogates included
)
json_values = st.recursive(
    _scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=16,
)


def _encode(value, ascii_only: bool) -> bytes:
    # ensure_ascii writes a lone surrogate as "\ud800"; without it, as CESU-8 bytes.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


raw_values = st.sampled_from(sorted(RAW_VALUES.values(), key=len)) | st.builds(
    _encode, json_values, st.booleans()
)
options_st = st.builds(
    ParseOptions,
    scrub_pii=st.booleans(),
    langs=st.sampled_from([frozenset(), frozenset({"en"})]),
    min_chars=st.sampled_from([0, 3]),
    drop_reposts=st.booleans(),
)


# ----------------------------------------------------------------------------- one line


def test_every_form_parses_cleanly_before_it_is_broken():
    for name, doc in FORMS.items():
        chunk = parse_one(render(doc), ParseOptions(scrub_pii=True))
        assert not chunk.rejects, (name, chunk.rejects)
    assert len(parse_one(render(FORMS["page"])).rows) == 2  # data and includes.tweets
    assert len(parse_one(render(FORMS["twarc2"])).rows) == 2  # the post and its quoted post


def test_every_field_replaced_dropped_or_duplicated_by_every_json_type():
    """Each place of each form x (each value of RAW_VALUES, dropped, a duplicate key): nearly
    10,000 lines, each accounted for on its own; their rows and rejects make valid tables."""
    rows, rejects, outcomes = [], [], Counter()
    options = ParseOptions(scrub_pii=True)
    cases = [("set", raw) for raw in RAW_VALUES.values()]
    cases += [("drop", b"")] + [("dup", RAW_VALUES[k]) for k in ("null", "array", "2**200")]
    for (form, path), (how, raw) in itertools.product(PATHS, cases):
        chunk = Chunk(URI)
        parse_line(mutated(FORMS[form], path, how, raw), 7, chunk, options)
        skipped = sum(v for k, v in chunk.counts.items() if k.startswith("skipped:"))
        assert chunk.counts["records_in"] >= 1, (form, path, how, raw[:40])
        assert chunk.counts["records_in"] == len(chunk.rows) + len(chunk.rejects) + skipped
        for r in chunk.rejects:
            check_reject(r, {7})
        rows += chunk.rows
        rejects += chunk.rejects
        outcomes.update(reasons(chunk))
    assert len(PATHS) * len(cases) > 9_000
    check_tables(rows, rejects)
    # a wrong type is named as one, never passed through or turned into a crash
    assert outcomes["wrong_type"] > 1000 and outcomes["json_invalid"] > 1000
    assert set(outcomes) <= {
        "json_invalid",
        "invalid_utf8",
        "wrong_type",
        "missing_field",
        "bad_timestamp",
        "unknown_payload",
        "not_an_object",
    }


@_FAST
@given(data=st.binary(max_size=2048), options=options_st)
def test_random_bytes(data, options):
    parse_one(data, options)


@_FAST
@given(value=json_values, ascii_only=st.booleans())
def test_any_json_document(value, ascii_only):
    chunk = parse_one(_encode(value, ascii_only))
    if not isinstance(value, dict):
        assert reasons(chunk) in (["not_an_object"], ["json_invalid"], ["invalid_utf8"])


@_FAST
@given(
    where=st.sampled_from(PATHS),
    how=st.sampled_from(["set", "drop", "dup"]),
    raw=raw_values,
    options=options_st,
)
def test_one_field_of_a_valid_post_replaced(where, how, raw, options):
    form, path = where
    parse_one(mutated(FORMS[form], path, how, raw), options)


@_FAST
@given(
    form=st.sampled_from(sorted(FORMS)), cut=st.integers(min_value=0), tail=st.binary(max_size=8)
)
def test_truncated_posts(form, cut, tail):
    line = render(FORMS[form])
    chunk = parse_one(line[: cut % (len(line) + 1)] + tail)
    if cut % (len(line) + 1) < len(line) and not tail:
        assert not chunk.rows  # a cut object is never half a post


_NOISE = [
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\r",
    b"\\",
    b'"',
    b"\xed\xa0\x80",
    b"\\u",
    b"{",
    b"]",
]


@_FAST
@given(
    form=st.sampled_from(sorted(FORMS)),
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.sampled_from(_NOISE) | st.binary(min_size=1, max_size=3),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_byte_noise_in_valid_posts(form, edits):
    line = bytearray(render(FORMS[form]))
    for at, noise, overwrite in edits:
        at %= len(line) + 1
        line[at : at + (len(noise) if overwrite else 0)] = noise
    parse_one(bytes(line))


def test_every_prefix_of_a_page_is_accounted_for():
    line = render(FORMS["page"])
    for cut in range(len(line)):
        chunk = parse_one(line[:cut])
        assert not chunk.rows and reasons(chunk) in (["json_invalid"], []), cut


_GOOD = {"id": "1", "text": "t", "created_at": T, "author_id": "9"}


def _page_of(tweet: dict) -> bytes:
    return render({"data": [tweet]})


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        # each of these raised (TypeError, unhashable or not iterable) out of parse_line
        (_page_of(_GOOD | {"referenced_tweets": [{"type": [1], "id": "3"}]}), "wrong_type"),
        (_page_of(_GOOD | {"entities": {"hashtags": 5}}), "wrong_type"),
        (_page_of(_GOOD | {"entities": {"urls": True}}), "wrong_type"),
        (_page_of(_GOOD | {"attachments": {"media_keys": 5}}), "wrong_type"),
        (_page_of(_GOOD | {"attachments": {"media_keys": [[1], {}]}}), None),
        (_page_of(_GOOD | {"attachments": {"media": [{"variants": 5}]}}), "wrong_type"),
        (
            _page_of(
                _GOOD
                | {
                    "attachments": {
                        "media": [
                            {
                                "variants": [
                                    {"content_type": "video/mp4", "bit_rate": "high"},
                                    {"content_type": "video/mp4", "bit_rate": 3},
                                ]
                            }
                        ]
                    }
                }
            ),
            "wrong_type",
        ),
        (render({"data": [_GOOD], "includes": {"users": 5}}), "wrong_type"),
        (render({"data": [_GOOD], "includes": {"users": [{"id": [1]}]}}), None),
        (render({"data": [_GOOD], "includes": {"media": [{"media_key": {}}]}}), None),
        (render({"data": [_GOOD], "includes": {"tweets": 5}}), "wrong_type"),
        # orjson reads 1024 levels but writes 254: the reject's payload raised
        (_page_of({"text": 1, "x": Raw(b"[" * 300 + b"]" * 300)}), "missing_field"),
        # stored, but no reader could turn these back into a datetime
        (render(_GOOD | {"created_at": "9999-12-31T23:59:59-14:00"}), "bad_timestamp"),
        (render(_GOOD | {"created_at": "0001-01-01T00:00:00+14:00"}), "bad_timestamp"),
        (render(_GOOD | {"edit_history_tweet_ids": [True]}), "wrong_type"),
        (render(_GOOD | {"edit_history_tweet_ids": ["1", ""]}), "wrong_type"),
        # 10,001 posts in one line: millions of rows or rejects in memory at once, before
        (render({"data": [{"text": 1}] * (MAX_POSTS_PER_LINE + 1)}), "too_many_posts"),
        (render(_GOOD | {"referenced_tweets": [_GOOD] * MAX_POSTS_PER_LINE}), "too_many_posts"),
        # the huge numbers: never a clamped or float count
        (render(_GOOD | {"like_count": Raw(str(2**200).encode())}), "wrong_type"),
        (render(_GOOD | {"like_count": Raw(str(2**63).encode())}), "wrong_type"),
        (render(_GOOD | {"like_count": Raw(b"1e400")}), "json_invalid"),
        (render(_GOOD | {"text": Raw(b'"\\ud800"')}), "json_invalid"),
        (render(_GOOD | {"text": Raw(b'"\xed\xa0\x80"')}), "invalid_utf8"),
        (b"\xef\xbb\xbf" + render(_GOOD), "json_invalid"),
        (b"[" * _DEEP + b"]" * _DEEP, "json_invalid"),
        (b'{"a":' * _DEEP + b"1" + b"}" * _DEEP, "json_invalid"),
    ],
)
def test_what_crashed_is_now_a_reject_with_a_reason(line, reason):
    chunk = parse_one(line, ParseOptions(scrub_pii=True))
    if reason is None:
        assert not chunk.rejects and len(chunk.rows) == 1
    else:
        assert reason in reasons(chunk), chunk.rejects
        assert all(r["payload"] for r in chunk.rejects if r["reason"] == reason)


def test_an_empty_error_list_still_accounts_for_its_line():
    chunk = parse_one(b'{"errors": []}')
    assert dict(chunk.counts) == {"records_in": 1, "skipped:empty_page": 1}


def test_duplicate_keys_take_the_last_value():
    chunk = parse_one(
        b'{"id": "1", "id": "2", "text": "a", "created_at": "%s", "author_id": "9"}' % T.encode()
    )
    assert [r["post_id"] for r in chunk.rows] == ["2"]


def test_nul_and_controls_never_reach_the_text():
    line = render(_GOOD | {"text": "a\x00b\u0007c", "author_username": "n\x00ul"})
    (row,) = parse_one(line).rows
    assert row["text"] == "abc" and row["author_username"] == "n\x00ul"  # names are kept as given


def test_scrub_pii_and_entities_are_linear_in_the_text():
    # one URL span scan per match made this quadratic: 400 kB took 92 s
    text = "http://a.b/c jane@example.com +1 415 555 0142 #tag @who $TSLA " * 10_000
    start = time.perf_counter()
    scrubbed, n = scrub_pii(text)
    parse_one(render(_GOOD | {"text": text}), ParseOptions(scrub_pii=True))
    assert n == 20_000 and time.perf_counter() - start < 10
    assert scrubbed.count("<email>") == scrubbed.count("<phone>") == 10_000


# ----------------------------------------------------------------------------- whole files


class Trickle(io.RawIOBase):
    """A raw stream that hands its bytes over in the given sizes (cycling), so block boundaries
    fall anywhere; the first read gives at least 4 bytes, the compression sniff."""

    def __init__(self, data: bytes, sizes=(1 << 20,)):
        self._data = memoryview(data)
        self._pos = 0
        self._sizes = itertools.cycle(sizes)
        self._first = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = max(next(self._sizes), 4 if self._first else 1)
        self._first = False
        n = min(len(buffer), size, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def by_lines(blob: bytes, options: ParseOptions, max_line_bytes: int) -> Chunk:
    """What ``parse_source`` must give for an uncompressed file: its lines, one by one."""
    pieces = blob.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    chunk = Chunk(URI)
    for number, piece in enumerate(pieces, 1):
        piece = piece[:-1] if piece.endswith(b"\r") else piece
        if len(piece) > max_line_bytes:
            chunk.reject(f"line {number}", "line_too_long", "too long", piece)
        else:
            parse_line(piece, number, chunk, options)
    return chunk


def sniffs_compressed(blob: bytes) -> bool:
    skippable = blob[1:4] == b"\x2a\x4d\x18" and blob[0] & 0xF0 == 0x50
    return blob.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd")) or skippable


def _compress(kind: str, blob: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(blob, 1)
    if kind == "zstd":
        return zstandard.ZstdCompressor(level=1).compress(blob)
    return blob


_line_st = st.one_of(
    st.sampled_from([render(doc) for doc in FORMS.values()]),
    st.builds(
        lambda where, how, raw: mutated(FORMS[where[0]], where[1], how, raw),
        st.sampled_from(PATHS),
        st.sampled_from(["set", "drop", "dup"]),
        raw_values,
    ),
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")),
    st.builds(_encode, json_values, st.booleans()),
    st.sampled_from([b"", b" ", b"\r", b"\xef\xbb\xbf", b"\x00", b"\t\t"]),
)


@_FAST
@given(
    lines=st.lists(_line_st, max_size=12),
    crlf=st.booleans(),
    trailing=st.booleans(),
    bom=st.booleans(),
    kind=st.sampled_from(["plain", "gzip", "zstd"]),
    sizes=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=4),
    max_line_bytes=st.sampled_from([64, 1000, 1 << 20]),
    chunk_records=st.sampled_from([1, 3, 10_000]),
    chunk_bytes=st.sampled_from([1, 500, 32 << 20]),
    options=options_st,
)
def test_files_parse_exactly_as_their_lines(
    lines, crlf, trailing, bom, kind, sizes, max_line_bytes, chunk_records, chunk_bytes, options
):
    blob = (b"\xef\xbb\xbf" if bom else b"") + (b"\r\n" if crlf else b"\n").join(lines)
    blob += b"\n" if trailing and lines else b""
    chunks = list(
        parse_source(
            Trickle(_compress(kind, blob), sizes),
            URI,
            options,
            max_line_bytes=max_line_bytes,
            chunk_records=chunk_records,
            chunk_bytes=chunk_bytes,
        )
    )
    total = check_parsed(chunks)
    if kind == "plain" and sniffs_compressed(blob):
        return  # bytes that begin like gzip or zstd are read as such: not lines to compare
    want = by_lines(blob, options, max_line_bytes)
    assert +total == +want.counts
    assert total["records_in"] >= blob.count(b"\n") + (0 if blob.endswith(b"\n") or not blob else 1)
    got_rows = [
        (p, n)
        for c in chunks
        for p, n in zip(
            *c.posts.select(["post_id", "source_line"]).to_pydict().values(), strict=True
        )
    ]
    assert got_rows == [(r["post_id"], r["source_line"]) for r in want.rows]
    got_rejects = [(r["locator"], r["reason"]) for c in chunks for r in c.rejects]
    assert got_rejects == [(r["locator"], r["reason"]) for r in want.rejects]


@_FAST
@given(
    lines=st.lists(_line_st, min_size=1, max_size=8),
    kind=st.sampled_from(["gzip", "zstd"]),
    cut=st.floats(min_value=0, max_value=1),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=3),
    junk=st.binary(max_size=16),
)
def test_broken_compressed_files_keep_what_was_read(lines, kind, cut, flips, junk):
    """Cut short, corrupted or followed by junk: the lines read before the break are kept and
    the break is one reject, the last one (gzip's corrupt deflate data raised zlib.error)."""
    blob = b"\n".join(lines) + b"\n"
    data = bytearray(_compress(kind, blob))
    for at, byte in flips:
        data[at % len(data)] = byte
    data = bytes(data[: max(4, int(len(data) * cut))]) + junk
    chunks = list(parse_source(Trickle(data), URI, ParseOptions(), max_line_bytes=1 << 20))
    total = check_parsed(chunks)
    rejects = [r for c in chunks for r in c.rejects]
    breaks = [i for i, r in enumerate(rejects) if r["reason"] == "read_error"]
    assert breaks in ([], [len(rejects) - 1])
    assert total["records_in"] >= 1 or not data


def test_a_corrupt_deflate_stream_is_a_read_error():
    good = gzip.compress(b'{"a": 1}\n' * 1000)
    bad = good[:10] + bytes([good[10] | 0b110]) + good[11:]  # deflate block type 3: invalid
    chunks = list(parse_source(io.BytesIO(bad), URI, ParseOptions(), max_line_bytes=1000))
    check_parsed(chunks)
    (reject,) = [r for c in chunks for r in c.rejects]
    assert reject["reason"] == "read_error" and reject["message"].startswith("error: Error -3")


def _zstd_variants(blob: bytes) -> dict[str, bytes]:
    stream = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    parts = [stream.compress(blob[i : i + 777]) for i in range(0, len(blob), 777)]
    skippable = b"\x50\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"hello"
    return {
        "one frame": zstandard.ZstdCompressor().compress(blob),
        "no size, checksum": zstandard.ZstdCompressor(
            write_checksum=True, write_content_size=False
        ).compress(blob),
        "streamed": b"".join([*parts, stream.flush()]),
        "two frames": zstandard.ZstdCompressor().compress(blob[:999])
        + zstandard.ZstdCompressor(level=19).compress(blob[999:]),
        # pzstd writes a skippable frame before each frame
        "skippable first": skippable + zstandard.ZstdCompressor().compress(blob),
    }


def test_a_zstd_file_cut_anywhere_inside_a_frame_is_a_read_error():
    """python-zstandard's reader ends quietly where its input ends: a cut .zst lost its tail
    without a word. Now every cut but one between frames ends in a read_error."""
    blob = b"\n".join(render(_GOOD | {"id": str(i), "text": f"post {i}"}) for i in range(60))
    blob += b"\n"
    for name, data in _zstd_variants(blob).items():
        full = list(parse_source(io.BytesIO(data), URI, ParseOptions(), max_line_bytes=1 << 20))
        assert check_parsed(full) == Counter(records_in=60), name
        boundaries = {len(data)}
        if name == "two frames":
            boundaries.add(len(zstandard.ZstdCompressor().compress(blob[:999])))
        if name == "skippable first":
            boundaries.add(13)
        for cut in range(4, len(data)):
            chunks = list(
                parse_source(io.BytesIO(data[:cut]), URI, ParseOptions(), max_line_bytes=1 << 20)
            )
            check_parsed(chunks)
            rejects = [r["reason"] for c in chunks for r in c.rejects]
            ends = rejects[-1:] == ["read_error"]
            assert ends != (cut in boundaries), (name, cut, rejects)


def test_a_limit_long_line_with_crlf_is_kept_wherever_the_blocks_fall():
    post = render(_GOOD | {"text": "x" * 200})
    blob = post + b"\r\n" + post + b"\r\n"
    for size in range(1, len(post) + 3):
        chunks = list(
            parse_source(Trickle(blob, [size]), URI, ParseOptions(), max_line_bytes=len(post))
        )
        assert check_parsed(chunks) == Counter(records_in=2), size


def test_chunks_are_bounded_in_bytes_as_well_as_records():
    post = render(_GOOD | {"text": "y" * (100 << 10)})
    blob = b"\n".join([post] * 40)
    chunks = list(
        parse_source(
            io.BytesIO(blob), URI, ParseOptions(), max_line_bytes=1 << 20, chunk_bytes=1 << 20
        )
    )
    assert len(chunks) == 4 and [c.posts.num_rows for c in chunks] == [11, 11, 11, 7]
    assert check_parsed(chunks)["records_in"] == 40


# ----------------------------------------------------------------------------- bombs and long lines


def _bomb(kind: str, content: bytes) -> bytes:
    """2 GiB of ``content`` in a few MiB: 128 gzip members (or zstd frames) of 16 MiB each, so
    the bomb is built in a blink and never exists decompressed."""
    block = content * ((16 << 20) // len(content))
    if kind == "gzip":
        member = gzip.compress(block, 9)
    else:
        member = zstandard.ZstdCompressor(level=19).compress(block)
    return member * 128


def _peak(run) -> tuple[int, int, object]:
    """Peak bytes Python allocated while ``run`` ran, the growth of the process's max RSS, and
    what ``run`` returned."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024
    return peak, grown, result


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
@pytest.mark.parametrize("content", [b"\0", b" " * 4095 + b"\n"], ids=["zeros", "blank_lines"])
def test_compression_bombs_are_rejected_in_bounded_memory(kind, content):
    bomb = io.BytesIO(_bomb(kind, content))
    peak, grown, chunks = _peak(
        lambda: list(parse_source(bomb, URI, ParseOptions(), max_line_bytes=1 << 20))
    )
    total = check_parsed(chunks)
    rejects = [r for c in chunks for r in c.rejects]
    assert [r["reason"] for r in rejects] == ["decompressed_too_large"]
    (reject,) = rejects
    assert reject["message"].startswith(f"{URI}: ") and "max_expansion" in reject["message"]
    decompressed = int(re.search(r"(\d+) bytes decompressed", reject["message"]).group(1))
    # past the 16 MiB grace, 200 times what the decoder pulled (zstd reads 128 KiB ahead)
    assert 16 << 20 < decompressed < 32 << 20
    if content.endswith(b"\n"):  # the lines before the block that passed the limit are counted
        assert (
            (16 << 20) // len(content)
            <= total["skipped:blank_line"]
            <= decompressed // len(content)
        )
    assert peak < 16 << 20 and grown < 256 << 20, (peak, grown)


def test_an_absolute_cap_stops_even_an_ordinary_file():
    post = render(_GOOD | {"text": "z" * 2000})
    blob = gzip.compress(b"\n".join([post] * 3000) + b"\n")  # 6 MiB, 200:1 away from any ratio
    chunks = list(
        parse_source(
            io.BytesIO(blob),
            URI,
            ParseOptions(),
            max_line_bytes=1 << 20,
            max_decompressed_bytes=2 << 20,
            max_expansion=None,
        )
    )
    total = check_parsed(chunks)
    rejects = [r for c in chunks for r in c.rejects]
    assert [r["reason"] for r in rejects] == ["decompressed_too_large"]
    assert "max_decompressed_bytes" in rejects[0]["message"]
    kept = sum(c.posts.num_rows for c in chunks)
    assert 0 < kept < 3000 and total["records_in"] == kept + 1
    assert rejects[0]["locator"] == f"line {kept + 1}"


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_the_ratio_guard_spares_ordinary_compressible_files(kind):
    # one post with counting ids: more compressible than any real stream (107:1 with zstd)
    post = b'{"id": "%d", "text": "ok", "created_at": "2026-11-20T00:00:00Z", "author_id": "1"}'
    blob = b"\n".join(post % i for i in range(10**6, 10**6 + 300_000)) + b"\n"
    stream = open_decompressed(io.BytesIO(_compress(kind, blob)))
    assert sum(line.length for line in read_lines(stream, 1 << 20)) == len(blob) - 300_000


class Endless(io.RawIOBase):
    """``size`` bytes of one byte value, made up as they are read."""

    def __init__(self, size: int, byte: bytes = b"x"):
        self._left = size
        self._fill = byte * (1 << 20)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left, len(self._fill))
        buffer[:n] = self._fill[:n]
        self._left -= n
        return n


@pytest.mark.parametrize("kind", ["plain", "gzip"])
def test_an_over_long_line_without_newline_streams_past(kind):
    size = 256 << 20
    if kind == "plain":
        raw = Endless(size)
    else:  # 256 MiB of "x" in 16 MiB gzip members; the ratio guard is off to reach the end
        raw = io.BytesIO(gzip.compress(b"x" * (16 << 20), 1) * (size >> 24))
    peak, grown, chunks = _peak(
        lambda: list(
            parse_source(raw, URI, ParseOptions(), max_line_bytes=1 << 20, max_expansion=None)
        )
    )
    check_parsed(chunks)
    (reject,) = [r for c in chunks for r in c.rejects]
    assert (reject["reason"], reject["locator"]) == ("line_too_long", "line 1")
    assert reject["message"].startswith(f"{size} bytes") and reject["payload"] == b"x" * (64 << 10)
    assert peak < 8 << 20 and grown < 256 << 20, (peak, grown)


def test_a_long_line_in_small_blocks_costs_its_length_not_its_square():
    # gzip hands over ~14 KiB per read: gluing a 16 MiB line took 2 s by copying, per line
    blob = b"x" * (16 << 20) + b"\n"
    start = time.perf_counter()
    lines = list(read_lines(open_decompressed(Trickle(blob, [8192])), 32 << 20))
    assert [line.length for line in lines] == [16 << 20]
    assert time.perf_counter() - start < 3


def test_parse_posts_checks_its_limits():
    with pytest.raises(ValueError, match=r"max_expansion=0.5: expected a ratio >= 1 or None"):
        ParsePosts(ParseOptions(), max_expansion=0.5)
    with pytest.raises(ValueError, match=r"max_decompressed_bytes=0: expected a positive size"):
        ParsePosts(ParseOptions(), max_decompressed_bytes=0)
    ParsePosts(ParseOptions(), max_decompressed_bytes=1 << 30, max_expansion=None)


# ----------------------------------------------------------------------------- the long fuzz run


@pytest.mark.slow
@pytest.mark.timeout(_FUZZ_SECONDS + 300)
@pytest.mark.skipif(not _FUZZ, reason="the long fuzz run: set SHARDSMITH_FUZZ=1")
def test_post_lines_survive_coverage_guided_fuzzing(tmp_path):
    """tests/fuzz/fuzz_post_lines.py for SHARDSMITH_FUZZ_SECONDS (default 600); a corpus kept in
    SHARDSMITH_FUZZ_CORPUS carries over between runs (default: a fresh one, seeded)."""
    pytest.importorskip("atheris", reason="pip install atheris")
    corpus = Path(os.environ.get("SHARDSMITH_FUZZ_CORPUS") or tmp_path / "corpus")
    corpus.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parent / "fuzz" / "fuzz_post_lines.py"),
            str(corpus),
            f"-max_total_time={_FUZZ_SECONDS}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=_FUZZ_SECONDS + 240,
    )
    found = sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))
    )
    assert run.returncode == 0 and not found, (found, run.stderr[-6000:])
    assert "stat::number_of_executed_units" in run.stderr  # the fuzzer really ran


def test_an_empty_author_object_without_author_id_is_a_missing_field_reject():
    # Found by a fast-decoding experiment: `author and ...` gave the empty dict itself as the
    # author id, and looking it up crashed the parser (unhashable dict).
    line = b'{"id":"1","text":"t","created_at":"2026-11-20T08:00:00.000Z","author":{}}'
    [chunk] = parse_source(
        io.BytesIO(line + b"\n"), "x.jsonl", ParseOptions(), max_line_bytes=1 << 20
    )
    assert chunk.posts.num_rows == 0
    assert [(r["reason"], r["message"]) for r in chunk.rejects] == [
        ("missing_field", "author_id: missing")
    ]
