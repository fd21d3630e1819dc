"""Realistic twarc2 flattened tweets at benchmark scale (millions of lines, several KB each).

``shardsmith sample posts`` writes small, hand-shaped samples; throughput has to be measured
on lines shaped like what twarc2 writes for a full-archive search: every expansion (author
with description and metrics, ``context_annotations``, URL cards with titles and images,
``edit_controls``, media) and the referenced tweets inlined -- about 6.5 KB and 1.86 posts a
line. Referenced tweets come from a pool of popular ones, so they repeat and ``ingest posts``
deduplicates a large share of what it reads, as on real data. The tests' golden digests are
computed over these lines: a change here shows up there.

    python -m transforms.samples.firehose OUT_DIR --lines 1000000 --files 40
"""

from __future__ import annotations

import argparse
import os
import random
from datetime import datetime, timedelta, timezone

import orjson

__all__ = ["api_forms", "firehose_lines", "write_firehose"]

_EPOCH = datetime(2026, 11, 1, tzinfo=timezone.utc)
_WORDS = {
    "en": [
        "the",
        "traffic",
        "on",
        "the",
        "highway",
        "this",
        "morning",
        "was",
        "wild",
        "and",
        "my",
        "car",
        "drove",
        "itself",
        "most",
        "of",
        "the",
        "way",
        "home",
        "while",
        "i",
        "watched",
        "the",
        "rain",
        "and",
        "the",
        "city",
        "lights",
    ],
    "ja": [
        "東京",
        "の",
        "朝",
        "の",
        "渋滞",
        "は",
        "すごい",
        "今日",
        "も",
        "雨",
        "自動運転",
        "で",
        "帰宅",
        "した",
    ],
    "es": [
        "el",
        "tráfico",
        "de",
        "esta",
        "mañana",
        "en",
        "la",
        "autopista",
        "fue",
        "increíble",
        "y",
        "el",
        "coche",
        "condujo",
        "solo",
    ],
    "tr": [
        "İstanbul",
        "trafiği",
        "yine",
        "kilitlendi",
        "bugün",
        "yağmur",
        "vardı",
        "araba",
        "kendi",
        "sürdü",
    ],
    "ko": ["서울", "출근길", "교통", "체증", "오늘", "비", "자율주행", "으로", "집에", "왔다"],
    "ar": [
        "حركة",
        "المرور",
        "في",
        "الصباح",
        "كانت",
        "مزدحمة",
        "جدا",
        "اليوم",
        "والسيارة",
        "قادت",
        "نفسها",
    ],
}
_TAGS = ["FSD", "AI", "traffic", "自動運転", "İstanbul", "서울", "EV", "roadtrip", "rain"]
_DOMAINS = [
    (46, "Business Taxonomy", "Categories within Brand Verticals that narrow down the scope"),
    (47, "Brand", "Brands and Companies"),
    (65, "Interests and Hobbies Vertical", "Top level interests and hobbies groupings"),
    (66, "Interests and Hobbies Category", "A grouping of interests and hobbies entities"),
    (131, "Unified Twitter Taxonomy", "A taxonomy of user interests."),
]


def _ts(seconds: float) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _user(rng: random.Random, uid: int) -> dict:
    lang = rng.choice(list(_WORDS))
    name = f"{rng.choice(['road', 'fleet', 'metro', 'drive'])}_{lang}_{uid % 9973}"
    return {
        "id": str(100_000_000_000_000_000 + uid),
        "username": name,
        "name": f"User {uid} 🚗",
        "description": " ".join(rng.choices(_WORDS[lang], k=24))[:160] + " #EV https://t.co/x",
        "location": rng.choice(["San Francisco, CA", "東京", "İstanbul", "Madrid", "서울"]),
        "url": "https://t.co/abcdefghij",
        "created_at": _ts(-rng.randrange(10**8)),
        "verified": rng.random() < 0.1,
        "verified_type": rng.choice(["none", "blue", "business"]),
        "protected": False,
        "profile_image_url": f"https://pbs.twimg.com/profile_images/{uid}/abc_normal.jpg",
        "pinned_tweet_id": str(2_000_000_000_000_000_000 + uid * 7),
        "public_metrics": {
            "followers_count": rng.randrange(10**6),
            "following_count": rng.randrange(5000),
            "tweet_count": rng.randrange(10**5),
            "listed_count": rng.randrange(1000),
            "like_count": rng.randrange(10**5),
            "media_count": rng.randrange(1000),
        },
        "entities": {
            "url": {
                "urls": [
                    {
                        "start": 0,
                        "end": 23,
                        "url": "https://t.co/abcdefghij",
                        "expanded_url": f"https://example.com/{name}",
                        "display_url": f"example.com/{name}",
                    }
                ]
            }
        },
    }


