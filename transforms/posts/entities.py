"""Hashtags, mentions, cashtags and URLs of a post's text, by twitter-text's extraction rules.

twitter-text (github.com/twitter/twitter-text) is the reference X's own clients extract entities
with; its conformance suite (``conformance/extract.yml``) is tests/data/twitter_text_extract.yml
and tests/test_entities_conformance.py runs every case of it. The rules, as twitter-text 3.1.0
publishes them (its ``regexp/`` directory), rewritten here for Python's engines:

* **URLs**: an optional ``http://``/``https://``, then a host whose last label is a known
  top-level domain (:mod:`transforms.posts.tlds`) not followed by a letter, digit, ``@``, ``+``
  or ``-`` (``http://no-tld``, ``tar.bz2``, ``john.doe.gov@mail.com`` are no URLs), an optional
  port, path (balanced parentheses kept: ``wiki/Primer_(film)``; it cannot end in ``.,!?'``...)
  and query. A URL must not follow a letter, digit, ``@``, ``#`` or ``$``; one without a scheme
  neither ``-``, ``_``, ``.`` nor ``/``, and only its ASCII host counts (``これはexample.com`` gives
  ``example.com``). Host labels encode to at most 63 characters (punycode); ``t.co`` links stop
  after their slug, of at most 40 characters.
* **Mentions**: ``@`` or ``＠`` and 1-20 of ``[A-Za-z0-9_]``, not after a letter, digit or
  ``_!#$%&*@``, except that ``RT``/``rt`` (and ``RT:``) may come right before. Not followed by
  ``@``, an accented Latin letter or ``://``. ``@user/list-name`` is a list, not a mention.
* **Hashtags**: ``#`` or ``＃`` and letters, marks, digits and a few joiners (``_``, ZWJ/ZWNJ,
  ``〃``, ``・``, Hebrew geresh...), at least one letter or mark; not after a letter, digit or
  ``&`` (a variation selector before ``#`` is fine: ``✌️#tag``), not followed by ``#`` or ``://``,
  and not the keycap ``#️⃣``.
* **Cashtags**: ``$``, 1-6 ASCII letters and optionally ``.`` or ``_`` and 1-2 more, at the start
  or after a space, followed by the end, a space or punctuation.

Entities never overlap: the earlier one wins (a ``#frag`` inside a URL is no hashtag), as in
twitter-text's extractEntitiesWithIndices.

Where this differs from twitter-text's JavaScript, on purpose: letters, marks and digits are
Unicode's (``\\p{L}``, ``\\p{M}``, ``\\p{Nd}``) as the ``regex`` module knows them, where
twitter-text has tables of those classes from an older Unicode version (so ``#ࢴ`` and Adlam
digits count); and a text is code points, where JavaScript's patterns see UTF-16 halves and can
start a host in the middle of an emoji (``@x🏿.ab.tt`` gives it ``ab.tt``). Time is linear in the
text: twitter-text's URL pattern, tried at every character, is quadratic in a long run without
spaces (see ``_Hosts``).
"""

from __future__ import annotations

import bisect
import functools
import operator
import re

import regex

from transforms.posts import tlds

__all__ = ["Entities", "extract_entities"]


class Entities:
    """Hashtags, mentions, cashtags and URLs found in a text, each in order of appearance."""

    __slots__ = ("cashtags", "hashtags", "mentions", "urls")

    def __init__(self, hashtags, mentions, cashtags, urls):
        self.hashtags, self.mentions, self.cashtags, self.urls = hashtags, mentions, cashtags, urls

    def __repr__(self) -> str:
        return (
            f"Entities(hashtags={self.hashtags!r}, mentions={self.mentions!r}, "
            f"cashtags={self.cashtags!r}, urls={self.urls!r})"
        )


# ----------------------------------------------------------------------------- character groups
# Written out rather than left to the engines' \s, \w or case folding, which differ from
# JavaScript's (twitter-text's) in places: Python's re matches the Kelvin sign K to [a-z] under
# IGNORECASE, JavaScript's \s has U+FEFF and not U+001C-U+001F.

