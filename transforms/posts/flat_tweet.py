"""The fast path of line parsing: the common forms of post lines decoded into typed structs.

Most lines of a real stream are one of three shapes:

* a twarc2 flattened tweet: one tweet object with its author and referenced tweets inlined
  (twarc2 ``--flatten``, or a plain tweet with ``public_metrics``);
* a filtered-stream line: ``{"data": {tweet}, "includes": {...}, "matching_rules": [...]}``;
* an X API v2 page: ``{"data": [tweets], "includes": {...}, "meta": {...}}``, whose rows are
  its ``data`` tweets, then its ``includes.tweets``, as ``parse._page`` makes them.

For those, msgspec decodes only the fields the posts schema uses, with their types checked in C,
and skips the rest of a ~6 KB line without building it (2x faster than ``orjson.loads`` alone),
and the row is read from attributes instead of checked dictionary lookups. A page's authors and
media are joined from ``includes.users`` and ``includes.media`` by id, as the general parser
joins them.

The fast path is only ever a shortcut to the same rows: ``fast_rows`` returns None for
anything it is not sure of (a field of another form, a type or value the general parser would
reject, skip or convert, an ``errors`` entry, a page of something other than posts, an author or
media key a page does not include), and the line then goes through ``parse_line_general`` as
before, which gives every form, every reject and its message. Its types are therefore narrower
than what the general parser accepts, never wider. tests/test_flat_tweet.py checks that both give
the same chunk for every line of the tests' corpora and every hostile variant of them.

One difference, on purpose: a field the posts schema does not read is skipped, not converted,
so a number there beyond a double's range (``1e400``; valid JSON, which orjson cannot hold and
rejects the line for, ``json_invalid``) no longer costs the post. Its bytes are still checked
to be UTF-8, as orjson checks them.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from transforms.posts.errors import RecordError
from transforms.posts.lang_id import SOURCE
from transforms.posts.rows import COLUMN
from transforms.posts.text import clean_text, dedup_hash, extract_entities
from transforms.posts.timestamps import created_at_ms

__all__ = ["fast_rows", "finish_row"]

_Id = Annotated[str, msgspec.Meta(min_length=1)]
_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# A field of another form (or one the general parser normalizes in ways not repeated here):
# its mere presence sends the line to the general parser.
_Other = msgspec.Raw | msgspec.UnsetType
_ABSENT = msgspec.UNSET
# Where a referenced tweet's id goes in the row's list of reference columns.
_REF_INDEX = {"replied_to": 0, "quoted": 1, "retweeted": 2}
# The columns finish_row fills: the four entity lists (in this order in the schema, so
# _entities gives them in one slice), media and the text hash.
_ENTITY_COLUMNS = slice(COLUMN["hashtags"], COLUMN["urls"] + 1)
_MEDIA = COLUMN["media"]
_TEXT_HASH = COLUMN["text_hash"]


# What these structs make is a tree that never refers back to itself, so the cyclic garbage
# collector need not track them (gc=False): a line decodes to dozens, and tracking them took 5%
# of the decoding time.
class _Metrics(msgspec.Struct, gc=False):
    like_count: _I64 | None = None
    retweet_count: _I64 | msgspec.UnsetType | None = _ABSENT
    repost_count: _I64 | None = None
    reply_count: _I64 | None = None
    quote_count: _I64 | None = None


class _Tag(msgspec.Struct, gc=False):
    tag: str | None = None


class _Mention(msgspec.Struct, gc=False):
    username: str | None = None


class _Url(msgspec.Struct, gc=False):
    url: str | None = None
    expanded_url: str | None = None
    media_key: _Other = _ABSENT


class _Entities(msgspec.Struct, gc=False):
    hashtags: list[_Tag] | None = None
    mentions: list[_Mention] | None = None
    cashtags: list[_Tag] | None = None
    urls: list[_Url] | None = None


class _Variant(msgspec.Struct, gc=False):
    content_type: str | None = None
    bit_rate: _I64 | None = None
    url: str | None = None


class _Media(msgspec.Struct, gc=False):
    media_key: str | None = None
    type: str | None = None
    url: str | None = None
    preview_image_url: str | None = None
    duration_ms: _I64 | None = None
    width: _I64 | None = None
    height: _I64 | None = None
    alt_text: str | None = None
    variants: list[_Variant] | None = None


class _Attachments(msgspec.Struct, gc=False):
    media: list[_Media] | None = None
    media_keys: list[str] | None = None


class _Author(msgspec.Struct, gc=False):
    id: _Id | None = None
    username: str | msgspec.UnsetType | None = _ABSENT


class _Tweet(msgspec.Struct, gc=False):
    """A tweet, or an entry of a tweet's ``referenced_tweets`` (its ``type`` and ``id``; with
    ``text``, the referenced tweet itself, inlined by twarc2). ``id``, ``text`` and
    ``created_at`` are checked by ``_row``: a reference needs none of them."""

    id: _Id | None = None
    text: str | msgspec.UnsetType | None = _ABSENT
    created_at: str | None = None
    type: str | None = None
    author_id: _Id | None = None
    author: _Author | None = None
    lang: str | None = None
    conversation_id: _Id | None = None
    possibly_sensitive: bool | None = None
    public_metrics: _Metrics | None = None
    entities: _Entities | None = None
    attachments: _Attachments | None = None
    edit_history_tweet_ids: list[_Id] | msgspec.UnsetType | None = _ABSENT
    referenced_tweets: list[_Tweet] | None = None
    # Read by the general parser only.
    action: _Other = _ABSENT
    data: _Other = _ABSENT
    author_username: _Other = _ABSENT
    reply_to_post_id: _Other = _ABSENT
    quoted_post_id: _Other = _ABSENT
    reposted_post_id: _Other = _ABSENT
    edit_history_ids: _Other = _ABSENT
    withheld: _Other = _ABSENT
    withheld_in_countries: _Other = _ABSENT
    geo: _Other = _ABSENT
    # Counts outside public_metrics (plain forms) are read by the general parser.
    like_count: _Other = _ABSENT
    retweet_count: _Other = _ABSENT
    repost_count: _Other = _ABSENT
    reply_count: _Other = _ABSENT
    quote_count: _Other = _ABSENT


class _User(msgspec.Struct, gc=False):
    """An entry of a page's ``includes.users``: the fast path joins only users with a username
    (the general parser gives a user without one, or one it does not find, a null username)."""

    id: _Id
    username: str


class _Includes(msgspec.Struct, gc=False):
    users: list[_User] | None = None
    media: list[_Media] | None = None
    tweets: list[_Tweet] | None = None


class _Page(msgspec.Struct, gc=False):
    """An X API v2 page (``data``: its tweets) or a filtered-stream line (``data``: its one
    tweet), with the ``includes`` its tweets are joined with."""

    data: list[_Tweet] | _Tweet | msgspec.UnsetType = _ABSENT
    includes: _Includes | None = None
    errors: _Other = _ABSENT
    action: _Other = _ABSENT


_NO_METRICS = _Metrics()
_NO_INCLUDES = _Includes()
_decode_tweet = msgspec.json.Decoder(_Tweet).decode
_decode_page = msgspec.json.Decoder(_Page).decode
# How the X API begins a page or a stream line. Only a guess at which decoder to try first:
# a tweet line is decoded as a page too when it turns out to have a "data".
_PAGE_START = b'{"data":'


class _NotPlain(Exception):
    """A tweet the general parser treats in a way the fast path does not repeat."""


class _Joins:
    """A page's ``includes.users`` (username by id) and ``includes.media`` (by media key), and
    how a tweet of the page is joined with them, as ``parse.map_tweet`` joins it."""

    __slots__ = ("media", "users")

    def __init__(self, includes: _Includes):
        # As the general parser's index: the last entry of an id wins.
        self.users = {u.id: u.username for u in includes.users or ()}
        self.media = {m.media_key: m for m in includes.media or () if m.media_key is not None}

    def author(self, t: _Tweet) -> tuple[str, str]:
        """The tweet's author id and username."""
        username = self.users.get(t.author_id)
        if t.author is not None or username is None:
            raise _NotPlain  # an author inlined in a page, missing, or not included with a username
        return t.author_id, username

    def media_of(self, attachments: _Attachments | None) -> list[_Media]:
        """The tweet's media as decoded: inlined, or the included media of its keys (a key the
        page does not include: the general parser leaves that media out)."""
        if attachments is None:
            return []
        if attachments.media is not None:
            return attachments.media
        items = []
        for key in attachments.media_keys or ():
            item = self.media.get(key)
            if item is None:
                raise _NotPlain
            items.append(item)
        return items


