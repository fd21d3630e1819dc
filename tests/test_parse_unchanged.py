"""``parse_source`` gives exactly the output it gave when tests/data/parse_golden.json was
recorded: the same posts table (schema and every value), rejects, deletes and tallies, chunk by
chunk, for every input form, the hostile field-by-type corpus and a corpus of awkward texts.

Speed work on parsing must leave these digests alone. To record them again (only when the
output is meant to change, and say why in the commit)::

    python tests/test_parse_unchanged.py
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import random
import tempfile
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from test_hostile_posts import FORMS, PATHS, RAW_VALUES, mutated

from schemas import POSTS
from transforms.posts import ParseOptions, parse_source
from transforms.samples import PostsSampleConfig, generate_posts_sample
from transforms.samples.firehose import firehose_lines

GOLDEN = Path(__file__).parent / "data" / "parse_golden.json"
FILTERS = ParseOptions(
    scrub_pii=True, langs=frozenset({"en", "ja", "es"}), min_chars=20, drop_reposts=True
)
SAMPLE_FILES = ("compliance", "flat", "pages", "stream", "twarc")

# ----------------------------------------------------------------------------- inputs


def hostile_lines() -> list[bytes]:
    """The field-by-type lines of test_hostile_posts (each place of each form replaced by each
    JSON type, dropped or duplicated), without its three largest values (100k-deep nesting, a
    256 KiB string): those only ever reach the JSON reader, and they weigh 240 MB."""
    big = {"huge string", "nested 100k arrays", "nested 100k objects"}
    cases = [("set", raw) for name, raw in RAW_VALUES.items() if name not in big]
    cases += [("drop", b"")] + [("dup", RAW_VALUES[k]) for k in ("null", "array", "2**200")]
    return [
        mutated(FORMS[form], path, how, raw)
        for (form, path), (how, raw) in itertools.product(PATHS, cases)
    ]


_PIECES = [
    "a", "Zed", " ", "  ", "\t", "\n", "\r\n", "\r", "\x00", "\x07", "\x1b", "\x7f", "\x85",
    "\u00a0", "\u3000", "\u2028", "\u200b", "\u200d", "\ufeff", "&amp;", "&lt;", "&gt;", "&",
    "&amp;lt;", "&copy;", "&#39;", "e\u0301", "é", "A\u030a", "\u212b", "\u1100\u1161", "ß",
    "İ", "ﬁ", "Ǆ", "ς", "\u0345", "RT @", "RT @user_1: ", "rt @x: ", "http://", "https://t.co/ab",
    "HTTPS://T.CO/UP", "https://x.com/#frag", "www.x.com", "#tag", "#東京", "＃全角", "#123",
    "@men_tion", "＠zen", "$TSLA", "$", "a@b.co", "jane.doe+x@mail.example.org",
    "+1 415 555 0142", "(415) 555-0142", "12345678901234567", "東京", "渋滞", "🚗", "👨‍👩‍👧",
    "مرحبا", "हिन्दी", "…", ".", "!", "'", '"', "<", ">",
]  # fmt: skip


def awkward_texts(n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "\t\n", "RT @a: ", "https://t.co/x", "&amp;", "plain ascii text"]
    texts += ["".join(rng.choices(_PIECES, k=rng.randrange(1, 24))) for _ in range(n)]
    return texts


def text_lines() -> list[bytes]:
    """Plain posts (entities found in the text) and page posts (entities given) whose texts
    mix escapes, controls, unnormalized and case-folding characters, spaces, links and PII."""
    lines = []
    for i, text in enumerate(awkward_texts(3000)):
        post = {
            "id": str(1000 + i),
            "text": text,
            "created_at": "2026-11-20T08:00:00.000Z",
            "author_id": str(i % 7),
            "lang": ["en", "ja", "es", "ar"][i % 4],
        }
        if i % 5 == 0:
            post["reposted_post_id"] = "1"
        if i % 2:
            post["entities"] = {"hashtags": [{"tag": "x"}], "urls": [{"url": "https://t.co/a"}]}
            lines.append(orjson.dumps({"data": [post]}))
        else:
            lines.append(orjson.dumps(post))
    return lines


def hand_checked() -> bytes:
    return (Path(__file__).parent / "data" / "hand_checked.jsonl").read_bytes()


def _joined(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def inputs(tmp: Path) -> dict[str, tuple[bytes, ParseOptions, dict]]:
    """name -> (file bytes, options, parse_source keyword arguments)."""
    cases: dict[str, tuple[bytes, ParseOptions, dict]] = {}
    for seed in (0, 1):
        generate_posts_sample(str(tmp / f"sample{seed}"), PostsSampleConfig(seed=seed))
        for path in sorted((tmp / f"sample{seed}").glob("*-0001.*")):
            form = path.name.split("-")[0]
            cases[f"sample{seed}-{form}"] = (path.read_bytes(), ParseOptions(), {})
            if seed == 0:
                cases[f"sample{seed}-{form}-filters"] = (path.read_bytes(), FILTERS, {})
    cases["hand_checked"] = (hand_checked(), ParseOptions(), {})
    cases["hand_checked-filters"] = (hand_checked(), FILTERS, {})
    firehose = _joined(firehose_lines(2000))
    cases["firehose"] = (firehose, ParseOptions(), {"chunk_records": 1500})
    cases["firehose-filters"] = (firehose, FILTERS, {})
    hostile = _joined(hostile_lines())
    cases["hostile"] = (hostile, ParseOptions(), {"chunk_records": 4000})
    cases["hostile-scrub"] = (hostile, ParseOptions(scrub_pii=True), {})
    texts = _joined(text_lines())
    cases["texts"] = (texts, ParseOptions(), {})
    cases["texts-filters"] = (texts, FILTERS, {})
    return cases


# ----------------------------------------------------------------------------- digests


def _sha(items) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(orjson.dumps(item, option=orjson.OPT_SORT_KEYS) + b"\n")
    return h.hexdigest()


# Columns added since the digests were first recorded (issue 14: withheld countries, geo):
# ``posts`` digests every other column, so its recorded values prove those did not change;
# ``posts_new_columns`` digests these.
NEW_COLUMNS = ["withheld_in_countries", "geo"]
# Language ID (issue 16) fills ``lang`` where the source has none and says so in
# ``lang_source``: ``posts`` digests those rows with their source's null ``lang`` (so its
# recorded values prove nothing else changed) and ``posts_lang_source`` digests both columns.
LANG_COLUMNS = ["lang", "lang_source"]


def _posts_rows(table: pa.Table):
    assert table.schema.equals(POSTS.schema, check_metadata=True), table.schema
    i = table.schema.get_field_index("created_at")
    # Timestamps as their stored integers: what is written, not a datetime's rendering of it.
    table = table.set_column(i, "created_at", table["created_at"].cast(pa.int64()))
    for row in table.drop_columns(NEW_COLUMNS).to_pylist():
        if row.pop("lang_source") == "detected":
            row["lang"] = None
        yield row


def _new_columns(table: pa.Table):
    yield from table.select(["post_id", *NEW_COLUMNS]).to_pylist()


def _lang_columns(table: pa.Table):
    yield from table.select(["post_id", *LANG_COLUMNS]).to_pylist()


def _reject(r: dict) -> dict:
    return {**r, "payload": r["payload"].hex()}


def digest(data: bytes, options: ParseOptions, kwargs: dict) -> dict:
    chunks = list(
        parse_source(
            io.BytesIO(data), "mem://golden/in.jsonl", options, max_line_bytes=1 << 20, **kwargs
        )
    )
    tally = Counter()
    for c in chunks:
        tally.update(c.tally)
    return {
        "chunks": [c.posts.num_rows for c in chunks],
        "tally": dict(sorted(tally.items())),
        "reject_reasons": dict(
            sorted(Counter(r["reason"] for c in chunks for r in c.rejects).items())
        ),
        "posts": _sha(row for c in chunks for row in _posts_rows(c.posts)),
        "posts_new_columns": _sha(row for c in chunks for row in _new_columns(c.posts)),
        "posts_lang_source": _sha(row for c in chunks for row in _lang_columns(c.posts)),
        "rejects": _sha(_reject(r) for c in chunks for r in c.rejects),
        "deletes": _sha(c.deletes for c in chunks),
        "chunk_tallies": _sha(dict(c.tally) for c in chunks),
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict:
    return inputs(tmp_path_factory.mktemp("golden"))


def test_the_golden_file_covers_every_input(cases):
    golden = _golden()
    assert sorted(golden) == sorted(cases)
    # not trivially passing: posts, rejects, deletes, skips and filters all happen
    total = Counter()
    for d in golden.values():
        total.update(d["tally"])
    assert total["records_in"] > 25_000 and sum(sum(d["chunks"]) for d in golden.values()) > 8000
    assert total["skipped:compliance_delete"] and total["skipped:filter_lang"]
    assert total["skipped:filter_repost"] and total["skipped:filter_min_chars"]
    assert total["info:pii_replaced"] and total["skipped:error_entry"]
    reasons = Counter()
    for d in golden.values():
        reasons.update(d["reject_reasons"])
    assert reasons["wrong_type"] > 1000 and reasons["json_invalid"] and reasons["missing_field"]
    assert len(golden["firehose"]["chunks"]) == 3


def _golden() -> dict:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


@pytest.mark.parametrize("name", sorted(_golden()))
def test_parse_output_is_unchanged(cases, name):
    want = _golden()[name]
    got = digest(*cases[name])
    assert got["tally"] == want["tally"]
    assert got["reject_reasons"] == want["reject_reasons"]
    assert got == want


def write_golden() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        golden = {name: digest(*case) for name, case in sorted(inputs(Path(tmp)).items())}
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({len(golden)} inputs)")


if __name__ == "__main__":
    write_golden()
