"""Parsing one line of a post stream into posts, compliance events, skips and rejects.

Every form is detected per line, so forms mix freely in a file:

* X API v2 pages ``{"data": [tweets], "includes": {...}, "errors": [...], "meta": {...}}`` and
  filtered-stream lines (one tweet in ``data``, with ``matching_rules``);
* twarc2 flattened tweets (``author``, ``attachments.media``, ``referenced_tweets[]`` inlined);
* plain post objects (``id``, ``text``, ``created_at``, ``author_id``; optional fields named as
  in the posts schema: ``author_username``, ``reply_to_post_id``, ``like_count``,
  ``edit_history_ids``...);
* compliance events: batch results ``{"action": "delete", "id": ...}`` (post ids) and every
  post- and user-stream event ``{"data": {"<event>": {...}}}`` (``transforms.posts.compliance``);
  lines of ``--user-compliance`` files (user ids) go through ``parse_user_compliance_line``.

Pages of things that are not posts (tweet counts, users, lists) and ``errors`` entries are
skipped and counted. A line that cannot be read becomes one reject; inside a page, one bad tweet
rejects only that tweet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import MAX_PAYLOAD_BYTES
from transforms.posts.compliance import Event, event_name, stream_event, user_batch_event
from transforms.posts.errors import RecordError
from transforms.posts.flat_tweet import fast_rows, finish_row
from transforms.posts.lang_id import DETECTED, SOURCE, detect_lang
from transforms.posts.repeats import SeenPosts
from transforms.posts.resolve import row_score
from transforms.posts.rows import COLUMN, row_dicts, row_values
from transforms.posts.text import clean_text, dedup_hash, entity_columns, scrub_pii
from transforms.posts.timestamps import created_at_ms

__all__ = [
    "MAX_POSTS_PER_LINE",
    "Chunk",
    "ParseOptions",
    "RecordError",
    "parse_line",
    "parse_line_general",
    "parse_user_compliance_line",
]

# X API pages hold at most 500 posts plus their includes; a line with far more is not a page
# but a way to turn one line into millions of rows or rejects held in memory at once.
MAX_POSTS_PER_LINE = 10_000
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_V1_WITHHELD = "withheld_in_countries"
_REF_COLUMNS = {
    "replied_to": "reply_to_post_id",
    "quoted": "quoted_post_id",
    "retweeted": "reposted_post_id",
}
# What _add reads and sets of a row (a list of values in schema order).
_POST_ID = COLUMN["post_id"]
_TEXT = COLUMN["text"]
_LANG = COLUMN["lang"]
_LANG_SOURCE = COLUMN["lang_source"]
_REPOSTED = COLUMN["reposted_post_id"]
_HISTORY = COLUMN["edit_history_ids"]
_TEXT_HASH = COLUMN["text_hash"]


@dataclass(frozen=True)
class ParseOptions:
    """Per-run options that change what parsing keeps.

    Args:
        scrub_pii: replace e-mail addresses and phone numbers with placeholders.
        langs: keep only posts in these languages (empty: all).
        min_chars: drop posts whose cleaned text is shorter.
        drop_reposts: drop reposts (retweets).
    """

    scrub_pii: bool = False
    langs: frozenset[str] = frozenset()
    min_chars: int = 0
    drop_reposts: bool = False


@dataclass
class Chunk:
    """What a run of lines parsed into. ``counts`` is a tally (see ``transforms.tally``).

    ``values`` are the values of the rows kept, row after row, each in the posts schema's column
    order (``transforms.posts.rows``); ``rows`` shows them as dicts. With ``seen`` (shared by the
    chunks of one source), repeats of a post that resolving would drop are counted
    ``deduplicated:post_id`` instead of kept (see ``transforms.posts.repeats``). ``deletes`` are
    the post ids of ``delete`` events, ``events`` every other compliance event.
    """

    source_uri: str
    values: list = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    seen: SeenPosts | None = None

    @property
    def rows(self) -> list[dict]:
        """The rows kept, as dicts of their columns (made anew on every call)."""
        return row_dicts(self.values)

    def skip(self, reason: str, n: int = 1) -> None:
        self.counts["records_in"] += n
        self.counts["skipped:" + reason] += n

    def reject(self, locator: str, reason: str, message: str, payload: bytes) -> None:
        self.counts["records_in"] += 1
        self.rejects.append(
            {
                "source_uri": self.source_uri,
                "locator": locator,
                "reason": reason,
                "message": message,
                # A copy: orjson.dumps leaves a 4 KiB buffer behind even a 10-byte result.
                "payload": bytes(memoryview(payload)[:MAX_PAYLOAD_BYTES]),
            }
        )


def parse_line(
    data: bytes, number: int, chunk: Chunk, options: ParseOptions, *, utf8: bool = False
) -> None:
    """Parse one line into ``chunk``: a line of the common forms (a twarc2 tweet, a
    filtered-stream line, a page of posts) by the fast path (``transforms.posts.flat_tweet``),
    anything else by ``parse_line_general``. ``utf8``: the caller has checked that ``data`` is
    valid UTF-8."""
    rows = fast_rows(data, chunk.source_uri, number, MAX_POSTS_PER_LINE, utf8=utf8)
    if rows is None:
        parse_line_general(data, number, chunk, options)
    else:
        for row in rows:
            if _admit(chunk, row, options):
                finish_row(row)
                chunk.values += row


def parse_line_general(data: bytes, number: int, chunk: Chunk, options: ParseOptions) -> None:
    """Parse one line of any form into ``chunk``; what ``parse_line`` does when its fast path
    declines (the tests compare the two)."""
    obj = _load(data, number, chunk)
    if obj is None:
        return
    try:
        _dispatch(obj, data, number, chunk, options)
    except RecordError as exc:
        chunk.reject(f"line {number}", exc.reason, str(exc), data)


def parse_user_compliance_line(
    data: bytes, number: int, chunk: Chunk, options: ParseOptions | None = None
) -> None:
    """Parse one line of a user batch compliance file (``{"id", "action", "reason", ...}``,
    the ids are user ids) into ``chunk``; compliance stream events are taken here too."""
    obj = _load(data, number, chunk)
    if obj is None:
        return
    try:
        payload = obj.get("data")
        if type(payload) is dict and (name := event_name(payload)) is not None:
            _event(chunk, name, payload.get(name))
        elif "action" in obj or "id" in obj:
            event = user_batch_event(obj)
            if event is None:
                chunk.skip("compliance_unknown_action")
            else:
                chunk.events.append(event)
                chunk.skip("compliance_" + event.action)
        else:
            raise RecordError(
                "not_compliance",
                f'expected a batch compliance line {{"id", "action", "reason"}} or a '
                f"compliance stream event, got keys {sorted(obj)[:8]}",
            )
    except RecordError as exc:
        chunk.reject(f"line {number}", exc.reason, str(exc), data)


def _load(data: bytes, number: int, chunk: Chunk) -> dict | None:
    """A line's JSON object, or None when the line is blank (skipped) or not one (rejected)."""
    locator = f"line {number}"
    if not data.strip():
        chunk.skip("blank_line")
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            chunk.reject(locator, "invalid_utf8", f"invalid UTF-8 at byte {bad.start}", data)
            return None
        chunk.reject(locator, "json_invalid", str(exc), data)
        return None
    if not isinstance(obj, dict):
        chunk.reject(locator, "not_an_object", f"expected a JSON object, got {_kind(obj)}", data)
        return None
    return obj


