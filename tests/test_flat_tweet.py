"""The fast path of line parsing (``transforms.posts.flat_tweet``) gives exactly what the general
parser gives: the same rows, rejects (with their messages), skips and counts, line for line.

``parse_line`` tries the fast path first; ``parse_line_general`` never does. Every comparison
here runs both on the same lines, with the same options and the same repeats table."""

from __future__ import annotations

import io
import itertools
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_hostile_posts import (
    _FAST,
    FORMS,
    MEDIA,
    PATHS,
    RAW_VALUES,
    TWEET,
    USER,
    Trickle,
    _encode,
    json_values,
    mutated,
    options_st,
    paths,
    raw_values,
    render,
)

from transforms.posts.flat_tweet import fast_rows
from transforms.posts.lines import open_decompressed, read_lines, valid_utf8
from transforms.posts.parse import (
    MAX_POSTS_PER_LINE,
    Chunk,
    ParseOptions,
    parse_line,
    parse_line_general,
)
from transforms.posts.parse_posts import parse_source
from transforms.posts.repeats import SeenPosts
from transforms.posts.rows import rows_to_table
from transforms.samples.firehose import api_forms, firehose_lines
from transforms.samples.posts import generate_posts_sample

URI = "mem://fast/in.jsonl"
# test_hostile_posts' page has errors (the fast path leaves it to the general parser): the same
# page without them is the one the fast path takes, and is broken every way here too.
FAST_FORMS = FORMS | {"page_of_posts": {k: v for k, v in FORMS["page"].items() if k != "errors"}}
FAST_PATHS = PATHS + [("page_of_posts", path) for path in paths(FAST_FORMS["page_of_posts"])]
_OPTIONS = [
    ParseOptions(),
    ParseOptions(scrub_pii=True),
    ParseOptions(langs=frozenset({"en"}), min_chars=12, drop_reposts=True),
]


def both(lines: list[bytes], options: ParseOptions, *, repeats: bool = False) -> tuple:
    """The chunks ``parse_line`` and ``parse_line_general`` make of ``lines``."""
    fast = Chunk(URI, seen=SeenPosts() if repeats else None)
    general = Chunk(URI, seen=SeenPosts() if repeats else None)
    for number, line in enumerate(lines, 1):
        parse_line(line, number, fast, options)
        parse_line_general(line, number, general, options)
    return fast, general


def assert_same(fast: Chunk, general: Chunk, what) -> None:
    assert fast.rows == general.rows, what
    assert fast.rejects == general.rejects, what
    assert fast.counts == general.counts, what
    assert fast.deletes == general.deletes, what
    assert fast.events == general.events, what


# JSON numbers beyond a double's range: orjson cannot hold them, so a line with one is
# json_invalid for the general parser; the fast path skips the fields the schema does not read
# without converting them (transforms/posts/flat_tweet.py says so).
_OUT_OF_RANGE = {RAW_VALUES[k] for k in ("1e400", "-1e400", "10k digits")}


def assert_same_or_unread(form: str, path: tuple, how: str, raw: bytes, options) -> None:
    """Both parsers agree on the line, except where it holds an out-of-range number in a field
    the fast path does not read: there the fast path gives the post as if that field were not
    there at all."""
    line = mutated(FAST_FORMS[form], path, how, raw)
    fast, general = both([line], options)
    what = (form, path, how, raw[:40])
    if raw in _OUT_OF_RANGE and how != "drop" and fast.rows != general.rows:
        assert [r["reason"] for r in general.rejects] == ["json_invalid"], what
        fast_without, _ = both([mutated(FAST_FORMS[form], path, "drop")], options)
        assert fast.rows == fast_without.rows and fast.rows, what
        assert fast.counts == fast_without.counts, what
        return
    assert_same(fast, general, what)


def test_the_fast_path_takes_the_common_shapes():
    """Not a vacuous comparison: twarc2 lines, plain tweets with public_metrics, filtered-stream
    lines and pages of posts go the fast way; pages with errors, events, pages of other things
    and the plain form of other tools do not."""
    for form in ("twarc2", "stream", "page_of_posts"):
        assert fast_rows(render(FAST_FORMS[form]), URI, 1, 10_000) is not None, form
    for form in ("page", "plain", "delete", "stream_delete", "counts", "errors"):
        assert fast_rows(render(FORMS[form]), URI, 1, 10_000) is None, form
    lines = firehose_lines(300, seed=3)
    pages, stream = api_forms(lines)
    for form in (lines, pages, stream):
        assert all(fast_rows(line, URI, 1, 10_000) is not None for line in form)


_PAGE = FAST_FORMS["page_of_posts"]
_INCLUDED = _PAGE["includes"]["tweets"][0]


