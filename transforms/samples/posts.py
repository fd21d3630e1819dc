"""Synthetic X-style post streams in every input form of DESIGN.md §4, with a truth file for tests.

Files written (under ``DIR``):

* ``pages-0001.jsonl`` -- X API v2 search response pages (``data`` + ``includes.users/media/
  tweets`` + ``meta``, some with ``errors`` about unavailable tweets), plus the non-post pages an
  archive also holds (tweet counts, a user page, a list page);
* ``stream-0001.jsonl.gz`` -- filtered-stream lines (one tweet in ``data``, ``matching_rules``);
* ``twarc-0001.jsonl.zst`` -- twarc2 flattened tweets (``author``, ``attachments.media`` and
  ``referenced_tweets`` inlined, ``__twarc`` metadata);
* ``flat-0001.jsonl`` -- plain post objects (``id``, ``text``, ``created_at``, ``author_id``...);
* ``compliance-0001.jsonl`` -- delete events, in the plain and the X compliance-stream form.

Posts include replies (threads), quotes, reposts, edits (``edit_history_tweet_ids``), photos,
videos with several variants, GIFs, many languages and scripts, emoji, HTML entities, e-mail
addresses and phone numbers, control characters, decomposed accents, copy-paste spam and posts
repeated across files. Some lines are malformed on purpose. ``_SAMPLE.json`` records all of it.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import zstandard

from transforms.samples.seeds import seed_for
from transforms.samples.x_text import LANG_TEMPLATES, compose_text, tco

__all__ = ["PostsSampleConfig", "generate_posts_sample"]

_TWITTER_EPOCH_MS = 1288834974657
_DAY0 = datetime(2026, 11, 16, tzinfo=timezone.utc)
_LANG_WEIGHTS = {
    "en": 40,
    "es": 10,
    "pt": 6,
    "fr": 6,
    "de": 6,
    "ja": 10,
    "ar": 6,
    "hi": 6,
    "ko": 5,
    "tr": 5,
}
_SPAM = "Crypto giveaway!!! Send 1 $ETH and get 2 back https://t.co/sc4mL1nk0 🚀🚀"


@dataclass(frozen=True)
class PostsSampleConfig:
    """What ``generate_posts_sample`` makes.

    Args:
        users: accounts posting.
        posts: posts written by them (replies, quotes, reposts and edits included).
        days: the posts' time span, from 2026-11-16 UTC.
        malformed: malformed lines spread over the files.
        seed: everything derives from it.
    """

    users: int = 30
    posts: int = 300
    days: int = 5
    malformed: int = 6
    seed: int = 0

    def __post_init__(self):
        if self.users < 2 or self.posts < 20 or self.days < 1 or self.malformed < 0:
            raise ValueError("expected users >= 2, posts >= 20, days >= 1, malformed >= 0")


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _snowflake(ts: datetime, seq: int) -> str:
    ms = int(ts.timestamp() * 1000)
    return str(((ms - _TWITTER_EPOCH_MS) << 22) | ((seq % 1024) << 12) | (seq // 1024 % 4096))


def _append_link(rng, tweet: dict, entities: dict, plain: str, **entity) -> str:
    """Append a t.co link to the tweet's text with its URL entity; return the new plain text."""
    link = tco(rng)
    start = len(plain) + 1
    tweet["text"] += " " + link
    entities.setdefault("urls", []).append(
        {"start": start, "end": start + len(link), "url": link, **entity}
    )
    return plain + " " + link