def _dispatch(obj: dict, data: bytes, number: int, chunk: Chunk, options: ParseOptions) -> None:
    if obj.get("action") == "delete":
        chunk.deletes.append(_id(obj, "id", required=True))
        chunk.skip("compliance_delete")
        return
    payload = obj.get("data")
    # A stream's post has "text": only other objects are looked at for an event, so telling
    # events apart costs a post line one dictionary lookup.
    if type(payload) is dict and "text" not in payload:
        name = event_name(payload)
        if name is not None:
            _event(chunk, name, payload.get(name))
            return
    if isinstance(payload, list | dict):
        items = [payload] if isinstance(payload, dict) else payload
        _page(obj, items, number, data, chunk, options)
        return
    if "id" in obj or "text" in obj:
        _tweet_and_refs(obj, number, data, chunk, options)
        return
    errors = obj.get("errors")
    if isinstance(errors, list):
        # Each entry counts as one record; an empty list still accounts for its line.
        if errors:
            chunk.skip("error_entry", len(errors))
        else:
            chunk.skip("empty_page")
        return
    raise RecordError("unknown_payload", f"no post, page or delete event in keys {sorted(obj)[:8]}")


def _event(chunk: Chunk, name: str, body: dict | None) -> None:
    if name == "delete":
        tweet = body.get("tweet") if isinstance(body.get("tweet"), dict) else body
        chunk.deletes.append(_id(tweet, "data.delete.tweet.id", required=True, key="id"))
        chunk.skip("compliance_delete")
    elif name == "unknown":
        chunk.skip("compliance_unknown_event")
    else:
        chunk.events.append(stream_event(name, body))
        chunk.skip("compliance_" + name)