_SPACES = r"\t-\r \x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_JS_WHITESPACE = r"\t-\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_INVALID = r"\ufffe\ufeff\uffff"
_DIRECTIONAL = r"\u202a-\u202e\u061c\u200e\u200f\u2066-\u2069"
_PUNCT = r"!'#%&()*+,\\\-./:;<=>?@\[\]^_{|}~$"
_LATIN_ACCENTS = (
    r"\xc0-\xd6\xd8-\xf6\xf8-\xff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b\u0263"
    r"\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)
_CYRILLIC = r"\u0400-\u04ff"

# ----------------------------------------------------------------------------- URLs


def _canonical(ch: str) -> str:
    """JavaScript's case folding for ``/i`` without ``/u``: the upper case, if one character
    and not ASCII for a non-ASCII one."""
    up = ch.upper()
    return ch if len(up) != 1 or (ord(ch) >= 128 and ord(up) < 128) else up


def _nocase(ch: str) -> str:
    """A character class matching what ``ch`` matches under JavaScript's ``/i``."""
    key = _canonical(ch)
    near = {ch, key, ch.lower(), key.lower(), ch.title(), ch.casefold()}
    same = sorted(c for c in near if len(c) == 1 and _canonical(c) == key)
    if len(same) == 1:
        return re.escape(same[0])
    return "[" + "".join(re.escape(c) for c in same) + "]"


def _tld_pattern(names: list[str]) -> str:
    """One alternation for all ``names`` as a trie, longer names first, case-insensitive.

    A regex tries alternatives in order; twitter-text lists no TLD before a longer one that it
    begins, so the one it takes at a position is the longest that also passes the lookahead
    after it, which is what the trie tries first. A trie fails a wrong first letter at once
    instead of trying 1,574 names in turn.
    """
    trie: dict = {}
    for name in names:
        node = trie
        for ch in name.lower():
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        branches = [_nocase(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


_TLD_NAMES = tlds.GENERIC + tlds.COUNTRY
_TLD = rf"(?:{_tld_pattern(_TLD_NAMES)})(?=[^0-9a-zA-Z@+\-]|\Z)"
_PUNYCODE_TLD = r"[xX][nN]--[\-0-9a-zA-Z]+"
_D = rf"[^{_PUNCT}{_SPACES}{_INVALID}{_DIRECTIONAL}]"  # a character a host name may have
_SUBDOMAIN = rf"(?:(?:{_D}(?:[_-]|{_D})*)?{_D}\.)"
_DOMAIN_NAME = rf"(?:(?:{_D}(?:-|{_D})*)?{_D}\.)"
_DOMAIN = rf"(?:{_SUBDOMAIN}*{_DOMAIN_NAME}(?:{_TLD}|{_PUNYCODE_TLD}))"
_P = rf"[a-zA-Z{_CYRILLIC}0-9!*';:=+,.$/%#\[\]\-\u2013_~@|&{_LATIN_ACCENTS}]"  # path characters
_PARENS = rf"\((?:{_P}+|(?:{_P}*\({_P}+\){_P}*))\)"
_PATH_END = rf"[+\-a-zA-Z{_CYRILLIC}0-9=_#/{_LATIN_ACCENTS}]"  # what a path may end with
# twitter-text splices its "ending characters" (a class, or balanced parentheses) into the path
# pattern without brackets, so the parentheses stand alone as a path segment: "a(415)" and
# "wiki/Primer_(film)" keep theirs, "a;(415)" and "a&(4)" end before them. Kept as it is.
_PATH = rf"(?:(?:{_P}*(?:{_PARENS}{_P}*)*{_PATH_END}|(?:{_PARENS}))|(?:@{_P}+/))"
_QUERY = r"[a-zA-Z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]"
_QUERY_END = r"[a-zA-Z0-9\-_&=#/]"
_PRECEDING = rf"(?:[^A-Za-z0-9@＠$#＃{_INVALID}]|^)"
# twitter-text's URL pattern (extractUrl), as a string: _urls finds what its scan finds without
# running it (tests/test_entities_conformance.py compares the two).
URL_PATTERN = (
    rf"({_PRECEDING})"  # 1: the character before
    rf"((?:[hH][tT][tT][pP][sS]?://)?)"  # 2: the scheme, if any
    rf"({_DOMAIN})"  # 3: the host
    r"(?::[0-9]+)?"  # the port
    rf"(/{_PATH}*)?"  # 4: the path
    rf"(?:\?{_QUERY}*{_QUERY_END})?"  # the query
)
_URL = re.compile(URL_PATTERN)
# What follows a host: everything after it is optional, so the pattern never backtracks into a
# host it found, and the tail is this, matched from the host's end.
_TAIL = re.compile(rf"(?::[0-9]+)?(/{_PATH}*)?(?:\?{_QUERY}*{_QUERY_END})?")
# A URL's host ends in ".<TLD>": where none is, no URL can start (a quick look before the
# full pattern, which tries a host at nearly every character of a text in Chinese or Japanese).
_HOST_END = re.compile(rf"\.(?:{_TLD}|{_PUNYCODE_TLD})")
_ASCII_HOST = re.compile(
    rf"(?:(?:[\-a-zA-Z0-9{_LATIN_ACCENTS}]+)\.)+(?:{_TLD}|{_PUNYCODE_TLD})",
)
_NO_SCHEME_AFTER = frozenset("-_./")
_TCO = re.compile(
    rf"[hH][tT][tT][pP][sS]?://[tT]\.[cC][oO]/([a-zA-Z0-9]+)(?:\?{_QUERY}*{_QUERY_END})?"
)
_LABEL_DOTS = re.compile(r"[\u3002\uff0e\uff61]")  # punycode.js splits labels at these too
_MAX_URL = 4096  # UTF-16 code units, scheme included
_MAX_TCO_SLUG = 40


def _host_ok(host: str) -> bool:
    """twitter-text's check of a host: every label at most 63 characters once punycoded."""
    if host.startswith("xn--") and not _ASCII_HOST.search(host):
        return False  # a punycode host has only ASCII
    for label in host.split("."):
        if label.isascii():
            size = len(label)
        else:
            parts = _LABEL_DOTS.split(label)
            size = (
                len(parts)
                - 1
                + sum(len(p) if p.isascii() else 4 + len(p.encode("punycode")) for p in parts)
            )
        if not 0 < size <= 63:
            return False
    return True


def _utf16_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


def _urls(text: str, out: list) -> None:
    """Append (start, end, kind, value) for each URL of ``text``, in order: what twitter-text's
    scan with its pattern (URL_PATTERN) finds, worked out by _Hosts in linear time."""
    hosts = _Hosts(text)
    if not hosts.tld_end:
        return
    pos = 0
    while (found := hosts.next_url(pos)) is not None:
        before, scheme, start, host_end = found
        tail = _TAIL.match(text, host_end)
        pos = tail.end()
        _take(text, before, scheme, start, host_end, tail.group(1), pos, out)


def _take(text, before, scheme, start, host_end, path, end, out: list) -> None:
    """twitter-text's checks of one match of its pattern; append the URL(s) it gives."""
    host = text[start + len(scheme) : host_end]
    url = text[start:end]
    if not (host.isascii() and len(host) <= 63 and not host.startswith("xn--")) and not _host_ok(
        host
    ):
        return  # (an ASCII host of at most 63 characters has no label longer than that)
    if (
        len(url) > (_MAX_URL - 8) // 2
        and _utf16_len(scheme or "https://") + _utf16_len(url) > _MAX_URL
    ):
        return
    if scheme:
        t = _TCO.match(url) if len(host) == 4 and host.lower() == "t.co" else None
        if t is None:
            out.append((start, end, "url", url))
        elif len(t.group(1)) <= _MAX_TCO_SLUG:  # a t.co link stops after its slug
            out.append((start, start + t.end(), "url", t.group(0)))
        return
    if before in _NO_SCHEME_AFTER:
        return
    # Without a scheme, only ASCII host names count (each one found in the host).
    last = None
    found = 0
    for a in _ASCII_HOST.finditer(host):
        s = host.find(a.group(0), found)
        found = s + len(a.group(0))
        last = [start + s, start + found, "url", a.group(0)]
        out.append(last)
    if last is not None and path:
        last[1] = end
        last[3] = url.replace(host, last[3], 1)


# The characters of a "token": a run that can hold a host name (domain characters, dots, "-",
# "_"). Host names lie inside one; a scheme ends right before one.
_TOKEN_CHAR = rf"[^!'#%&()*+,\\/:;<=>?@\[\]^{{|}}~${_SPACES}{_INVALID}{_DIRECTIONAL}]"
_TOKEN_BACK = regex.compile(rf"(?r){_TOKEN_CHAR}*")
_TOKEN_FWD = re.compile(rf"{_TOKEN_CHAR}*")
_NOT_BEFORE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@＠$#＃\ufffe\ufeff\uffff"
)
_NOT_DOMAIN = frozenset(".-_")


def _scheme_at(text: str, at: int) -> str:
    """The "http://" or "https://" (any case) at ``at``, or ""."""
    head = text[at : at + 8]
    if not head[:4].isascii() or head[:4].lower() != "http":
        return ""
    if head[4:8] == "s://" or head[4:8] == "S://":
        return head
    return head[:7] if head[4:7] == "://" else ""


class _Hosts:
    """Where twitter-text's URL pattern matches in a text, and the host it takes there.

    The pattern, at position q: the character before (q itself; none at the start), maybe
    "http(s)://", then a host: labels separated by dots, each but the last a subdomain (domain
    characters with ``-`` or ``_`` inside) and the last a domain name (``-`` inside), then a TLD
    right after a dot; greedy, so it takes as many subdomains as it can. Hosts lie in "tokens"
    (runs of domain characters, dots, ``-``, ``_``) that hold a TLD after a dot; for each, a table
    of its labels, filled from the last to the first, says where a host starting at a label
    ends, and a host starting inside a label follows from it. So the next match is found without
    trying the pattern at every character, which is quadratic in a long token: 20,000 characters
    of Japanese with a link took 30 s, "a.com_" 4,000 times over 6 s.
    """

    def __init__(self, text: str):
        self.text = text
        self.tld_end = {m.start(): m.end() for m in _HOST_END.finditer(text)}  # at each dot
        self.spans: list[tuple[int, int]] = []  # (start, end) of each token holding a TLD
        self.tables: dict[int, tuple] = {}
        self.first = 0  # tokens before it end before the scan's position
        end = -1
        for dot in self.tld_end:
            if dot >= end:
                start = _TOKEN_BACK.match(text, 0, dot).start()
                end = _TOKEN_FWD.match(text, dot).end()
                self.spans.append((start, end))

    def next_url(self, pos: int):
        """(character before, scheme, URL start, host end) of the pattern's first match at or
        after ``pos``, or None."""
        text, spans = self.text, self.spans
        while self.first < len(spans) and spans[self.first][1] <= pos:
            self.first += 1
        if self.first == len(spans):
            return None
        # Most URLs have a scheme right before the next token. No match can start before the
        # scheme's preceding character then (tokens before hold no TLD): if the pattern matches
        # there, that is the next match. Only for short tokens, where it costs little.
        ts, te = spans[self.first]
        if ts >= pos and te - ts <= 253 and text[ts - 3 : ts] == "://":
            if ts >= 8 and len(_scheme_at(text, ts - 8)) == 8:
                sc = ts - 8
            elif ts >= 7 and len(_scheme_at(text, ts - 7)) == 7:
                sc = ts - 7
            else:
                sc = -1
            if sc >= 0 and (q := max(sc - 1, 0)) >= pos:
                m = _URL.match(text, q)
                if m is not None:
                    return m.group(1), m.group(2), m.start(2), m.end(3)
        best = None
        for i in range(self.first, len(spans)):
            if best is not None and spans[i][0] - 9 > best[0]:
                break  # a match for a later token starts at most 9 before it (" https://")
            found = self._first_in(i, pos)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return None if best is None else best[1:]

    def _table(self, i: int) -> tuple:
        """Token i's labels: (starts, ends, hosts), hosts[j] the end of the host that starts at
        label j's first character (None: no host does)."""
        got = self.tables.get(i)
        if got is not None:
            return got
        text, tld_end = self.text, self.tld_end
        ts, te = self.spans[i]
        starts, ends = [], []
        a = ts
        while (b := text.find(".", a, te)) >= 0:
            starts.append(a)
            ends.append(b)
            a = b + 1
        starts.append(a)
        ends.append(te)
        hosts: list = [None] * len(starts)
        for j in range(len(starts) - 2, -1, -1):
            a, b = starts[j], ends[j]
            if b > a and text[a] not in _NOT_DOMAIN and text[b - 1] not in _NOT_DOMAIN:
                if hosts[j + 1] is not None:  # a subdomain, then the rest
                    hosts[j] = hosts[j + 1]
                elif b in tld_end and "_" not in text[a:b]:  # the domain name, then the TLD
                    hosts[j] = tld_end[b]
        got = self.tables[i] = (starts, ends, hosts)
        return got

    def _host(self, i: int, d: int) -> int | None:
        """Where the host the pattern takes from ``d`` (in token i) ends, or None."""
        text = self.text
        if text[d] in _NOT_DOMAIN:
            return None
        starts, ends, hosts = self._table(i)
        j = bisect.bisect_right(starts, d) - 1
        b = ends[j]
        if j == len(starts) - 1 or text[b - 1] in _NOT_DOMAIN:
            return None
        if hosts[j + 1] is not None:
            return hosts[j + 1]
        if b in self.tld_end and "_" not in text[d:b]:
            return self.tld_end[b]
        return None

    def _token_of(self, i: int, at: int) -> int | None:
        """i, or the token next to it, if ``at`` lies in it."""
        for k in (i, i + 1):
            if k < len(self.spans) and self.spans[k][0] <= at < self.spans[k][1]:
                return k
        return None

    def _match_at(self, i: int, q: int):
        """(q, character before, scheme, URL start, host end) if the pattern matches at q, where
        the host can only be in token i (or the next one), else None. The pattern's order: the
        character q before (if it may come before a URL) and then from q + 1 "http(s)://" and a
        host, or a host; at the very start, the same from 0."""
        text = self.text
        for before, r in ((text[q], q + 1), ("", 0)):
            if before:
                if before in _NOT_BEFORE or r >= len(text):
                    continue
            elif q:
                break
            scheme = _scheme_at(text, r)
            if scheme:
                k = self._token_of(i, r + len(scheme))
                if k is not None and (end := self._host(k, r + len(scheme))) is not None:
                    return q, before, scheme, r, end
            k = self._token_of(i, r)
            if k is not None and (end := self._host(k, r)) is not None:
                return q, before, "", r, end
        return None

    def _first_in(self, i: int, pos: int):
        """The pattern's first match at or after ``pos`` whose host is in token i."""
        text = self.text
        ts = self.spans[i][0]
        # a scheme right before the token: the pattern would start at its preceding character
        for length in (8, 7):
            sc = ts - length
            if sc >= 0 and len(_scheme_at(text, sc)) == length:
                q = max(sc - 1, 0)
                if q >= pos and (found := self._match_at(i, q)) is not None:
                    return found
                break
        # a host starting in the token: the pattern would start at the character before it
        starts, ends, hosts = self._table(i)
        lo = pos + 1 if pos else 0
        for j in range(max(bisect.bisect_right(starts, lo) - 1, 0), len(starts) - 1):
            a, b = starts[j], ends[j]
            if text[b - 1] in _NOT_DOMAIN:
                continue  # no host starts in this label
            if hosts[j + 1] is None:  # then only as the domain name, which has no "_"
                if b not in self.tld_end:
                    continue
                a = text.rfind("_", a, b) + 1 or a
            for d in range(max(a, lo), b):
                if text[d] in _NOT_DOMAIN or (d and text[d - 1] in _NOT_BEFORE):
                    continue
                if (found := self._match_at(i, max(d - 1, 0))) is not None:
                    return found
        return None


# ----------------------------------------------------------------------------- mentions

# An at sign and a screen name, then maybe a list (twitter-text's validMentionOrList without
# the characters before; _mentions checks those where the at signs are, which is quicker than
# trying its alternation at every character).
_AT_NAME = re.compile(r"[@＠]([a-zA-Z0-9_]{1,20})(/[a-zA-Z][a-zA-Z0-9_\-]{0,24})?")
_NOT_BEFORE_AT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_!#$%&*@＠"
)
_NOT_BEFORE_RT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+~.-")
_MENTION_END = re.compile(rf"[@＠{_LATIN_ACCENTS}]|://")


def _mentions(text: str, out: list) -> None:
    """twitter-text's scan: before the at sign, the start, a character not in
    ``[a-zA-Z0-9_!#$%&*@＠]``, or "RT"/"RT:" (any case) at the start or after a character not in
    ``[a-zA-Z0-9_+~.-]``. What one match takes (the characters before included) no later one can
    use; a match followed by an at sign, an accented letter or "://" is dropped all the same."""
    taken = 0  # where the last match ended
    wide = None if text.isascii() else "＠"
    at = _find(text, "@", wide, 0)
    while at >= 0:
        m = _AT_NAME.match(text, at)
        if m is None:
            at = _find(text, "@", wide, at + 1)
            continue
        end = m.end()
        if _before_mention(text, at, taken):
            taken = end
            if not _MENTION_END.match(text, end):
                # a list (@user/list) takes its place among the entities but is no mention
                out.append((at, end, "list" if m.group(2) else "mention", m.group(1)))
        at = _find(text, "@", wide, end)


def _find(text: str, sign: str, wide: str | None, start: int) -> int:
    """The first ``sign`` or ``wide`` (its full-width form, None for an ASCII text) at or
    after ``start``, or -1."""
    i = text.find(sign, start)
    if wide is None:
        return i
    j = text.find(wide, start, i if i >= 0 else len(text))
    return j if j >= 0 else i


def _before_mention(text: str, at: int, taken: int) -> bool:
    if at == 0:
        return True
    if at - 1 >= taken and text[at - 1] not in _NOT_BEFORE_AT:
        return True
    for rt in (at - 3, at - 2):  # "RT:" or "RT" right before
        if rt < taken or text[rt] not in "rR" or text[rt + 1] not in "tT":
            continue
        if rt == at - 3 and text[at - 1] != ":":
            continue
        if rt == 0 or (rt - 1 >= taken and text[rt - 1] not in _NOT_BEFORE_RT):
            return True
    return False


# ----------------------------------------------------------------------------- hashtags

_HASHTAG_SPECIAL = r"_\u200c\u200d\ua67e\u05be\u05f3\u05f4\uff5e\u301c\u309b\u309c\u30a0\u30fb\u3003\u0f0b\u0f0c\xb7"
_ALPHA = r"\p{L}\p{M}"
_ALNUM = rf"\p{{L}}\p{{M}}\p{{Nd}}{_HASHTAG_SPECIAL}"
# A hash sign (not the keycap #️⃣) and a tag with at least one letter or mark: twitter-text's
# validHashtag without the character before, which _hashtags checks where the hash signs are.
_HASH_TAG = regex.compile(
    rf"[#＃](?![\ufe0f\u20e3])([{_ALNUM}]*[{_ALPHA}][{_ALNUM}]*)",
    regex.V0,
)
_NOT_BEFORE_HASH = regex.compile(rf"[{_ALNUM}&]", regex.V0)
_HASHTAG_END = re.compile(r"[#＃]|://")


def _may_precede_hash(ch: str) -> bool:
    """Whether ``ch`` may come right before a hashtag's hash sign."""
    if ch.isascii():
        return not (ch.isalnum() or ch in "_&")  # the ASCII letters, digits and joiner
    return ch in "\ufe0e\ufe0f" or _NOT_BEFORE_HASH.match(ch) is None


def _hashtags(text: str, out: list) -> None:
    """twitter-text's scan: before the hash sign, the start, a variation selector (``✌️#tag``) or
    a character that is neither a letter, mark, digit, tag joiner nor ``&``, and not one an
    earlier match took. A match followed by a hash sign or "://" is dropped all the same."""
    taken = 0
    wide = None if text.isascii() else "＃"
    at = _find(text, "#", wide, 0)
    while at >= 0:
        m = _HASH_TAG.match(text, at)
        if m is None:
            at = _find(text, "#", wide, at + 1)
            continue
        end = m.end()
        if not at or (at - 1 >= taken and _may_precede_hash(text[at - 1])):
            taken = end
            if not _HASHTAG_END.match(text, end):
                out.append((at, end, "hashtag", m.group(1)))
        at = _find(text, "#", wide, end)


# ----------------------------------------------------------------------------- cashtags

# A dollar sign and a symbol: twitter-text's validCashtag without the character before (the
# start or a space), which _cashtags checks where the dollar signs are.
_CASHTAG = re.compile(
    r"\$([a-zA-Z]{1,6}(?:[._][a-zA-Z]{1,2})?)"
    rf"(?=\Z|[{_JS_WHITESPACE}]|[{_PUNCT}])"
)
_SPACE_CHARS = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u180e\u2028\u2029\u202f\u205f\u3000"
    + "".join(map(chr, range(0x2000, 0x200B)))
)


