"""How alike published books' texts are (#42), for the next-book recommender.

Character n-grams (3 to 5 letters, within words) weighted by TF-IDF: they need no
word list, stemmer or tokeniser of a language, so they work alike for Swahili,
Portuguese and any language to come, and a translation shares its names and
numbers with its original. Each book keeps its nearest books only.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

NGRAMS = (3, 4, 5)
NEIGHBOURS = 30
# Below this a likeness is noise: two unrelated stories share "the", "ing" and such.
FLOOR = 0.05
_WORD = re.compile(r"\w+", re.UNICODE)


def ngrams(text: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for word in _WORD.findall(text.lower()):
        padded = f" {word} "
        for size in NGRAMS:
            for start in range(len(padded) - size + 1):
                counts[padded[start : start + size]] += 1
    return counts


def text_likeness(
    texts: Mapping[str, str], *, neighbours: int = NEIGHBOURS
) -> dict[str, dict[str, float]]:
    """book -> its nearest books by cosine of sublinear TF-IDF vectors, in (FLOOR, 1]."""
    grams = {book: ngrams(text) for book, text in texts.items() if text.strip()}
    documents = Counter(gram for counts in grams.values() for gram in counts)
    total = len(grams)
    vectors: dict[str, dict[str, float]] = {}
    for book, counts in grams.items():
        weights = {
            gram: (1 + math.log(count)) * (math.log((1 + total) / (1 + documents[gram])) + 1)
            for gram, count in counts.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors[book] = {gram: w / norm for gram, w in weights.items()}
    # An inverted index: only books that share an n-gram are ever compared, and an
    # n-gram in more than half of them (" the", "ing ") is left out of it: it weighs
    # little, and would make the comparison of n books n squared.
    postings: dict[str, list[tuple[str, float]]] = {}
    common = max(2, total // 2)
    for book, vector in vectors.items():
        for gram, weight in vector.items():
            if documents[gram] <= common:
                postings.setdefault(gram, []).append((book, weight))
    nearest: dict[str, dict[str, float]] = {}
    for book, vector in vectors.items():
        dots: dict[str, float] = {}
        for gram, weight in vector.items():
            for other, other_weight in postings.get(gram, ()):
                if other != book:
                    dots[other] = dots.get(other, 0.0) + weight * other_weight
        ranked = sorted(
            ((o, round(d, 4)) for o, d in dots.items() if d > FLOOR), key=lambda x: -x[1]
        )
        nearest[book] = dict(ranked[:neighbours])
    return nearest