def _page(
    obj: dict, items: list, number: int, data: bytes, chunk: Chunk, options: ParseOptions
) -> None:
    errors = obj.get("errors")
    if isinstance(errors, list) and errors:
        chunk.skip("error_entry", len(errors))
    if not any(isinstance(t, dict) and "text" in t for t in items):
        if items:
            first = items[0] if isinstance(items[0], dict) else {}
            reason = (
                "tweet_counts"
                if "tweet_count" in first
                else "user_page"
                if "username" in first
                else "list_page"
                if "name" in first
                else "unknown_page"
            )
            chunk.skip(reason)
        elif not errors:
            chunk.skip("empty_page")
        return
    includes = obj.get("includes") if isinstance(obj.get("includes"), dict) else {}
    # Only string keys join: ids that are not strings are found by no post.
    users = _index(_list(includes.get("users"), "includes.users"), "id")
    media = _index(_list(includes.get("media"), "includes.media"), "media_key")
    included = _list(includes.get("tweets"), "includes.tweets")
    _check_posts(len(items) + len(included), "data and includes.tweets")
    for where, tweets in (("data", items), ("includes.tweets", included)):
        for i, tweet in enumerate(tweets):
            if not isinstance(tweet, dict):
                at = f"line {number} {where}[{i}]"
                chunk.reject(at, "wrong_type", f"{where}[{i}]: expected an object", b"")
                continue
            try:
                _add(chunk, map_tweet(tweet, users, media, chunk.source_uri, number), options)
            except RecordError as exc:
                at = f"line {number} {where}[{i}]"
                chunk.reject(at, exc.reason, str(exc), _payload(tweet, data))


def _tweet_and_refs(obj: dict, number: int, data: bytes, chunk: Chunk, options) -> None:
    refs = _list(obj.get("referenced_tweets"), "referenced_tweets")
    _check_posts(1 + len(refs), "a post and its referenced_tweets")
    _add(chunk, map_tweet(obj, {}, {}, chunk.source_uri, number), options)
    # twarc2 inlines referenced tweets, each a post of its own.
    for i, ref in enumerate(refs):
        if isinstance(ref, dict) and "text" in ref:
            try:
                _add(chunk, map_tweet(ref, {}, {}, chunk.source_uri, number), options)
            except RecordError as exc:
                at = f"line {number} referenced_tweets[{i}]"
                chunk.reject(at, exc.reason, str(exc), _payload(ref, data))


def _check_posts(n: int, what: str) -> None:
    if n > MAX_POSTS_PER_LINE:
        raise RecordError(
            "too_many_posts", f"{what}: {n} posts in one line, more than {MAX_POSTS_PER_LINE}"
        )


def _payload(tweet: dict, data: bytes) -> bytes:
    """A bad post of a page as JSON, for its reject; the whole line if it nests deeper than
    orjson writes (254 levels; it reads 1024)."""
    try:
        return orjson.dumps(tweet)
    except orjson.JSONEncodeError:
        return data


def _add(chunk: Chunk, row: dict, options: ParseOptions) -> None:
    """Count ``row`` in, and keep it unless an option or the repeats table drops it (counted)."""
    values = row_values(row)
    if _admit(chunk, values, options):
        chunk.values += values


def _admit(chunk: Chunk, row: list, options: ParseOptions) -> bool:
    """Count ``row`` (its values in schema order) in; True if it is to be kept, False if an
    option or the repeats table drops it (counted). The caller keeps it."""
    chunk.counts["records_in"] += 1
    if options.scrub_pii:
        row[_TEXT], replaced = scrub_pii(row[_TEXT])
        if replaced:
            chunk.counts["info:pii_scrubbed_posts"] += 1
            chunk.counts["info:pii_replaced"] += replaced
            row[_TEXT_HASH] = dedup_hash(row[_TEXT])
    if row[_LANG] is None:
        # Before the filters, so --langs sees the detected language. Rare in X data: posts
        # without a lang come from plain exports and hand-made files.
        row[_LANG] = detect_lang(row[_TEXT])
        row[_LANG_SOURCE] = DETECTED
    if options.langs and row[_LANG] not in options.langs:
        chunk.counts["skipped:filter_lang"] += 1
    elif len(row[_TEXT]) < options.min_chars:
        chunk.counts["skipped:filter_min_chars"] += 1
    elif options.drop_reposts and row[_REPOSTED] is not None:
        chunk.counts["skipped:filter_repost"] += 1
    elif chunk.seen is not None and chunk.seen.is_repeat(
        (row[_POST_ID], *row[_HISTORY]), row_score(row)
    ):
        chunk.counts["deduplicated:post_id"] += 1
    else:
        return True
    return False