def _page(*, data=None, **includes) -> bytes:
    """The page the fast path takes, with ``data`` and entries of ``includes`` replaced."""
    return render(
        {"data": [TWEET] if data is None else data, "includes": _PAGE["includes"] | includes}
    )


# Lines of the page and stream forms the fast path must leave to the general parser: each is
# something it would reject, skip, count, convert or join otherwise.
_DECLINED = {
    "errors": render(FORMS["page"]),
    "empty errors": render(_PAGE | {"errors": []}),
    "user without username": _page(users=[{"id": "9", "name": "Road"}]),
    "null username": _page(users=[USER | {"username": None}]),
    "author not included": _page(users=[USER | {"id": "8"}]),
    "no includes": render({"data": [TWEET]}),
    "includes not an object": render({"data": [TWEET], "includes": [USER]}),
    "a user not an object": _page(users=[USER, 5]),
    "author inlined in a page": _page(data=[TWEET | {"author": USER}]),
    "media key not included": _page(media=[]),
    "media key not a string": _page(data=[TWEET | {"attachments": {"media_keys": [3]}}]),
    "media width a string": _page(media=[MEDIA | {"width": "1280"}]),
    "bad created_at in includes.tweets": _page(tweets=[_INCLUDED | {"created_at": "today"}]),
    "includes tweet without text": _page(
        tweets=[{k: v for k, v in _INCLUDED.items() if k != "text"}]
    ),
    "post id a number": _page(data=[TWEET | {"id": 101}]),
    "author id a number": _page(data=[TWEET | {"author_id": 9}]),
    "user id a number": _page(users=[USER | {"id": 9}]),
    "reference id a number": _page(
        data=[TWEET | {"referenced_tweets": [{"type": "quoted", "id": 5}]}]
    ),
    "empty page": render({"data": [], "includes": _PAGE["includes"]}),
    "page of users": render({"data": [USER], "meta": {}}),
    "a tweet not an object": _page(data=[TWEET, 5]),
    "stream line without text": render({"data": {"id": "1"}, "includes": _PAGE["includes"]}),
    "stream event": render(FORMS["stream_delete"]),
    "delete action": render(_PAGE | {"action": "delete", "id": "7"}),
    "too many posts": _page(data=[TWEET] * MAX_POSTS_PER_LINE),  # with includes.tweets
}


@pytest.mark.parametrize("name", sorted(_DECLINED))
def test_what_the_fast_path_declines_parses_as_before(name):
    line = _DECLINED[name]
    assert fast_rows(line, URI, 1, MAX_POSTS_PER_LINE) is None
    for options in _OPTIONS:
        assert_same(*both([line], options), (name, options))


def test_pages_join_as_the_general_parser_joins():
    """The last user or media of an id wins; unused includes change nothing; a page tweet with
    its media inlined keeps those; tweets repeated in a page are counted as repeats; a line
    whose "data" does not come first is a page too."""
    second = USER | {"username": "road_2"}
    stream = FAST_FORMS["stream"]
    lines = [
        _page(users=[USER, second]),
        _page(users=[{"id": "1", "username": "other"}, USER], media=[MEDIA | {"width": 1}, MEDIA]),
        _page(data=[TWEET | {"attachments": {"media": [MEDIA], "media_keys": ["none"]}}]),
        _page(data=[TWEET, TWEET | {"id": "102"}, TWEET]),
        render({"matching_rules": stream["matching_rules"], **stream}),
    ]
    assert all(fast_rows(line, URI, 1, MAX_POSTS_PER_LINE) is not None for line in lines)
    fast, general = both(lines, ParseOptions())
    assert_same(fast, general, lines)
    got = [
        (r["post_id"], r["author_username"], [m["width"] for m in r["media"]]) for r in fast.rows
    ]
    assert got == [
        *[("101", "road_2", [1280]), ("100", "road_2", [])],
        *[("101", "road_en", [1280]), ("100", "road_en", [])],
        *[("101", "road_en", [1280]), ("100", "road_en", [])],
        *[("101", "road_en", [1280]), ("102", "road_en", [1280])],
        *[("101", "road_en", [1280]), ("100", "road_en", [])],
        ("101", "road_en", [1280]),
    ]
    fast, general = both(lines, ParseOptions(), repeats=True)
    assert general.counts["deduplicated:post_id"] == 8
    assert_same(fast, general, lines)


@pytest.fixture(scope="module")
def demo_lines(tmp_path_factory) -> list[bytes]:
    """Every line of the demo's post sample (pages, stream lines, twarc2, plain; events)."""
    root = tmp_path_factory.mktemp("sample")
    generate_posts_sample(str(root))
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".jsonl" in p.name):
        with path.open("rb") as f:
            lines += [line.data for line in read_lines(open_decompressed(f), 16 << 20)]
    assert len(lines) > 100
    return lines


