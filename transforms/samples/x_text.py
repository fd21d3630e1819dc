"""Post texts in many languages, with hashtags, mentions, cashtags, URLs and their entities.

Entity offsets count Unicode code points of the unescaped text; the API text is then
HTML-escaped (``&`` ``<`` ``>``), as the X API v2 serves it.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass, field

__all__ = ["Composed", "compose_text", "tco"]

LANG_TEMPLATES = {
    "en": [
        "Traffic on the bridge is wild this morning {emoji} {tag}",
        "Q&A tonight: is <self-driving> > human driving? {tag} {cash}",
        "Just shipped the new dashcam firmware, notes here {url} {tag}",
    ],
    "es": ["¡Qué atasco en la autopista! {emoji} {tag}", "Mañana hay partido {tag} {emoji}"],
    "pt": ["Trânsito parado na marginal de novo {emoji} {tag}"],
    "fr": ["Les voitures autonomes arrivent à Paris {tag} {url}", "Café crème et bouchons {emoji}"],
    "de": ["Stau auf der A9, wie jeden Morgen {tag} {emoji}"],
    "ja": ["東京の朝の渋滞はすごい {tag} {emoji}", "自動運転のデモを見てきた {tag}"],
    "ar": ["الزحام شديد اليوم في الرياض {tag} {emoji}"],
    "hi": ["आज सड़क पर बहुत भीड़ है {tag} {emoji}"],
    "ko": ["서울 출근길 교통 체증 {tag} {emoji}"],
    "tr": ["İstanbul trafiği yine kilitlendi {tag} {emoji}"],
}
TAGS = {
    "en": ["#dashcam", "#AI", "#traffic"],
    "es": ["#fútbol", "#tráfico"],
    "pt": ["#trânsito"],
    "fr": ["#Paris", "#mobilité"],
    "de": ["#Straßenverkehr"],
    "ja": ["#東京", "#自動運転"],
    "ar": ["#الرياض"],
    "hi": ["#भारत"],
    "ko": ["#서울"],
    "tr": ["#İstanbul"],
}
EMOJI = ["🚗", "🚦", "👍🏽", "🇯🇵", "👨‍👩‍👧", "🔥", "😂"]
CASHTAGS = ["$TSLA", "$NVDA", "$AAPL", "$GOOG"]
SITES = ["https://example.com/news/traffic-report", "https://blog.example.org/firmware/v2.4"]
PII = ["mail me at jane.doe@example.com", "call +1 415 555 0142", "ring 030 1234 5678"]


@dataclass
class Composed:
    """A post text: ``api_text`` as served (escaped) and its entities on the unescaped text."""

    text: str
    entities: dict = field(default_factory=dict)
    pii: bool = False

    @property
    def api_text(self) -> str:
        return html.escape(self.text, quote=False)


def tco(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "https://t.co/" + "".join(rng.choice(alphabet) for _ in range(10))


class _Builder:
    def __init__(self):
        self.text = ""
        self.entities: dict[str, list] = {}

    def add(self, piece: str, kind: str | None = None, **extra) -> None:
        start = len(self.text)
        self.text += piece
        if kind:
            self.entities.setdefault(kind, []).append(
                {"start": start, "end": len(self.text), **extra}
            )


def compose_text(
    rng: random.Random,
    lang: str,
    *,
    mention: tuple[str, str] | None = None,
    pii: bool = False,
    oddity: str | None = None,
) -> Composed:
    """A text in ``lang``; ``mention=(username, user_id)`` prefixes an @mention (replies).

    ``oddity`` adds something ingestion must clean: ``"control"`` (a control character) or
    ``"nfd"`` (a decomposed accent, which NFC normalization recomposes).
    """
    template = rng.choice(LANG_TEMPLATES[lang])
    b = _Builder()
    if mention:
        b.add("@" + mention[0], "mentions", username=mention[0], id=mention[1])
        b.add(" ")
    pos = 0
    while pos < len(template):
        brace = template.find("{", pos)
        if brace < 0:
            b.add(template[pos:])
            break
        b.add(template[pos:brace])
        end = template.index("}", brace)
        slot = template[brace + 1 : end]
        pos = end + 1
        if slot == "tag":
            tag = rng.choice(TAGS[lang])
            b.add(tag, "hashtags", tag=tag[1:])
        elif slot == "cash":
            cash = rng.choice(CASHTAGS)
            b.add(cash, "cashtags", tag=cash[1:])
        elif slot == "url":
            site = rng.choice(SITES)
            short = tco(rng)
            display = site.split("://", 1)[1][:24] + "…"
            b.add(short, "urls", url=short, expanded_url=site, display_url=display)
        elif slot == "emoji":
            b.add(rng.choice(EMOJI))
    if pii:
        b.add(" " + rng.choice(PII))
    if oddity == "control":
        b.add(" \x07done")
    elif oddity == "nfd":
        b.add(" cafe\u0301")
    return Composed(b.text, b.entities, pii)
