"""Text analysis for the keyword index: the same words on the document and query side.

Tokens are runs of Unicode letters and digits (as SQLite FTS5's ``unicode61``), case
folded, diacritics removed, English stop words kept out of the postings (they still
count towards a document's length, as in FTS5), then Porter-stemmed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hivemem.memory.search import STOPWORDS

__all__ = ["Analyzed", "analyze", "query_terms", "stem"]

_TOKEN = re.compile(r"[^\W_]+")
_STEMS: dict[str, str] = {}
_stemmer: Any = None


def _fold(text: str) -> str:
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    """The Porter stem of a folded word (cached: a vocabulary is small)."""
    found = _STEMS.get(word)
    if found is None:
        global _stemmer
        if _stemmer is None:
            import Stemmer  # type: ignore[import-not-found]

            _stemmer = Stemmer.Stemmer("porter")
        found = str(_stemmer.stemWord(word))
        if len(_STEMS) > 500_000:  # bound the cache for adversarial vocabularies
            _STEMS.clear()
        _STEMS[word] = found
    return found


@dataclass(frozen=True, slots=True)
class Analyzed:
    """One text as the index sees it: term frequencies and the token count."""

    terms: dict[str, int]
    length: int

    def __add__(self, other: Analyzed) -> Analyzed:
        if not other.length:
            return self
        if not self.length:
            return other
        terms = Counter(self.terms)
        terms.update(other.terms)
        return Analyzed(dict(terms), self.length + other.length)


EMPTY = Analyzed({}, 0)


def analyze(text: str | None) -> Analyzed:
    """Term frequencies (stemmed, stop words left out) and length of ``text``."""
    if not text:
        return EMPTY
    words = _TOKEN.findall(_fold(text))
    counts: Counter[str] = Counter()
    for word in words:
        if word not in STOPWORDS:
            counts[stem(word)] += 1
    return Analyzed(dict(counts), len(words))


def query_terms(query: str) -> list[str]:
    """The distinct stemmed content terms of a query, in order."""
    seen: dict[str, None] = {}
    for word in _TOKEN.findall(_fold(query)):
        if word not in STOPWORDS:
            seen.setdefault(stem(word), None)
    return list(seen)
