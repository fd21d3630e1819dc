"""Language ID for posts whose source has no ``lang``, as X labels posts.

The model is py3langid's (langid.py's naive Bayes over byte n-grams), which ships inside the
package: nothing is downloaded at run time. It is loaded on the first post that needs it (about
0.7 s, once per worker process), so runs whose posts all carry X's own ``lang`` never pay for it.

What X would write, not plain ISO 639-1: X's ``lang`` field still uses the legacy codes ``in``
(Indonesian) and ``iw`` (Hebrew), Norwegian is ``no``, Filipino ``tl``, and a post X cannot tell is
``und``. The model is restricted to the languages X labels, so it never answers a language X
would not use. Before classifying, URLs, @mentions and cashtags are removed and ``#`` dropped
from hashtags (their words are the author's language); a text with fewer than ``MIN_LETTERS``
letters left, or whose best language has a probability below ``MIN_CONFIDENCE``, is ``und``.

>>> detect_lang("Stau auf der A9, wie jeden Morgen #Verkehr")
'de'
>>> detect_lang("@jane https://t.co/x 👍")
'und'
"""

from __future__ import annotations

import re
import threading

__all__ = ["DETECTED", "MIN_CONFIDENCE", "MIN_LETTERS", "SOURCE", "X_LANGS", "detect_lang"]

# Values of the ``lang_source`` column.
SOURCE = "source"
DETECTED = "detected"

# Below this many letters (after removing URLs, mentions and cashtags) a text is ``und``: one or
# two words say little about their language, and X itself leaves such posts ``und``.
MIN_LETTERS = 5
# Below this posterior probability the best guess is no better than its neighbours: ``und``.
MIN_CONFIDENCE = 0.5

# The languages X labels posts with (its search operator's list), in X's spelling.
_X_CODES = """am ar bg bn bo ca ckb cs cy da de dv el en es et eu fa fi fr gu hi ht hu hy in is it
iu iw ja ka km kn ko lo lt lv ml mr my ne nl no or pa pl ps pt ro ru sd si sk sl sr sv ta te th tl
tr ug uk ur vi zh"""
X_LANGS = frozenset(_X_CODES.split())
# The model's codes that X spells otherwise.
_TO_X = {"he": "iw", "id": "in", "nn": "no"}
_NOT_TEXT = re.compile(r"https?://\S+|www\.\S+|[@＠]\w+|\$[A-Za-z]{1,6}\b|[#＃]", re.IGNORECASE)

_lock = threading.Lock()
_identifier = None


def detect_lang(text: str) -> str:
    """X's language code for ``text`` (``und`` when unsure); see the module docstring."""
    words = _NOT_TEXT.sub(" ", text)
    if sum(c.isalpha() for c in words) < MIN_LETTERS:
        return "und"
    lang, probability = _model().classify(words)
    if probability < MIN_CONFIDENCE:
        return "und"
    return _TO_X.get(lang, lang)


def _model():
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                _identifier = _load()
    return _identifier


def _load():
    # Imported here: most runs never detect, and the import plus model load cost ~0.7 s.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    x_of = {code: _TO_X.get(code, code) for code in identifier.labels}
    identifier.set_languages(sorted(code for code, x in x_of.items() if x in X_LANGS))
    return identifier
