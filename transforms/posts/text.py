"""Post text: cleaning, entity extraction, PII scrubbing and the dedup hash (plain functions)."""

from __future__ import annotations

import bisect
import functools
import hashlib
import unicodedata

import regex

__all__ = [
    "clean_text",
    "dedup_form",
    "dedup_hash",
    "entity_columns",
    "extract_entities",
    "scrub_pii",
]

# The X API escapes exactly these three; unescaping only them leaves a literal "&copy;" alone.
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
# Control characters (Cc) except tab and newline. Format characters (Cf) stay: the zero-width
# joiner holds emoji sequences such as 👨‍👩‍👧 together.
_CONTROL = regex.compile(r"[^\P{Cc}\t\n]")
_URL = regex.compile(r"https?://[^\s<>\"'\u3000]+", regex.IGNORECASE)
_EMAIL = regex.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = regex.compile(r"(?<![\w+])\+?\d(?:[\d\s().-]{6,}\d)(?![\w])")
_REPOST = regex.compile(r"^RT @\w{1,15}: ")
_SPACE = regex.compile(r"\s+")


def extract_entities(text: str):
    """The hashtags, mentions, cashtags and URLs of a (cleaned) post text, by twitter-text's
    rules: ``transforms.posts.entities.extract_entities``, imported on first use. Compiling its
    patterns takes ~0.16 s, which a process that meets no post without ``entities`` (the runner,
    the workers of most X streams) need not pay before its first record."""
    from transforms.posts.entities import extract_entities as extract

    return extract(text)


def entity_columns(text: str) -> dict[str, list[str]]:
    """The ``hashtags``, ``mentions``, ``cashtags`` and ``urls`` columns of a post that came
    without ``entities``, extracted from its text."""
    found = extract_entities(text)
    return {
        "hashtags": found.hashtags,
        "mentions": found.mentions,
        "cashtags": found.cashtags,
        "urls": found.urls,
    }


def clean_text(text: str) -> str:
    """Unescape ``&lt; &gt; &amp;``, normalize to NFC and drop control characters."""
    # Each step runs only when it can change the text: most posts have no "&", are already NFC
    # (ASCII always is) and have no control character (a printable text has none).
    if "&" in text:
        for escaped, plain in _ENTITIES:
            text = text.replace(escaped, plain)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if not text.isprintable():
        text = _CONTROL.sub("", text)
    return text


@functools.lru_cache(maxsize=1 << 13)  # reposts share their post's text, as for dedup_hash
def scrub_pii(text: str) -> tuple[str, int]:
    """Replace e-mail addresses with ``<email>`` and phone numbers with ``<phone>``.

    Returns the text and how many were replaced. URLs are left alone (a status id in a link is
    not a phone number); a phone number needs 9 to 15 digits.
    """
    urls = _UrlSpans(text)
    count = 0

    def email(m):
        nonlocal count
        if urls.cover(m.start()):
            return m.group(0)
        count += 1
        return "<email>"

    def phone(m):
        nonlocal count
        digits = sum(c.isdigit() for c in m.group(0))
        if urls.cover(m.start()) or not 9 <= digits <= 15:
            return m.group(0)
        count += 1
        return "<phone>"

    text = _EMAIL.sub(email, text)
    if count:  # an address replaced: the links after it moved
        urls = _UrlSpans(text)
    return _PHONE.sub(phone, text), count


class _UrlSpans:
    """Where the URLs of a text are. URLs come in order and never overlap, so whether a position
    is inside one is a binary search, not a scan of every URL (a line of thousands of links and
    addresses took minutes that way). The links are found when first asked about: most texts
    hold nothing that looks like an address or a phone number, and are never scanned for them."""

    def __init__(self, text: str):
        self._text = text
        self._starts: list[int] | None = None

    def cover(self, pos: int) -> bool:
        if self._starts is None:
            spans = [m.span() for m in _URL.finditer(self._text)]
            self._starts = [a for a, _ in spans]
            self._ends = [b for _, b in spans]
        i = bisect.bisect_right(self._starts, pos) - 1
        return i >= 0 and pos < self._ends[i]


# Reposts of one post share its text (and a popular post is reposted many times over), so a
# bounded cache of recent texts saves most of the regex work on real streams. 8192 texts keep
# 97% of the hits 65,536 did on a realistic stream (75k posts), in an eighth of the memory: a
# parsing worker's cache no longer grows for the first half-million posts it sees.
# ``dedup_form`` keeps its own: with --dedup-near the worker that parsed a chunk (computing each
# text_hash) signs its distinct texts right after (``minhash.signatures``), and 16,384 forms
# cover a chunk of 10,000 lines -- the second normalization of each text was ~40% of signing.
@functools.lru_cache(maxsize=1 << 14)
def dedup_form(text: str) -> str:
    """The text as a reader sees it, what ``--dedup-text`` and ``--dedup-near`` compare: a
    repost's ``RT @user:`` prefix and links (``http(s)://`` up to the next space; t.co links
    differ between copies) removed, every run of whitespace made one space, leading and trailing
    space stripped, then case-folded (``str.casefold``)."""
    # The substitutions run only when they can match: a repost starts with "RT @", a link holds
    # "://", and a printable text has no whitespace but " " (so only "  " can be a run).
    core = _REPOST.sub("", text) if text.startswith("RT @") else text
    if "://" in core:
        core = _URL.sub("", core)
    if "  " in core or not core.isprintable():
        core = _SPACE.sub(" ", core)
    return core.strip().casefold()


@functools.lru_cache(maxsize=1 << 13)
def dedup_hash(text: str) -> int:
    """A 64-bit hash of ``dedup_form(text)``: a repost's ``RT @user:`` prefix, links, case and
    spacing do not count; 0 for no text."""
    core = dedup_form(text)
    if not core:
        return 0  # nothing left to compare: such posts are never text duplicates
    return int.from_bytes(hashlib.blake2b(core.encode("utf-8"), digest_size=8).digest(), "little")
