"""The post sample: every input form, realistic content, and a truth that matches the files."""

from __future__ import annotations

import gzip
import html
import json
import os
from collections import Counter

import pytest
import zstandard

from transforms.samples import PostsSampleConfig, generate_posts_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("posts"))
    return root, generate_posts_sample(root, PostsSampleConfig(seed=11))


def _lines(root, name):
    with open(os.path.join(root, name), "rb") as f:
        raw = f.read()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif name.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    assert raw.endswith(b"\n")
    return raw[:-1].split(b"\n")


def _parsed(root, truth):
    """Every well-formed line as (file, line number, object); checks malformed ones are where said."""
    bad = {(m["file"], m["line"]) for m in truth["malformed"]}
    found_bad, blank, out = set(), 0, []
    for name in truth["files"]:
        lines = _lines(root, name)
        assert len(lines) == truth["files"][name]["lines"]
        for n, line in enumerate(lines, 1):
            if not line:
                blank += 1
                continue
            try:
                obj = json.loads(line.decode("utf-8"))
                if not isinstance(obj, dict) or not isinstance(obj.get("id", ""), str):
                    raise ValueError("not a post-shaped object")
                if "text" in obj and not {"created_at", "author_id"} <= set(obj):
                    raise ValueError("missing fields")
                if "created_at" in obj and not obj["created_at"][:4].isdigit():
                    raise ValueError("bad timestamp")
            except ValueError:
                found_bad.add((name, n))
                continue
            out.append((name, n, obj))
    assert found_bad == bad
    assert blank == truth["skipped"]["blank_line"]
    return out


def _tweets(objs):
    """Every tweet object in the files, by form (referenced/included ones too)."""
    for name, _, obj in objs:
        if name.startswith("pages") and isinstance(obj.get("data"), list):
            if obj["data"] and "text" in obj["data"][0]:
                for t in obj["data"]:
                    yield "page", t
                for t in obj.get("includes", {}).get("tweets", []):
                    yield "included", t
        elif name.startswith("stream"):
            yield "stream", obj["data"]
            for t in obj.get("includes", {}).get("tweets", []):
                yield "included", t
        elif name.startswith("twarc"):
            yield "twarc", obj
            for ref in obj.get("referenced_tweets", []):
                if "text" in ref:
                    yield "included", ref
        elif name.startswith("flat"):
            yield "flat", obj


def test_every_line_parses_except_the_malformed_ones(sample):
    _, truth = sample
    objs = _parsed(*sample)
    assert len(truth["malformed"]) == 6
    assert {m["kind"] for m in truth["malformed"]} >= {"truncated_json", "invalid_utf8"}
    assert set(truth["files"]) == {
        "pages-0001.jsonl",
        "stream-0001.jsonl.gz",
        "twarc-0001.jsonl.zst",
        "flat-0001.jsonl",
        "compliance-0001.jsonl",
    }
    assert len(objs) > 150


def test_every_post_is_in_the_files_and_duplicates_repeat(sample):
    _, truth = sample
    primary = Counter(t["id"] for form, t in _tweets(_parsed(*sample)) if form != "included")
    assert set(primary) == set(truth["post_ids"])
    assert all(primary[i] >= 2 for i in truth["duplicated_ids"])
    assert set(truth["expected_post_ids"]) == (
        set(truth["post_ids"]) - set(truth["edited"]) - set(truth["deleted_ids"])
    )


def test_entities_point_at_their_text(sample):
    checked = Counter()
    for form, t in _tweets(_parsed(*sample)):
        text = html.unescape(t["text"])
        for kind, prefix, key in (
            ("hashtags", "#", "tag"),
            ("cashtags", "$", "tag"),
            ("mentions", "@", "username"),
            ("urls", "", "url"),
        ):
            for e in t.get("entities", {}).get(kind, []):
                assert text[e["start"] : e["end"]] == prefix + e[key], (form, t["id"], kind)
                checked[kind] += 1
    assert min(checked.values()) > 5 and set(checked) == {
        "hashtags",
        "cashtags",
        "mentions",
        "urls",
    }


def test_content_is_varied_like_real_streams(sample):
    _, truth = sample
    objs = _parsed(*sample)
    tweets = [t for _, t in _tweets(objs)]
    kinds = Counter(r["type"] for t in tweets for r in t.get("referenced_tweets", []))
    assert kinds["replied_to"] and kinds["quoted"] and kinds["retweeted"]
    assert len(truth["langs"]) >= 8
    raw = "\n".join(t["text"] for t in tweets)
    assert "&amp;" in raw and "&lt;" in raw and ("#東京" in raw or "#自動運転" in raw)
    assert any("\x07" in t["text"] for t in tweets)  # a control character to remove
    assert any("e\u0301" in t["text"] for t in tweets)  # a decomposed accent to recompose
    media = {m["type"]: m for _, _, o in objs for m in o.get("includes", {}).get("media", [])}
    assert set(media) == {"photo", "video", "animated_gif"}
    bitrates = [v["bit_rate"] for v in media["video"]["variants"] if "bit_rate" in v]
    assert len(bitrates) >= 2
    users = [u for _, _, o in objs for u in o.get("includes", {}).get("users", [])]
    assert users and all("username" in u for u in users)
    by_id = {t["id"]: t for t in tweets}
    for old, new in truth["edited"].items():
        assert by_id[new]["edit_history_tweet_ids"] == [old, new]
    assert all(by_id[i]["text"] == truth["spam_text"] for i in truth["spam_ids"])
    assert all(
        "example.com" in by_id[i]["text"] or "5" in by_id[i]["text"] for i in truth["pii_ids"]
    )
    assert any("matching_rules" in o for _, _, o in objs)
    assert any("__twarc" in o for _, _, o in objs)


def test_non_posts_and_compliance_events(sample):
    _, truth = sample
    objs = _parsed(*sample)
    counts = [o for _, _, o in objs if "total_tweet_count" in o.get("meta", {})]
    errors = sum(len(o.get("errors", [])) for _, _, o in objs)
    assert len(counts) == truth["skipped"]["tweet_counts"] == 1
    assert errors == truth["skipped"]["error_entry"] > 0
    deletes = [o for n, _, o in objs if n.startswith("compliance")]
    ids = {o.get("id") or o["data"]["delete"]["tweet"]["id"] for o in deletes}
    assert ids == set(truth["deleted_ids"]) and ids <= set(truth["post_ids"])
    assert any("action" in o for o in deletes) and any("data" in o for o in deletes)


def test_same_seed_same_bytes_other_seed_other_posts(tmp_path):
    a = generate_posts_sample(str(tmp_path / "a"), PostsSampleConfig(posts=40, seed=1))
    b = generate_posts_sample(str(tmp_path / "b"), PostsSampleConfig(posts=40, seed=1))
    c = generate_posts_sample(str(tmp_path / "c"), PostsSampleConfig(posts=40, seed=2))
    for name in a["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a["post_ids"] == b["post_ids"] != c["post_ids"]