def _cashtags(text: str, out: list) -> None:
    """twitter-text's scan: a cashtag at the start or after a space that no earlier match
    took, followed by the end, a space or punctuation."""
    taken = 0
    at = text.find("$")
    while at >= 0:
        if at == 0 or (at - 1 >= taken and text[at - 1] in _SPACE_CHARS):
            m = _CASHTAG.match(text, at)
            if m is not None:
                taken = m.end()
                out.append((at, taken, "cashtag", m.group(1)))
        at = text.find("$", at + 1)


# ----------------------------------------------------------------------------- all of them


def extract_entities(text: str) -> Entities:
    """The entities of a (cleaned) post text, for posts that come without ``entities``."""
    hashtags, mentions, cashtags, urls = _entities_of(text)
    return Entities(list(hashtags), list(mentions), list(cashtags), list(urls))


_START = operator.itemgetter(0)


# Reposts share their post's text (and a popular post is reposted many times over): a bounded
# cache of recent texts' entities, as for dedup_hash and scrub_pii. Tuples, so that no caller
# can change what the next one gets.
@functools.lru_cache(maxsize=1 << 13)
def _entities_of(text: str) -> tuple[tuple, tuple, tuple, tuple]:
    found: list = []
    wide = not text.isascii()  # only then can there be a full-width ＠ or ＃
    if "." in text:
        _urls(text, found)
    if "@" in text or (wide and "＠" in text):
        _mentions(text, found)
    if "#" in text or (wide and "＃" in text):
        _hashtags(text, found)
    if "$" in text:
        _cashtags(text, found)
    if not found:
        return (), (), (), ()
    if len(found) > 1:
        found.sort(key=_START)  # stable: at one start, a URL before a mention before a tag
    hashtags, mentions, cashtags, urls = [], [], [], []
    end = -1
    for start, stop, kind, value in found:
        if start < end:
            continue  # overlaps the entity before it: the earlier one wins
        end = stop
        if kind == "url":
            urls.append(value)
        elif kind == "mention":
            mentions.append(value)
        elif kind == "hashtag":
            hashtags.append(value)
        elif kind == "cashtag":
            cashtags.append(value)
    return tuple(hashtags), tuple(mentions), tuple(cashtags), tuple(urls)