def _tweet(rng: random.Random, tid: int, seconds: float, users: list[dict]) -> dict:
    lang = rng.choice(list(_WORDS))
    author = rng.choice(users)
    tag = rng.choice(_TAGS)
    mention = rng.choice(users)["username"]
    words = " ".join(rng.choices(_WORDS[lang], k=rng.randrange(6, 30)))
    link = f"https://t.co/{tid % 10**10:010d}"
    text = f"@{mention} {words} #{tag} {link}"
    mstart = 0
    hstart = len(f"@{mention} {words} ")
    ustart = hstart + len(tag) + 2
    tweet_id = str(2_100_000_000_000_000_000 + tid)
    tweet = {
        "id": tweet_id,
        "text": text,
        "author_id": author["id"],
        "created_at": _ts(seconds),
        "lang": lang,
        "conversation_id": tweet_id,
        "possibly_sensitive": False,
        "reply_settings": "everyone",
        "source": "Twitter for iPhone",
        "public_metrics": {
            "retweet_count": rng.randrange(1000),
            "reply_count": rng.randrange(100),
            "like_count": rng.randrange(10000),
            "quote_count": rng.randrange(50),
            "bookmark_count": rng.randrange(50),
            "impression_count": rng.randrange(10**6),
        },
        "edit_history_tweet_ids": [tweet_id],
        "edit_controls": {
            "edits_remaining": 5,
            "is_edit_eligible": True,
            "editable_until": _ts(seconds + 3600),
        },
        "entities": {
            "mentions": [
                {"start": mstart, "end": len(mention) + 1, "username": mention, "id": str(tid)}
            ],
            "hashtags": [{"start": hstart, "end": hstart + len(tag) + 1, "tag": tag}],
            "urls": [
                {
                    "start": ustart,
                    "end": ustart + len(link),
                    "url": link,
                    "expanded_url": f"https://news.example.com/2026/11/story-{tid % 99991}",
                    "display_url": f"news.example.com/2026/11/story-{tid % 99991}",
                    "images": [
                        {
                            "url": f"https://pbs.twimg.com/news_img/{tid}?format=jpg&name=orig",
                            "width": 1200,
                            "height": 630,
                        },
                        {
                            "url": f"https://pbs.twimg.com/news_img/{tid}?format=jpg&name=150x150",
                            "width": 150,
                            "height": 150,
                        },
                    ],
                    "status": 200,
                    "title": "Self-driving cars are changing the morning commute in big cities",
                    "description": "A look at how driver assistance and autonomy features are "
                    "used by commuters in Tokyo, Istanbul, Seoul and San Francisco this year.",
                    "unwound_url": f"https://news.example.com/2026/11/story-{tid % 99991}",
                }
            ],
            "annotations": [
                {
                    "start": hstart + 1,
                    "end": hstart + len(tag),
                    "probability": 0.61,
                    "type": "Other",
                    "normalized_text": tag,
                }
            ],
        },
        "context_annotations": [
            {
                "domain": {"id": str(d), "name": n, "description": desc},
                "entity": {"id": str(10**15 + d * 7919 + tid % 13), "name": f"Entity {d}"},
            }
            for d, n, desc in rng.sample(_DOMAINS, 4)
        ],
        "author": author,
    }
    if rng.random() < 0.2:
        key = f"3_{tid}"
        tweet["attachments"] = {
            "media_keys": [key],
            "media": [
                {
                    "media_key": key,
                    "type": "photo",
                    "url": f"https://pbs.twimg.com/media/{tid}.jpg",
                    "width": 1280,
                    "height": 720,
                    "alt_text": "a car on a rainy highway",
                }
            ],
        }
    return tweet