@pytest.mark.parametrize("options", _OPTIONS, ids=["default", "scrub_pii", "filters"])
def test_realistic_streams_parse_the_same(options, demo_lines):
    """Generated twarc2 firehose lines (repeating popular posts, media, edits) and the demo
    sample, with the per-source repeats table that ingest uses."""
    lines = firehose_lines(2_000, seed=11)
    pages, stream = api_forms(lines[:1_000], per_page=50)
    lines += pages + stream + demo_lines
    fast, general = both(lines, options, repeats=True)
    assert len(general.rows) > 200 and general.counts["deduplicated:post_id"] > 100
    assert_same(fast, general, options)


def test_the_hand_checked_lines_parse_the_same():
    lines = (Path(__file__).parent / "data" / "hand_checked.jsonl").read_bytes().splitlines()
    for options in _OPTIONS:
        assert_same(*both(lines, options), options)


def test_every_field_of_every_form_broken_every_way_parses_the_same():
    """Each place of each form set to each hostile JSON value, dropped or given a duplicate
    key: the fast path declines or makes what the general parser makes."""
    cases = [("set", raw) for raw in RAW_VALUES.values()]
    cases += [("drop", b"")] + [("dup", raw) for raw in RAW_VALUES.values()]
    taken = 0
    taken = Counter()
    for (form, path), (how, raw) in itertools.product(FAST_PATHS, cases):
        line = mutated(FAST_FORMS[form], path, how, raw)
        taken[form] += fast_rows(line, URI, 7, 10_000) is not None
        assert_same_or_unread(form, path, how, raw, ParseOptions(scrub_pii=True))
    # The fast path really took (and so was checked on) broken lines of each form it takes.
    assert min(taken["twarc2"], taken["stream"], taken["page_of_posts"]) > 500, taken


@_FAST
@given(
    where=st.sampled_from(FAST_PATHS),
    how=st.sampled_from(["set", "drop", "dup"]),
    raw=raw_values,
    options=options_st,
)
def test_any_value_anywhere_parses_the_same(where, how, raw, options):
    assert_same_or_unread(*where, how, raw, options)


@_FAST
@given(value=json_values, ascii_only=st.booleans())
def test_any_json_document_parses_the_same(value, ascii_only):
    line = _encode(value, ascii_only)
    assert_same(*both([line], ParseOptions()), line)


# ----------------------------------------------------------------------------- UTF-8 by block


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_utf8ish = st.lists(
    st.sampled_from(
        [b"a", b"\n", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80"]
    )
    | st.binary(max_size=3),
    max_size=40,
).map(b"".join)


@_FAST
@given(data=_utf8ish)
def test_arrow_checks_utf8_as_strictly_as_python(data):
    """Overlong forms, surrogates (CESU-8), cut sequences, stray continuation bytes."""
    assert valid_utf8(data) == _decodes(data)
    # A view into a block, as read_lines checks it: only the viewed bytes count.
    view = memoryview(b"\xff" + data + b"\xe2")[1:-1]
    assert valid_utf8(view) == _decodes(data)


@_FAST
@given(data=_utf8ish, sizes=st.lists(st.integers(1, 64), min_size=1, max_size=4))
def test_lines_marked_utf8_are_utf8(data, sizes):
    """Whatever the block boundaries, a line ``read_lines`` marks as checked decodes."""
    for line in read_lines(Trickle(data, sizes), 1 << 20):  # as it comes, never decompressed
        assert not line.utf8 or _decodes(line.data), line.data


def test_a_plain_file_is_checked_block_by_block():
    """Only lines cut by a block boundary are left to be checked one by one."""
    lines = firehose_lines(400, seed=2)
    lines[7] = lines[7].replace(b'"lang"', b'"\xff"', 1)  # an unread field, bad bytes
    blob = b"\n".join(lines) + b"\n"
    got = list(read_lines(open_decompressed(Trickle(blob, [1 << 20])), 16 << 20))
    assert [line.data for line in got] == lines
    block_of_7 = [i for i, line in enumerate(got) if not line.utf8]
    assert 7 in block_of_7 and len(block_of_7) < len(lines) // 2  # the bad block only
    _, general = both(lines, ParseOptions())
    assert [r["reason"] for r in general.rejects] == ["invalid_utf8"]
    parsed = list(parse_source(io.BytesIO(blob), URI, ParseOptions(), max_line_bytes=16 << 20))
    assert [r for c in parsed for r in c.rejects] == general.rejects
    posts = pa.concat_tables(c.posts for c in parsed)
    assert posts.to_pylist() == rows_to_table(general.rows).to_pylist()