class _Later:
    """What a row's entity lists and text hash are made from, held in their place until the
    row is kept (``finish_row``): about half the rows of a stream are repeats of a popular
    post, dropped by the repeats table. Not None, so ``row_score`` counts it as a value, as
    it counts the lists and the hash it stands for."""

    __slots__ = ("entities", "text")

    def __init__(self, entities: _Entities | None, text: str):
        self.entities, self.text = entities, text


def fast_rows(
    data: bytes, source_uri: str, line: int, max_posts: int, *, utf8: bool = False
) -> list[list] | None:
    """The posts rows of a line of one of the common forms (a tweet object with its inlined
    referenced tweets, a filtered-stream line, an X API v2 page of posts), each the list of its
    values in schema order (``transforms.posts.rows``), as the general parser makes them once
    ``finish_row`` has made their entity lists, media and text hash; None when the line is
    anything else or anything in it is not plainly valid (the general parser then decides).
    ``utf8``: the caller has checked that ``data`` is valid UTF-8 (``read_lines`` checks whole
    blocks at once, without the ``str`` per line that decoding makes: those, freed among the rows
    being kept, grew the heap by ~30 MB a file)."""
    try:
        if not utf8:
            # msgspec skips the fields it is not asked for without checking their bytes:
            # invalid UTF-8 there is for the general parser to reject.
            data.decode("utf-8")
        # A line with "data" is a page for the general parser too, whatever else it holds.
        page = _decode_page(data) if data.startswith(_PAGE_START) else None
        if page is None:
            tweet = _decode_tweet(data)
            if tweet.data is not _ABSENT:
                page = _decode_page(data)
    except (UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if page is not None:
        return _page_rows(page, source_uri, line, max_posts)
    # One tweet, and the referenced tweets inlined in it (those with a text), as
    # parse._tweet_and_refs makes them.
    refs = tweet.referenced_tweets or ()
    if tweet.action is not _ABSENT or 1 + len(refs) > max_posts:
        return None
    try:
        rows = [_row(tweet, source_uri, line)]
        rows.extend(_row(ref, source_uri, line) for ref in refs if ref.text is not _ABSENT)
    except (RecordError, _NotPlain):
        return None
    return rows


def _page_rows(page: _Page, source_uri: str, line: int, max_posts: int) -> list[list] | None:
    """A page's ``data`` tweets, then its ``includes.tweets``, as ``parse._page`` makes them."""
    if page.action is not _ABSENT or page.errors is not _ABSENT or page.data is _ABSENT:
        return None  # a compliance event; errors are counted by the general parser
    tweets = [page.data] if isinstance(page.data, _Tweet) else page.data
    includes = page.includes or _NO_INCLUDES
    included = includes.tweets or []
    # No tweets: an empty page or a page of something else (each skipped with its reason).
    if not tweets or len(tweets) + len(included) > max_posts:
        return None
    joins = _Joins(includes)
    try:
        return [_row(t, source_uri, line, joins) for t in (*tweets, *included)]
    except (RecordError, _NotPlain):
        return None


def _row(t: _Tweet, source_uri: str, line: int, joins: _Joins | None = None) -> list:
    """The row of a tweet: its author and media inlined (``joins`` None), or joined from a
    page's includes."""
    if (
        t.id is None
        or t.text is None
        or t.text is _ABSENT
        or t.created_at is None
        or t.author_username is not _ABSENT
        or t.reply_to_post_id is not _ABSENT
        or t.quoted_post_id is not _ABSENT
        or t.reposted_post_id is not _ABSENT
        or t.edit_history_ids is not _ABSENT
        or t.withheld is not _ABSENT
        or t.withheld_in_countries is not _ABSENT
        or t.geo is not _ABSENT
    ):
        raise _NotPlain
    if joins is None:  # author and media inlined (twarc2)
        author = t.author
        author_id = t.author_id or (author.id if author else None)
        if author_id is None:
            raise _NotPlain  # the general parser's "author_id: missing" reject
        username = author.username if author and author.username is not _ABSENT else None
        media = (t.attachments.media or []) if t.attachments is not None else []
    else:
        author_id, username = joins.author(t)
        media = joins.media_of(t.attachments)
    text = clean_text(t.text)
    refs = [None, None, None]  # reply_to_post_id, quoted_post_id, reposted_post_id
    for ref in t.referenced_tweets or ():
        index = _REF_INDEX.get(ref.type)
        if index is not None:
            refs[index] = ref.id
    metrics = t.public_metrics
    if metrics is None:
        outside = (t.like_count, t.retweet_count, t.repost_count, t.reply_count, t.quote_count)
        if any(count is not _ABSENT for count in outside):
            raise _NotPlain
        metrics = _NO_METRICS
    history = t.edit_history_tweet_ids
    later = _Later(t.entities, text)
    # The posts schema's columns, in its order (tests/test_flat_tweet.py compares every row
    # with the general parser's, column by column).
    return [
        t.id,  # post_id
        created_at_ms(t.created_at),
        author_id,
        username,
        text,
        t.lang,
        SOURCE,  # lang_source, as in parse.map_tweet
        t.conversation_id,
        *refs,  # reply_to_post_id, quoted_post_id, reposted_post_id
        later,  # hashtags
        later,  # mentions
        later,  # cashtags
        later,  # urls
        media,  # the items as decoded, as many as the row will have (what row_score counts)
        metrics.like_count,
        metrics.repost_count if metrics.retweet_count is _ABSENT else metrics.retweet_count,
        metrics.reply_count,
        metrics.quote_count,
        t.possibly_sensitive,
        None,  # withheld_in_countries
        None,  # geo
        [t.id] if history is None or history is _ABSENT else history,  # edit_history_ids
        later,  # text_hash
        source_uri,
        line,  # source_line
    ]


def finish_row(row: list) -> None:
    """Make the entity lists, media and text hash of a row of ``fast_rows`` that is kept.
    The hash is of the text the row was made with, unless it was set since (scrub_pii sets it
    when it changes the text)."""
    later = row[_ENTITY_COLUMNS.start]  # the _Later that stands in every column filled here
    row[_ENTITY_COLUMNS] = _entities(later.entities, later.text)
    row[_MEDIA] = _media(row[_MEDIA])
    if row[_TEXT_HASH] is later:
        row[_TEXT_HASH] = dedup_hash(later.text)


def _entities(ents: _Entities | None, text: str) -> list[list[str]]:
    """hashtags, mentions, cashtags and urls."""
    if ents is None:
        found = extract_entities(text)
        return [found.hashtags, found.mentions, found.cashtags, found.urls]
    urls = (u.expanded_url or u.url for u in ents.urls or () if u.media_key is _ABSENT)
    return [
        [e.tag for e in ents.hashtags or () if e.tag is not None],
        [e.username for e in ents.mentions or () if e.username is not None],
        [e.tag for e in ents.cashtags or () if e.tag is not None],
        [u for u in urls if u is not None],
    ]


def _media(items: list[_Media]) -> list[dict]:
    out = []
    for m in items:
        url = m.url
        mp4 = [v for v in m.variants or () if v.content_type == "video/mp4"]
        if mp4:
            url = max(mp4, key=lambda v: v.bit_rate or 0).url
        out.append(
            {
                "media_key": m.media_key,
                "type": m.type,
                "url": url,
                "preview_url": m.preview_image_url,
                "duration_ms": m.duration_ms,
                "width": m.width,
                "height": m.height,
                "alt_text": m.alt_text,
            }
        )
    return out