def firehose_lines(count: int, *, seed: int = 0, first: int = 0, popular: int = 200) -> list[bytes]:
    """``count`` twarc2 lines (without newlines), the same for the same arguments; post ids
    follow line numbers from ``first``, so lines made with disjoint ranges never share one."""
    rng = random.Random(seed * 1_000_003 + first)
    users = [_user(rng, rng.randrange(10**6)) for _ in range(200)]
    # Popular tweets that many lines retweet or quote: the same post id again and again.
    pool = [_tweet(random.Random(seed * 7 + i), 10**12 + i, i, users) for i in range(popular)]
    refs = (("retweeted", 0.5), ("quoted", 0.2), ("replied_to", 0.16))
    lines = []
    for n in range(first, first + count):
        tweet = _tweet(rng, n, n * 0.01, users)
        kind = None
        r = rng.random()
        for name, p in refs:
            if r < p:
                kind = name
                break
            r -= p
        if kind:
            ref = dict(rng.choice(pool))
            ref["type"] = kind
            tweet["referenced_tweets"] = [ref]
            if kind == "retweeted":
                tweet["text"] = f"RT @{ref['author']['username']}: {ref['text']}"[:280]
        tweet["__twarc"] = {
            "url": "https://api.twitter.com/2/tweets/search/all?query=traffic",
            "version": "2.14.0",
            "retrieved_at": "2026-11-21T01:00:00.000Z",
        }
        lines.append(orjson.dumps(tweet))
    return lines


def api_forms(lines: list[bytes], *, per_page: int = 100) -> tuple[list[bytes], list[bytes]]:
    """The tweets of twarc2 ``lines`` as the X API gives them: pages of ``per_page`` tweets and
    filtered-stream lines (one a tweet). Each tweet's author goes to ``includes.users`` and its
    referenced tweets (without their ``type``) to ``includes.tweets``, their authors too; a page
    includes each user and referenced tweet once."""
    pages, stream, page = [], [], []
    rule = [{"id": "1710", "tag": "traffic"}]
    for line in lines:
        tweet, users, refs = _api_form(orjson.loads(line))
        includes = {"users": users, "tweets": refs} if refs else {"users": users}
        stream.append(orjson.dumps({"data": tweet, "includes": includes, "matching_rules": rule}))
        page.append((tweet, users, refs))
        if len(page) == per_page:
            pages.append(_page(page))
            page = []
    if page:
        pages.append(_page(page))
    return pages, stream


def _api_form(tweet: dict) -> tuple[dict, list[dict], list[dict]]:
    """A twarc2 tweet as the API gives it: the tweet, its users and its referenced tweets."""
    tweet = dict(tweet)
    tweet.pop("__twarc", None)
    users = [tweet.pop("author")]
    refs = []
    for ref in tweet.get("referenced_tweets", []):
        ref = dict(ref)
        users.append(ref.pop("author"))
        refs.append({k: v for k, v in ref.items() if k != "type"})
    tweet["referenced_tweets"] = [
        {"type": r["type"], "id": r["id"]} for r in tweet.get("referenced_tweets", [])
    ]
    if not tweet["referenced_tweets"]:
        del tweet["referenced_tweets"]
    return tweet, users, refs


def _page(items: list) -> bytes:
    users = {u["id"]: u for _, us, _ in items for u in us}
    refs = {r["id"]: r for _, _, rs in items for r in rs}
    return orjson.dumps(
        {
            "data": [t for t, _, _ in items],
            "includes": {"users": list(users.values()), "tweets": list(refs.values())},
            "meta": {"result_count": len(items)},
        }
    )


def _write_file(job: tuple[str, int, int, int]) -> None:
    path, first, count, seed = job
    with open(path, "wb") as out:
        for line in firehose_lines(count, seed=seed, first=first, popular=2000):
            out.write(line + b"\n")


def write_firehose(
    directory: str, *, lines: int, files: int, seed: int = 0, processes: int | None = None
) -> list[str]:
    """Write ``lines`` twarc2 lines into ``files`` JSONL files under ``directory``, in
    ``processes`` processes (default: one per core); returns the paths written."""
    from multiprocessing import Pool

    os.makedirs(directory, exist_ok=True)
    per = -(-lines // files)
    jobs = [
        (f"{directory}/firehose-{i:04d}.jsonl", i * per, min(per, lines - i * per), seed)
        for i in range(files)
        if lines > i * per
    ]
    with Pool(processes or os.cpu_count() or 1) as pool:
        pool.map(_write_file, jobs, chunksize=1)
    return [job[0] for job in jobs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = write_firehose(args.directory, lines=args.lines, files=args.files, seed=args.seed)
    size = sum(os.path.getsize(p) for p in paths)
    print(f"{len(paths)} files, {args.lines:,} lines, {size / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
