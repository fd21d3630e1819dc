"""Entities extracted from a post's text follow twitter-text's rules.

Every case of twitter-text's conformance suite (tests/data/twitter_text_extract.yml: the
mentions, urls, hashtags, hashtags_from_astral and cashtags sections) is a test of its own; then
each rule of transforms/posts/entities.py by itself, what happens where entities overlap, that
the quick scan for URLs finds what the plain pattern finds, and that no text takes quadratic time.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
import yaml

from transforms.posts import entities as E
from transforms.posts.text import extract_entities

_SUITE = yaml.safe_load(
    (Path(__file__).parent / "data" / "twitter_text_extract.yml").read_text("utf-8")
)["tests"]
_FIELD = {
    "mentions": "mentions",
    "urls": "urls",
    "hashtags": "hashtags",
    "hashtags_from_astral": "hashtags",
    "cashtags": "cashtags",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


_CASES = [
    pytest.param(section, case, id=f"{section}-{i:02d}-{_slug(case['description'])}")
    for section in _FIELD
    for i, case in enumerate(_SUITE[section])
]


def test_the_suite_has_every_case_of_the_five_sections():
    counts = {section: len(_SUITE[section]) for section in _FIELD}
    assert counts == {
        "mentions": 23,
        "urls": 91,
        "hashtags": 65,
        "hashtags_from_astral": 3,
        "cashtags": 8,
    }


@pytest.mark.parametrize(("section", "case"), _CASES)
def test_twitter_text_conformance(section, case):
    found = extract_entities(case["text"])
    assert getattr(found, _FIELD[section]) == case["expected"], case["description"]


def _e(text: str) -> dict[str, list[str]]:
    found = extract_entities(text)
    return {
        k: getattr(found, k)
        for k in ("hashtags", "mentions", "cashtags", "urls")
        if getattr(found, k)
    }


# ----------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        # a host must end in a known top-level domain, any case
        (
            "see http://example.COM/x and HTTPS://Example.org",
            ["http://example.COM/x", "HTTPS://Example.org"],
        ),
        ("http://no-tld http://localhost:8080/x tar.bz2 file.txt", []),
        (
            "http://例え.みんな/ and http://xn--p1ai.xn--p1ai/",
            ["http://例え.みんな/", "http://xn--p1ai.xn--p1ai/"],
        ),
        # ... not followed by a letter, digit, "-", "+" or "@"
        ("http://domain.com-typo domain.com+x john@doe.com doe.community", ["doe.community"]),
        # a port, a path, a query
        ("x http://h.com:8080/a/b?q=1&r=2#f y", ["http://h.com:8080/a/b?q=1&r=2#f"]),
    ],
)
def test_url_host_and_top_level_domain(text, urls):
    assert extract_entities(text).urls == urls


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("(see http://x.com/a).", ["http://x.com/a"]),
        (
            "http://x.com/a, http://x.com/b. http://x.com/c! 'http://x.com/d'",
            ["http://x.com/a", "http://x.com/b", "http://x.com/c", "http://x.com/d"],
        ),
        (
            "http://x.com/a- http://x.com/a+ http://x.com/a_",
            ["http://x.com/a-", "http://x.com/a+", "http://x.com/a_"],
        ),
        # balanced parentheses stay, one level nested too; an unbalanced one ends the URL
        (
            "http://en.wikipedia.org/wiki/Primer_(film) ok",
            ["http://en.wikipedia.org/wiki/Primer_(film)"],
        ),
        ("http://x.com/a_(b_(c))_d)", ["http://x.com/a_(b_(c))_d"]),
        ("(http://x.com/a_(b)", ["http://x.com/a_(b)"]),
        # twitter-text's grouping: parentheses after a character a path cannot end with go
        ("http://x.com/a;(415) http://x.com/a(415)", ["http://x.com/a", "http://x.com/a(415)"]),
        # a query ends in a letter, digit or one of -_&=#/
        (
            "http://x.com/?q=a. http://x.com?q=a! http://x.com/?q=a-",
            ["http://x.com/?q=a", "http://x.com?q=a", "http://x.com/?q=a-"],
        ),
        # Cyrillic and accented Latin letters in a path, an en dash
        (
            "http://x.ru/Русские_слова http://x.fr/café http://x.org/a–b",
            ["http://x.ru/Русские_слова", "http://x.fr/café", "http://x.org/a–b"],
        ),
    ],
)
def test_url_path_ends_like_twitter_texts(text, urls):
    assert extract_entities(text).urls == urls


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        # without a scheme: a known TLD, not after "-", "_", ".", "/"
        (
            "example.com www.example.co.uk t.co/abc",
            ["example.com", "www.example.co.uk", "t.co/abc"],
        ),
        (" -example.com _example.com /example.com .example.com", []),
        ("a-example.com", ["a-example.com"]),
        # not after a letter, digit, @, #, $ (with or without a scheme)
        ("xhttp://a.com @a.com #a.com $a.com 1http://a.com", []),
        # only its ASCII host counts: a URL ends where Chinese or Japanese begins, and starts there
        ("日本語example.com/path中国語", ["example.com/path"]),
        ("http://twitter.com/これは日本語です。", ["http://twitter.com/"]),
        ("ELPAÍS.com", ["ELPAÍS.com"]),
    ],
)
def test_url_without_a_scheme_and_where_urls_start(text, urls):
    assert extract_entities(text).urls == urls


def test_url_labels_at_most_63_characters_once_punycoded():
    assert extract_entities("http://" + "a" * 63 + ".com").urls == ["http://" + "a" * 63 + ".com"]
    assert extract_entities("http://" + "a" * 64 + ".com").urls == []
    # 27 different kanji punycode to "xn--" and 59 characters, 28 to 66
    kanji = "".join(chr(0x4E00 + 37 * i) for i in range(28))
    assert extract_entities(f"http://{kanji[:27]}.com").urls == [f"http://{kanji[:27]}.com"]
    assert extract_entities(f"http://{kanji}.com").urls == []
    # so Japanese run straight into a host name can take it past the limit: no URL at all
    assert extract_entities(f"{kanji}example.com").urls == []
    assert extract_entities(f"{kanji[:10]}example.com").urls == ["example.com"]
    # a punycode host has only ASCII
    assert extract_entities("http://xn--はじめよう.com/").urls == []


def test_tco_links_stop_after_their_slug_of_at_most_40_characters():
    assert _e("http://t.co/abc's http://t.co/def- http://t.co/ghi?amp=1") == {
        "urls": ["http://t.co/abc", "http://t.co/def", "http://t.co/ghi?amp=1"]
    }
    assert extract_entities("https://t.co/" + "a" * 40).urls == ["https://t.co/" + "a" * 40]
    assert extract_entities("https://t.co/" + "a" * 41).urls == []


# ----------------------------------------------------------------------------- mentions


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("@a hi @b_1, (cc @c) ＠wide", ["a", "b_1", "c", "wide"]),
        # after a letter, digit or one of _!#$%&*@ there is no mention (e-mail addresses)
        ("jane@example.com x_@a !@b #@c $@d %@e &@f *@g @@h", []),
        # ... but "RT", "rt:" (any case) may come right before, at the start or after a space
        ("RT@a rt:@b Rt @c rT:@d xrt@e .rt@f", ["a", "b", "c", "d"]),
        # after CJK text, or other punctuation
        ("の@a。@b-@c/@d", ["a", "b", "c", "d"]),
        # not followed by @, an accented Latin letter or "://"
        ("@a@b @ìn @http://x.com @ok", ["ok"]),
        # 1-20 characters: a longer name gives its first 20
        ("@" + "a" * 25, ["a" * 20]),
    ],
)
def test_mention_rules(text, mentions):
    assert extract_entities(text).mentions == mentions


def test_a_list_is_no_mention_but_takes_its_place():
    assert _e("@user/list-name and @user") == {"mentions": ["user"]}
    # what a match took (the list's "-") cannot come before the next one
    assert extract_entities("@a/b-@c").mentions == []
    assert extract_entities("@a/b- @c").mentions == ["c"]


# ----------------------------------------------------------------------------- hashtags


@pytest.mark.parametrize(
    ("text", "hashtags"),
    [
        (
            "#tag #東京 #भारत #İstanbul #café #a1 #1a ＃wide",
            ["tag", "東京", "भारत", "İstanbul", "café", "a1", "1a", "wide"],
        ),
        # at least one letter or mark: digits, "_" and joiners alone are no tag
        ("#1 #123 #_ #1_2 #〃 #各〃 #・", ["各〃"]),
        # not after a letter, digit, mark or "&" (HTML entities like &#39;)
        ("a#b 1#c é#d &#39; &#x", []),
        # after emoji, with a variation selector, a skin tone or a zero-width joiner
        ("✌#a ✌\ufe0e#b ✌\ufe0f#c ✌🏿#d 👨\u200d👩\u200d👧#e", ["a", "b", "c", "d", "e"]),
        # the keycap #️⃣ is no hash sign
        ("#\ufe0f\u20e3 #\u20e3a", []),
        # not followed by a hash sign or "://"
        ("#a#b #http://x.com #c", ["c"]),
        # punctuation ends a tag, Japanese punctuation too
        ("#a, #b. #c! #日本語。", ["a", "b", "c", "日本語"]),
        # joiners inside a tag: ZWNJ, ZWJ, Hebrew geresh, middle dot, wave dash...
        (
            "#می\u200cخواهم #ශ්\u200dරී #מ״כ #il·lusió #メ〜テレ",
            ["می\u200cخواهم", "ශ්\u200dරී", "מ״כ", "il·lusió", "メ〜テレ"],
        ),
        # astral letters and digits
        ("#\U00020021 #A\U000104a0", ["\U00020021", "A\U000104a0"]),
    ],
)
def test_hashtag_rules(text, hashtags):
    assert extract_entities(text).hashtags == hashtags


# ----------------------------------------------------------------------------- cashtags


@pytest.mark.parametrize(
    ("text", "cashtags"),
    [
        ("$A $TSLA $abcdef $BRK.B $RDS_A", ["A", "TSLA", "abcdef", "BRK.B", "RDS_A"]),
        # 1-6 letters, then . or _ and 1-2 more; no digits
        ("$abcdefg $5 $T3 $TE5T", []),
        ("$AB.CDE", ["AB"]),  # a longer suffix is no part of it; "." is punctuation
        # at the start or after a space; followed by the end, a space or punctuation
        ("x$A ($B $C, $D! $E. $F_ $G\n", ["C", "D", "E", "F", "G"]),
        ("$A$B $C", ["A", "C"]),
    ],
)
def test_cashtag_rules(text, cashtags):
    assert extract_entities(text).cashtags == cashtags


# ----------------------------------------------------------------------------- overlaps


def test_entities_never_overlap_the_earlier_one_wins():
    assert _e("https://x.com/p#frag?u=@me $AB http://x.com/$AB") == {
        "cashtags": ["AB"],
        "urls": ["https://x.com/p#frag?u=@me", "http://x.com/$AB"],
    }
    assert _e("#tag.com @user.com $AB.cd") == {
        "hashtags": ["tag"],
        "mentions": ["user"],
        "cashtags": ["AB.cd"],
    }


def test_results_are_fresh_lists_each_call():
    first = extract_entities("#a @b $C http://d.com")
    first.hashtags.append("x")
    assert extract_entities("#a @b $C http://d.com").hashtags == ["a"]


# ----------------------------------------------------------------------------- the URL scan

_PIECES = [
    "a", "x", "com", "jp", "co", "t", "org", "みんな", "中国", "xn--ls8h", "XN--p1ai", ".", ".", "-",
    "_", " ", "/", "http://", "https://", "HTTP://", "@", "#", "$", "(", ")", "?", "=", "&", ",",
    "'", ":", "あ", "日本語", "é", "ELPAÍS", "\u00a0", "\u3000", "。", "\ufe0f", "✌", "🏿", "~",
    "Русские", "t.co/", "bit.ly", "www.", "+", "!", "\u202a", "..", "_x", "ab.tt", "\u2013",
]  # fmt: skip


_URL = re.compile(E.URL_PATTERN)


def _plain_scan(text: str) -> list:
    """Every match of twitter-text's pattern, tried at every position (the reference)."""
    out: list = []
    for m in _URL.finditer(text):
        before, scheme, path = m.group(1, 2, 4)
        E._take(text, before, scheme, m.start(2), m.end(3), path, m.end(), out)
    return [tuple(x) for x in out]