def map_tweet(t: dict, users: dict, media: dict, source_uri: str, line: int) -> dict:
    """One tweet object (any form), from ``line`` of ``source_uri`` -> a row of the ``posts``
    schema; ``RecordError`` if bad. ``users`` and ``media`` are a page's includes by id."""
    pid = _id(t, "id", required=True)
    text = t.get("text")
    if text is None:
        raise RecordError("missing_field", "text: missing")
    if not isinstance(text, str):
        raise RecordError("wrong_type", f"text: expected a string, got {_kind(text)}")
    created = _timestamp(t)
    author = t.get("author")
    if not isinstance(author, dict):
        author = None
    author_id = _id(t, "author_id") or (_id(author, "author.id", key="id") if author else None)
    if author_id is None:
        raise RecordError("missing_field", "author_id: missing")
    author = author or users.get(author_id) or {}
    username = author.get("username", t.get("author_username"))
    text = clean_text(text)
    refs = {"reply_to_post_id": None, "quoted_post_id": None, "reposted_post_id": None}
    referenced = t.get("referenced_tweets")
    if referenced is not None:
        if not isinstance(referenced, list):
            raise RecordError("wrong_type", "referenced_tweets: expected a list")
        for ref in referenced:
            kind = (
                _str(ref.get("type"), "referenced_tweets.type") if isinstance(ref, dict) else None
            )
            column = _REF_COLUMNS.get(kind)
            if column:
                refs[column] = _id(ref, "referenced_tweets.id", key="id")
    for column in refs:
        if refs[column] is None and t.get(column) is not None:
            refs[column] = _id(t, column)
    metrics = t.get("public_metrics")
    if not isinstance(metrics, dict):
        metrics = t
    history = t.get("edit_history_tweet_ids", t.get("edit_history_ids"))
    if history is None:
        history = [pid]
    elif not isinstance(history, list) or not all(map(_is_id, history)):
        raise RecordError("wrong_type", "edit_history_tweet_ids: expected a list of ids")
    return {
        "post_id": pid,
        "created_at": created,
        "author_id": author_id,
        "author_username": _str(username, "author.username"),
        "text": text,
        "lang": _str(t.get("lang"), "lang"),
        # What _add makes "detected" (with a detected lang) when the source has no lang.
        "lang_source": SOURCE,
        "conversation_id": _id(t, "conversation_id"),
        **refs,
        **_entities(t, text),
        "media": _media(t, media),
        "like_count": _int(metrics, "like_count"),
        "repost_count": _int(metrics, "retweet_count")
        if "retweet_count" in metrics
        else _int(metrics, "repost_count"),
        "reply_count": _int(metrics, "reply_count"),
        "quote_count": _int(metrics, "quote_count"),
        "possibly_sensitive": _bool(t.get("possibly_sensitive"), "possibly_sensitive"),
        "withheld_in_countries": _withheld(t) if "withheld" in t or _V1_WITHHELD in t else None,
        "geo": _geo(t["geo"]) if t.get("geo") is not None else None,
        "edit_history_ids": list(map(str, history)),
        "text_hash": dedup_hash(text),
        "source_uri": source_uri,
        "source_line": line,
    }


def _entities(t: dict, text: str) -> dict:
    ents = t.get("entities")
    if not isinstance(ents, dict):
        return entity_columns(text)

    urls = [
        e.get("expanded_url") or e.get("url")
        for e in _list(ents.get("urls"), "entities.urls")
        if isinstance(e, dict) and "media_key" not in e
    ]
    return {
        "hashtags": _values(ents, "hashtags", "tag"),
        "mentions": _values(ents, "mentions", "username"),
        "cashtags": _values(ents, "cashtags", "tag"),
        "urls": [u for u in urls if isinstance(u, str)],
    }


def _values(ents: dict, kind: str, key: str) -> list[str]:
    """The string ``key`` of each object in ``ents[kind]``."""
    items = ents.get(kind)
    if items is None:
        return []
    if not isinstance(items, list):
        _list(items, f"entities.{kind}")  # raises: not an array
    return [e[key] for e in items if isinstance(e, dict) and isinstance(e.get(key), str)]