class _World:
    """Users, posts and media, built in time order."""

    def __init__(self, cfg: PostsSampleConfig):
        self.cfg = cfg
        self.rng = random.Random(seed_for(cfg.seed, "posts"))
        self.users = [self._user(i) for i in range(cfg.users)]
        self.users_by_id = {u["id"]: u for u in self.users}
        self.tweets: list[dict] = []  # every version of every post, in time order
        self.originals: list[dict] = []  # those that reference no other post
        self.media: dict[str, dict] = {}
        self.edited: dict[str, str] = {}  # superseded version id -> latest version id
        self.pii_ids: list[str] = []
        self.spam_ids: list[str] = []
        self._seq = 0

    def _user(self, i: int) -> dict:
        rng = self.rng
        langs = list(_LANG_WEIGHTS)
        lang = langs[i % len(langs)]
        joined = _DAY0 - timedelta(days=rng.randint(30, 4000))
        return {
            "id": str(10**17 + i * 7919 + rng.randint(0, 7000)),
            "username": f"{['road', 'drive', 'city', 'fleet', 'metro'][i % 5]}_{lang}_{i}",
            "name": f"User {i}",
            "created_at": _iso(joined),
            "verified": i % 7 == 0,
            "public_metrics": {"followers_count": rng.randint(0, 50000), "following_count": 10},
            "_lang": lang,
        }

    def _new_id(self, ts: datetime) -> str:
        self._seq += 1
        return _snowflake(ts, self._seq)

    def _media(self, ts: datetime, kind: str) -> str:
        rng = self.rng
        key = {"photo": "3_", "video": "7_", "animated_gif": "16_"}[kind] + self._new_id(ts)
        m = {"media_key": key, "type": kind, "width": 1280, "height": 720}
        if kind == "photo":
            m["url"] = f"https://pbs.twimg.com/media/{key}.jpg"
            if rng.random() < 0.5:
                m["alt_text"] = "A dashcam view of a busy road"
        else:
            m["preview_image_url"] = f"https://pbs.twimg.com/ext_tw_video_thumb/{key}.jpg"
            base = f"https://video.twimg.com/ext_tw_video/{key}"
            m["variants"] = [
                {"content_type": "application/x-mpegURL", "url": f"{base}/pl/playlist.m3u8"},
                {"bit_rate": 832000, "content_type": "video/mp4", "url": f"{base}/640x360.mp4"},
                {"bit_rate": 2176000, "content_type": "video/mp4", "url": f"{base}/1280x720.mp4"},
                {"bit_rate": 256000, "content_type": "video/mp4", "url": f"{base}/320x180.mp4"},
            ]
            if kind == "video":
                m["duration_ms"] = rng.randint(3000, 140000)
        self.media[key] = m
        return key

    def build(self) -> None:
        cfg, rng = self.cfg, self.rng
        span = timedelta(days=cfg.days).total_seconds()
        times = sorted(_DAY0 + timedelta(seconds=rng.uniform(0, span)) for _ in range(cfg.posts))
        for i, ts in enumerate(times):
            ts = ts.replace(microsecond=(ts.microsecond // 1000) * 1000)
            author = rng.choice(self.users)
            originals = self.originals
            roll = rng.random()
            if i < 10 or roll < 0.55 or not originals:
                self._post(ts, author, oddity=rng.choice([None] * 18 + ["control", "nfd"]))
            elif roll < 0.75:
                self._post(ts, author, parent=rng.choice(self.tweets[-30:]), kind="replied_to")
            elif roll < 0.85:
                self._post(ts, author, parent=rng.choice(originals), kind="quoted")
            elif roll < 0.93:
                self._repost(ts, author, rng.choice(originals))
            elif roll < 0.97 and originals:
                self._edit(ts, rng.choice(originals[-40:]))
            else:
                self._post(ts, author, spam=True)

    def _post(self, ts, author, parent=None, kind=None, oddity=None, spam=False) -> dict:
        rng = self.rng
        lang = author["_lang"] if rng.random() < 0.8 else rng.choice(list(LANG_TEMPLATES))
        mention = None
        if kind == "replied_to":
            p_author = self._author(parent)
            mention = (p_author["username"], p_author["id"])
        composed = compose_text(rng, lang, mention=mention, pii=rng.random() < 0.04, oddity=oddity)
        tid = self._new_id(ts)
        text, entities = composed.api_text, composed.entities
        plain = composed.text  # entity offsets count code points of the unescaped text
        if spam:
            at = _SPAM.index("$ETH")
            text = plain = _SPAM
            lang = "en"
            entities = {"cashtags": [{"start": at, "end": at + 4, "tag": "ETH"}]}
            self.spam_ids.append(tid)
        tweet = {
            "id": tid,
            "text": text,
            "author_id": author["id"],
            "created_at": _iso(ts),
            "lang": lang,
            "conversation_id": tid,
            "possibly_sensitive": rng.random() < 0.03,
            "public_metrics": {
                "retweet_count": rng.randint(0, 50),
                "reply_count": rng.randint(0, 20),
                "like_count": rng.randint(0, 500),
                "quote_count": rng.randint(0, 10),
                "bookmark_count": rng.randint(0, 10),
                "impression_count": rng.randint(100, 90000),
            },
            "edit_history_tweet_ids": [tid],
            "reply_settings": "everyone",
        }
        if composed.pii:
            self.pii_ids.append(tid)
        if parent is not None:
            tweet["referenced_tweets"] = [{"type": kind, "id": parent["id"]}]
            if kind == "replied_to":
                tweet["conversation_id"] = parent["conversation_id"]
                tweet["in_reply_to_user_id"] = parent["author_id"]
            else:
                username = self._author(parent)["username"]
                plain = _append_link(
                    rng,
                    tweet,
                    entities,
                    plain,
                    expanded_url=f"https://twitter.com/{username}/status/{parent['id']}",
                    display_url=f"twitter.com/{username}/s…",
                )
        roll = rng.random()
        if not spam and roll < 0.22:
            kind_m = "photo" if roll < 0.15 else "video" if roll < 0.2 else "animated_gif"
            n = rng.randint(1, 4) if kind_m == "photo" else 1
            keys = [self._media(ts, kind_m) for _ in range(n)]
            tweet["attachments"] = {"media_keys": keys}
            plain = _append_link(
                rng,
                tweet,
                entities,
                plain,
                expanded_url=f"https://twitter.com/i/web/status/{tid}/photo/1",
                display_url="pic.twitter.com/…",
                media_key=keys[0],
            )
        if entities:
            tweet["entities"] = entities
        self._append(tweet)
        return tweet

    def _repost(self, ts, author, original) -> None:
        tid = self._new_id(ts)
        o_author = self._author(original)
        self._append(
            {
                "id": tid,
                "text": f"RT @{o_author['username']}: {original['text']}"[:280],
                "author_id": author["id"],
                "created_at": _iso(ts),
                "lang": original["lang"],
                "conversation_id": tid,
                "referenced_tweets": [{"type": "retweeted", "id": original["id"]}],
                "public_metrics": {
                    "retweet_count": 0,
                    "reply_count": 0,
                    "like_count": 0,
                    "quote_count": 0,
                },
                "edit_history_tweet_ids": [tid],
                "entities": {
                    "mentions": [
                        {
                            "start": 3,
                            "end": 4 + len(o_author["username"]),
                            "username": o_author["username"],
                            "id": o_author["id"],
                        }
                    ]
                },
            }
        )

    def _edit(self, ts, original) -> None:
        if original["id"] in self.edited or len(original["edit_history_tweet_ids"]) > 1:
            return
        tid = self._new_id(ts)
        edited = json.loads(json.dumps(original))
        edited["id"] = tid
        edited["text"] = original["text"] + " (edited)"
        edited["edit_history_tweet_ids"] = [original["id"], tid]
        self.edited[original["id"]] = tid
        self._append(edited)

    def _author(self, tweet) -> dict:
        return self.users_by_id[tweet["author_id"]]

    def _append(self, tweet: dict) -> None:
        self.tweets.append(tweet)
        if "referenced_tweets" not in tweet:
            self.originals.append(tweet)

    def public_user(self, user) -> dict:
        return {k: v for k, v in user.items() if not k.startswith("_")}


def _includes(world: _World, tweets: list[dict], by_id: dict, missing: set) -> tuple[dict, list]:
    users, media, refs, errors = {}, {}, {}, []
    for t in tweets:
        users[t["author_id"]] = world.public_user(world._author(t))
        for key in t.get("attachments", {}).get("media_keys", []):
            media[key] = world.media[key]
        for ref in t.get("referenced_tweets", []):
            if ref["id"] in missing:
                errors.append(
                    {
                        "value": ref["id"],
                        "detail": f"Could not find tweet with referenced_tweets.id: [{ref['id']}].",
                        "title": "Not Found Error",
                        "resource_type": "tweet",
                        "parameter": "referenced_tweets.id",
                        "resource_id": ref["id"],
                        "type": "https://api.twitter.com/2/problems/resource-not-found",
                    }
                )
            elif ref["id"] in by_id:
                refs[ref["id"]] = by_id[ref["id"]]
                users[by_id[ref["id"]]["author_id"]] = world.public_user(
                    world._author(by_id[ref["id"]])
                )
    inc = {"users": list(users.values())}
    if media:
        inc["media"] = list(media.values())
    if refs:
        inc["tweets"] = list(refs.values())
    return inc, errors


def _flatten(world: _World, tweet: dict, by_id: dict, retrieved: str) -> dict:
    """A twarc2 flattened tweet: author, media and referenced tweets inlined."""
    flat = json.loads(json.dumps(tweet))
    flat["author"] = world.public_user(world._author(tweet))
    if "attachments" in tweet:
        flat["attachments"]["media"] = [world.media[k] for k in tweet["attachments"]["media_keys"]]
    for ref in flat.get("referenced_tweets", []):
        target = by_id.get(ref["id"])
        if target:
            ref.update(json.loads(json.dumps(target)))
            ref["author"] = world.public_user(world._author(target))
    flat["__twarc"] = {
        "url": "https://api.twitter.com/2/tweets/search/all",
        "version": "2.14.0",
        "retrieved_at": retrieved,
    }
    return flat


def _plain(world: _World, tweet: dict) -> dict:
    """A plain post object, as another system might export it."""
    out = {k: tweet[k] for k in ("id", "text", "created_at", "author_id", "lang") if k in tweet}
    out["conversation_id"] = tweet.get("conversation_id")
    for ref in tweet.get("referenced_tweets", []):
        out[
            {
                "replied_to": "reply_to_post_id",
                "quoted": "quoted_post_id",
                "retweeted": "reposted_post_id",
            }[ref["type"]]
        ] = ref["id"]
    out["like_count"] = tweet.get("public_metrics", {}).get("like_count", 0)
    out["edit_history_ids"] = tweet["edit_history_tweet_ids"]
    return out


_MALFORMED = [
    ("truncated_json", b'{"id": "1", "text": "cut off in the mid'),
    ("invalid_utf8", b'{"id": "2", "text": "\xff\xfe broken bytes", "created_at": "x"}'),
    ("not_an_object", b'["an", "array", "is", "not", "a", "post"]'),
    ("missing_field", b'{"id": "3", "text": "no created_at or author_id"}'),
    ("wrong_type", b'{"id": {"oops": 1}, "text": 5, "created_at": 7, "author_id": []}'),
    ("bad_timestamp", b'{"id": "4", "text": "t", "created_at": "yesterday", "author_id": "9"}'),
]


def generate_posts_sample(
    directory: str,
    config: PostsSampleConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write a synthetic post-stream sample under ``directory``; return (and save) its truth."""
    cfg = config or PostsSampleConfig()
    os.makedirs(directory, exist_ok=True)
    world = _World(cfg)
    world.build()
    rng = random.Random(seed_for(cfg.seed, "posts-files"))
    tweets = world.tweets
    by_id = {t["id"]: t for t in tweets}
    # A few replies point at posts that were deleted upstream: the API answers with `errors`.
    ghost_ids = {_snowflake(_DAY0 - timedelta(days=1), 999_000 + i) for i in range(2)}
    replies = [t for t in tweets if t.get("referenced_tweets", [{}])[0].get("type") == "replied_to"]
    for t, ghost in zip(replies[:2], sorted(ghost_ids), strict=False):
        t["referenced_tweets"] = [{"type": "replied_to", "id": ghost}]

    # Each post goes to one form; 10% also appear in a second one (duplicates across files).
    forms = ("pages", "stream", "twarc", "flat")
    assigned: dict[str, list[dict]] = {f: [] for f in forms}
    duplicated = []
    for t in tweets:
        form = rng.choices(forms, weights=(45, 25, 20, 10))[0]
        assigned[form].append(t)
        if rng.random() < 0.1:
            other = rng.choice([f for f in forms if f != form])
            assigned[other].append(t)
            duplicated.append(t["id"])
    retrieved = _iso(_DAY0 + timedelta(days=cfg.days, hours=1))

    lines: dict[str, list[bytes]] = {}
    skipped: dict[str, int] = {}

    def dump(obj) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")

    pages = []
    chunk = 20
    for i in range(0, len(assigned["pages"]), chunk):
        data = assigned["pages"][i : i + chunk]
        inc, errors = _includes(world, data, by_id, ghost_ids)
        page = {
            "data": data,
            "includes": inc,
            "meta": {
                "newest_id": data[-1]["id"],
                "oldest_id": data[0]["id"],
                "result_count": len(data),
                "next_token": f"b26v89c19zqg8o3fo{i}",
            },
        }
        if errors:
            page["errors"] = errors
            skipped["error_entry"] = skipped.get("error_entry", 0) + len(errors)
        pages.append(dump(page))
    pages.insert(
        1,
        dump(
            {
                "data": [
                    {
                        "end": _iso(_DAY0 + timedelta(hours=h + 1)),
                        "start": _iso(_DAY0 + timedelta(hours=h)),
                        "tweet_count": 12,
                    }
                    for h in range(3)
                ],
                "meta": {"total_tweet_count": 36},
            }
        ),
    )
    pages.insert(
        3,
        dump(
            {"data": [world.public_user(u) for u in world.users[:5]], "meta": {"result_count": 5}}
        ),
    )
    pages.insert(
        5, dump({"data": [{"id": "1597", "name": "Traffic watchers"}], "meta": {"result_count": 1}})
    )
    skipped.update({"tweet_counts": 1, "user_page": 1, "list_page": 1})
    lines["pages-0001.jsonl"] = pages

    stream = []
    for t in assigned["stream"]:
        inc, errors = _includes(world, [t], by_id, ghost_ids)
        line = {
            "data": t,
            "includes": inc,
            "matching_rules": [{"id": "1593184279531335680", "tag": "traffic"}],
        }
        if errors:
            line["errors"] = errors
            skipped["error_entry"] = skipped.get("error_entry", 0) + len(errors)
        stream.append(dump(line))
    lines["stream-0001.jsonl.gz"] = stream
    lines["twarc-0001.jsonl.zst"] = [
        dump(_flatten(world, t, by_id, retrieved)) for t in assigned["twarc"]
    ]
    lines["flat-0001.jsonl"] = [dump(_plain(world, t)) for t in assigned["flat"]]

    # Compliance deletes: some posts, one of them an edited post's latest version.
    latest = [t for t in tweets if t["id"] not in world.edited]
    deleted = sorted({t["id"] for t in rng.sample(latest, max(2, len(latest) // 40))})
    compliance = []
    for i, pid in enumerate(deleted):
        if i % 2:
            event = {
                "data": {
                    "delete": {
                        "tweet": {"id": pid, "author_id": by_id[pid]["author_id"]},
                        "event_at": retrieved,
                    }
                }
            }
        else:
            event = {"action": "delete", "id": pid}
        compliance.append(dump(event))
    lines["compliance-0001.jsonl"] = compliance

    # Malformed lines and one blank line, at known places.
    malformed = []
    names = sorted(lines)
    for i in range(cfg.malformed):
        kind, raw = _MALFORMED[i % len(_MALFORMED)]
        raw += b" " * (i // len(_MALFORMED))  # every malformed line unique, to find it again
        name = names[i % len(names)]
        at = rng.randint(0, len(lines[name]))
        lines[name].insert(at, raw)
        malformed.append({"file": name, "kind": kind, "raw": raw})
    lines["flat-0001.jsonl"].insert(1, b"")
    skipped["blank_line"] = 1

    files = {}
    for name in sorted(lines):
        body = b"\n".join(lines[name]) + b"\n"
        path = os.path.join(directory, name)
        if name.endswith(".gz"):
            body = gzip.compress(body, mtime=0)
        elif name.endswith(".zst"):
            body = zstandard.ZstdCompressor(level=10).compress(body)
        with open(path, "wb") as f:
            f.write(body)
        files[name] = {"lines": len(lines[name]), "bytes": len(body)}
        if progress:
            progress(name)
    # Where each malformed line ended up (1-based line numbers), now that all are inserted.
    for m in malformed:
        m["line"] = lines[m["file"]].index(m.pop("raw")) + 1

    all_ids = sorted(by_id)
    expected = sorted(set(all_ids) - set(world.edited) - set(deleted))
    langs: dict[str, int] = {}
    for pid in expected:
        langs[by_id[pid]["lang"]] = langs.get(by_id[pid]["lang"], 0) + 1
    truth = {
        "kind": "posts",
        "config": asdict(cfg),
        "files": files,
        "post_ids": all_ids,
        "edited": world.edited,
        "deleted_ids": deleted,
        "expected_post_ids": expected,
        "duplicated_ids": sorted(set(duplicated)),
        "missing_referenced_ids": sorted(ghost_ids),
        "spam_ids": world.spam_ids,
        "spam_text": _SPAM,
        "pii_ids": world.pii_ids,
        "malformed": malformed,
        "skipped": skipped,
        "langs": dict(sorted(langs.items())),
    }
    with open(os.path.join(directory, "_SAMPLE.json"), "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=1, ensure_ascii=False)
    return truth