# Host names in pieces: labels, dots, "-" and "_" where they may and may not be, schemes.
_LABELS = [
    "a", "b", "ab", "x1", "com", "co", "jp", "uk", "みんな", "xn--p1ai", ".", ".", ".", "-", "_",
    "_", "http://", "https://", "t.co", "あ", "日本", " ", "/", "@", "$", "#", "é", "(", ")",
    "?q=1", ":80", "ß", "!", "'",
]  # fmt: skip


@pytest.mark.parametrize(("pieces", "size"), [(_PIECES, 30), (_LABELS, 60)], ids=["mixed", "hosts"])
def test_the_quick_url_scan_finds_what_the_pattern_finds_everywhere(pieces, size):
    rng = random.Random(15)
    for _ in range(15_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, size)))
        found: list = []
        E._urls(text, found)
        assert [tuple(x) for x in found] == _plain_scan(text), text


@pytest.mark.parametrize(
    "text",
    [
        "jane@example.com " + "あ" * 50_000,  # a host end that starts no URL, then Japanese
        "あ" * 50_000 + " x.com",
        "あ" * 50_000 + "_.com",
        "あ" * 50_000 + "_あ.com " + "a.com_" * 10_000,
        "a." * 25_000 + "a_.com",
        "http://x.com/a" + "." * 50_000 + " x",
        "see https://t.co/abc, example.com/x and 東京example.jp です。" * 2_000,
        "http://a.b/c jane@example.com +1 415 555 0142 #tag @who $TSLA " * 2_000,
        "#" * 50_000 + "@" * 50_000 + "$" * 50_000,
    ],
    ids=[
        "email-then-cjk",
        "cjk-then-url",
        "cjk-underscore-tld",
        "cjk-underscore-label-then-hosts-glued",
        "label-chain",
        "path-dots",
        "many-urls",
        "mixed",
        "signs",
    ],
)
def test_long_texts_take_linear_time(text):
    start = time.perf_counter()
    extract_entities(text)
    assert time.perf_counter() - start < 2.0