def _media(t: dict, media: dict) -> list[dict]:
    attachments = t.get("attachments")
    if not isinstance(attachments, dict):
        return []
    inline = attachments.get("media")
    keys = _list(attachments.get("media_keys"), "attachments.media_keys")
    items = (
        inline
        if isinstance(inline, list)
        else [media[k] for k in keys if isinstance(k, str) and k in media]
    )
    out = []
    for m in items:
        if not isinstance(m, dict):
            continue
        url = m.get("url")
        variants = [
            v
            for v in _list(m.get("variants"), "media.variants")
            if isinstance(v, dict) and v.get("content_type") == "video/mp4"
        ]
        if variants:
            url = max(variants, key=lambda v: _int(v, "bit_rate") or 0).get("url")
        out.append(
            {
                "media_key": _str(m.get("media_key"), "media.media_key"),
                "type": _str(m.get("type"), "media.type"),
                "url": _str(url, "media.url"),
                "preview_url": _str(m.get("preview_image_url"), "media.preview_image_url"),
                "duration_ms": _int(m, "duration_ms"),
                "width": _int(m, "width"),
                "height": _int(m, "height"),
                "alt_text": _str(m.get("alt_text"), "media.alt_text"),
            }
        )
    return out


def _withheld(t: dict) -> list[str] | None:
    """Country codes a post is withheld in: v2 ``withheld.country_codes``, v1.1 and plain
    ``withheld_in_countries``; None when withheld nowhere."""
    value = t.get("withheld")
    codes = value.get("country_codes") if isinstance(value, dict) else t.get(_V1_WITHHELD)
    if value is not None and not isinstance(value, dict):
        raise RecordError("wrong_type", f"withheld: expected an object, got {_kind(value)}")
    codes = _list(codes, "withheld.country_codes")
    if not all(isinstance(c, str) for c in codes):
        raise RecordError("wrong_type", "withheld.country_codes: expected a list of strings")
    return sorted(set(codes)) or None


def _geo(value: Any) -> dict:
    """v2 ``geo``: ``{"place_id", "coordinates": {"type": "Point", "coordinates": [lon, lat]}}``."""
    if not isinstance(value, dict):
        raise RecordError("wrong_type", f"geo: expected an object, got {_kind(value)}")
    point = value.get("coordinates")
    if isinstance(point, dict):
        point = point.get("coordinates")
    point = _list(point, "geo.coordinates.coordinates")
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in point):
        raise RecordError("wrong_type", "geo.coordinates.coordinates: expected [lon, lat]")
    return {
        "place_id": _str(value.get("place_id"), "geo.place_id"),
        "coordinates": [float(x) for x in point] or None,
    }


def _timestamp(t: dict) -> int:
    value = t.get("created_at")
    if value is None:
        raise RecordError("missing_field", "created_at: missing")
    if not isinstance(value, str):
        raise RecordError(
            "wrong_type", f"created_at: expected a timestamp string, got {_kind(value)}"
        )
    return created_at_ms(value)


def _id(obj: dict, name: str, *, required: bool = False, key: str | None = None) -> str | None:
    """``obj[key or name]`` as an id string; ``name`` (a dotted path when ``key`` is given)
    names it in errors."""
    value = obj.get(key or name)
    if type(value) is str and value:
        return value
    if value is None:
        if required:
            raise RecordError("missing_field", f"{name}: missing")
        return None
    if _is_id(value):
        return str(value)
    raise RecordError("wrong_type", f"{name}: expected an id string, got {_kind(value)}")


def _is_id(value: Any) -> bool:
    """A non-empty string, or a non-negative integer (some plain forms write ids as numbers)."""
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _list(value: Any, name: str) -> list:
    """An optional array: ``[]`` when missing or null, a ``wrong_type`` error when not an array."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise RecordError("wrong_type", f"{name}: expected an array, got {_kind(value)}")


def _index(items: list, key: str) -> dict:
    return {x[key]: x for x in items if isinstance(x, dict) and isinstance(x.get(key), str)}


def _str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RecordError("wrong_type", f"{name}: expected a string, got {_kind(value)}")


def _int(obj: dict, name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and _I64_MIN <= value <= _I64_MAX:
        return value
    raise RecordError("wrong_type", f"{name}: expected an integer, got {_kind(value)}")


def _bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise RecordError("wrong_type", f"{name}: expected true or false, got {_kind(value)}")


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), "a value")
