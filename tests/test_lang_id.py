"""Language ID of posts whose source has no ``lang`` (issue 16, item 4): X's codes, ``und`` when
unsure, ``lang_source`` saying where ``lang`` came from, and ``--langs`` filtering every post."""

from __future__ import annotations

import io
import json

import pytest
from tablegen import read_version

from catalog import Dataset
from runners.cli import main
from transforms.posts import ParseOptions, parse_source
from transforms.posts.lang_id import X_LANGS, detect_lang

CLEAR = {
    "en": "Traffic on the bridge is terrible again this morning, everyone is late",
    "de": "Der Stau auf der Autobahn ist heute wieder unglaublich lang",
    "fr": "Les voitures autonomes arrivent enfin à Paris cette semaine",
    "es": "Mañana hay partido y todo el mundo va a estar en el estadio",
    "pt": "O trânsito está parado na marginal de novo, que dia difícil",
    "ja": "東京の朝の渋滞は本当にすごいですね、今日も遅刻しそうです",
    "ko": "서울 출근길 교통 체증이 오늘도 정말 심하네요",
    "ar": "الزحام شديد اليوم في الرياض والجميع متأخر عن العمل",
    "ru": "Сегодня утром на мосту огромная пробка, все опаздывают",
    "tr": "İstanbul trafiği yine kilitlendi, herkes işe geç kalacak",
    # X's own legacy codes: Indonesian "in", Hebrew "iw".
    "in": "Saya suka makan nasi goreng setiap pagi sebelum berangkat kerja",
    "iw": "אני אוהב לאכול פלאפל בבוקר לפני העבודה",
}


@pytest.mark.parametrize("lang", sorted(CLEAR))
def test_clear_texts_get_their_language_in_xs_codes(lang):
    assert lang in X_LANGS
    assert detect_lang(CLEAR[lang]) == lang
    # URLs, mentions, cashtags and hashtag marks do not sway it
    noisy = f"@someone_else {CLEAR[lang]} https://t.co/AbCdEf $TSLA #news"
    assert detect_lang(noisy) == lang


@pytest.mark.parametrize(
    "text",
    ["", "ok", "lol", "@jane_doe", "https://t.co/abc @x $TSLA", "👍🔥😂", "1234 5678", "#AI #ML"],
)
def test_too_short_or_letterless_texts_are_und(text):
    assert detect_lang(text) == "und"


def test_ambiguous_text_is_und():
    # Word-salad of several languages: no language is likely enough.
    assert detect_lang("taxi hotel radio pizza metro") == "und"


def _line(pid: str, text: str, **extra) -> dict:
    return {
        "id": pid,
        "text": text,
        "created_at": "2026-11-01T12:00:00.000Z",
        "author_id": "7",
        **extra,
    }


def _lines(posts: list[dict]) -> bytes:
    return b"".join(json.dumps(p, ensure_ascii=False).encode() + b"\n" for p in posts)


POSTS = [
    _line("1", CLEAR["de"]),  # no lang: detected
    _line("2", CLEAR["de"], lang="en"),  # X says en: kept as X says, never re-detected
    _line("3", "ok", lang=None),  # no lang, too short: und
    _line("4", CLEAR["ja"], lang="ja", edit_history_tweet_ids=["4"]),  # the fast path
    _line("5", CLEAR["fr"], edit_history_tweet_ids=["5"]),  # the fast path, no lang
]


def _parsed(options: ParseOptions) -> dict[str, dict]:
    data = io.BytesIO(_lines(POSTS))
    chunks = list(parse_source(data, "mem://lang/in.jsonl", options, max_line_bytes=1 << 20))
    return {r["post_id"]: r for c in chunks for r in c.posts.to_pylist()}


def test_lang_source_says_where_lang_came_from():
    rows = _parsed(ParseOptions())
    got = {pid: (r["lang"], r["lang_source"]) for pid, r in rows.items()}
    assert got == {
        "1": ("de", "detected"),
        "2": ("en", "source"),
        "3": ("und", "detected"),
        "4": ("ja", "source"),
        "5": ("fr", "detected"),
    }


def test_langs_filter_sees_detected_languages():
    rows = _parsed(ParseOptions(langs=frozenset({"de", "fr"})))
    # 2 is German text but X said en: the source's label is what the filter sees.
    assert sorted(rows) == ["1", "5"]


def test_a_copy_with_xs_lang_wins_over_one_with_a_detected_lang(tmp_path):
    # The same post twice: first without lang (a plain export), then as X served it.
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines([_line("9", CLEAR["es"]), _line("9", CLEAR["es"], lang="pt")]))
    assert main(["ingest", "posts", str(src), "--to", str(tmp_path / "ds")]) == 0
    rows = read_version(Dataset.open(str(tmp_path / "ds"))).to_pylist()
    assert [(r["lang"], r["lang_source"]) for r in rows] == [("pt", "source")]


def test_cli_langs_filters_detected_posts(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines(POSTS))
    ds = tmp_path / "ds"
    assert main(["ingest", "posts", str(src), "--to", str(ds), "--langs", "de,ja"]) == 0
    rows = read_version(Dataset.open(str(ds))).to_pylist()
    got = sorted((r["post_id"], r["lang"], r["lang_source"]) for r in rows)
    assert got == [("1", "de", "detected"), ("4", "ja", "source")]
    query = "SELECT lang_source, count(*) AS n FROM posts GROUP BY 1 ORDER BY 1"
    capsys.readouterr()
    assert main(["query", str(ds), query]) == 0
    out = capsys.readouterr().out
    assert "detected" in out and "source" in out
