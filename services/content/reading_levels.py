"""How hard a story is to read, and which language it is in, from its text alone.

A careful first reader's estimate, offline and in milliseconds: the language
CLD2 detects (its model ships in the `pycld2` wheel), and a reading level on the
catalog's scale (emergent, early, transitional, fluent) from features a literacy
specialist looks at:

- words per page and words per sentence (Bloom's leveled-reader tool caps both);
- word length: syllables per word from the Hunspell hyphenation dictionaries
  (`pyphen`: en, fr, es, pt), else characters per word;
- the share of rare words: those missing from `wordfreq`'s "small" list of the
  language (en, fr, es, pt), which holds every word used at least once per
  million (Zipf 3). The list is read straight from the wheel's data file
  (wordfreq's documented cBpack: msgpack, gzipped), a few milliseconds, where
  importing wordfreq itself (its tokenizers) cost each check's child 0.25 s;
- repetition, one minus the moving-average type-token ratio (a window of
  REPETITION_WINDOW words, so a long book is not "repetitive" by length alone):
  patterns and repetition make a beginner's book easier.

Where a language lacks a dictionary or a list (Swahili has neither), the feature
is None and `unavailable` says which and why; the score then stands on the rest.

The continuous `score` (higher = harder) combines them; a language's fitted
thresholds turn it into a level. Until a language has reviewers' confirmed levels
to fit on, the level comes from the documented word-count rule, WORDS_PER_PAGE_RULE:
average words on a page with text, read from Bloom's leveled-reader limits and the
African Storybook's levelling guidelines (level 1 "first words": a word, a phrase
or one short sentence a page; 2 "first sentences"; 3 "first paragraphs"; 4 "longer
paragraphs" and beyond).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import msgpack
import pycld2
import pyphen

Level = Literal["emergent", "early", "transitional", "fluent"]
# The catalog's scale, easiest first (services/content/families.py has the same;
# a test holds them equal: importing it here cost the check's child 0.16 s).
LEVELS: tuple[Level, ...] = ("emergent", "early", "transitional", "fluent")

# The word-count rule: the most words a page with text may average at each level
# (above the last: fluent).
WORDS_PER_PAGE_RULE: tuple[tuple[Level, float], ...] = (
    ("emergent", 10.0),
    ("early", 25.0),
    ("transitional", 60.0),
)
RARE_ZIPF = 3.0  # what wordfreq's "small" lists stop at
REPETITION_WINDOW = 50
# Where syllables cannot be counted, characters stand in for them at about this
# many letters a syllable (so the score keeps its scale across languages).
LETTERS_PER_SYLLABLE = 3.0
# CLD2's codes that are not today's BCP 47 primary subtags.
_CLD2_CODES = {"iw": "he", "in": "id", "jw": "jv", "tl": "fil"}
# Words: letters, with an apostrophe or hyphen inside ("l'eau", "mother-in-law").
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019\-][^\W\d_]+)*")
# A sentence ends at . ! ? or an ellipsis, before a space, a closing quote or the end.
_SENTENCE_END = re.compile(r"[.!?\u2026]+(?=[\s\"'\u201d\u2019\u00bb)\]]|$)")


@dataclass(frozen=True)
class DetectedLanguage:
    language: str | None  # a primary subtag ("pt"), or None when CLD2 cannot tell
    confidence: float  # 0 to 1: the share of the text in it, halved when unreliable
    reliable: bool


@dataclass(frozen=True)
class ReadingFeatures:
    pages: int
    pages_with_text: int
    words: int
    words_per_page: float
    words_per_sentence: float
    characters_per_word: float
    syllables_per_word: float | None
    rare_word_share: float | None
    repetition: float
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadingEstimate:
    language: str  # the language the features were measured in
    detected: DetectedLanguage
    level: Level | None  # None: no text to estimate from (a scanned book)
    score: float | None
    method: Literal["fitted thresholds", "word-count rule", "no text"]
    features: ReadingFeatures

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def primary_language(tag: str) -> str:
    return tag.split("-")[0].split("_")[0].lower()


def detect_language(text: str) -> DetectedLanguage:
    """CLD2's best guess for the whole text; None when it has too little to go on."""
    # CLD2 takes valid UTF-8 only: a lone surrogate from a broken text layer is dropped.
    clean = text.encode("utf-8", "ignore").decode("utf-8")
    try:
        reliable, _, details = pycld2.detect(clean)
    except pycld2.error:
        return DetectedLanguage(None, 0.0, False)
    _, code, percent, _ = details[0]
    if code in ("un", "xx") or percent == 0:
        return DetectedLanguage(None, 0.0, False)
    code = primary_language(_CLD2_CODES.get(code, code))
    confidence = percent / 100 if reliable else percent / 200
    return DetectedLanguage(code, round(confidence, 2), bool(reliable))


def words_of(text: str) -> list[str]:
    return _WORD.findall(text)


def _sentences(text: str, words: int) -> int:
    if words == 0:
        return 0
    ends = len(_SENTENCE_END.findall(text.rstrip()))
    # Text after the last full stop ("A big dog" with none) is a sentence too.
    tail = _SENTENCE_END.split(text.rstrip())[-1]
    return ends + (1 if words_of(tail) else 0)


@functools.cache
def _hyphenator(language: str) -> pyphen.Pyphen | None:
    if language not in pyphen.LANGUAGES:
        return None
    # left=right=1: a syllable may be one letter at a word's edge ("a-bout").
    return pyphen.Pyphen(lang=language, left=1, right=1)


@functools.lru_cache(maxsize=65_536)
def _syllables(language: str, word: str) -> int:
    hyphenator = _hyphenator(language)
    assert hyphenator is not None
    return len(hyphenator.positions(word)) + 1


@functools.cache
def common_words(language: str) -> frozenset[str] | None:
    """Every word of `language` used at least once per million (Zipf >= 3), from
    wordfreq's small list; None where wordfreq has no list for it."""
    if not re.fullmatch(r"[a-z]{2,3}", language):
        return None
    spec = importlib.util.find_spec("wordfreq")  # found, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    path = f"{next(iter(spec.submodule_search_locations))}/data/small_{language}.msgpack.gz"
    try:
        with gzip.open(path) as file:
            pack = msgpack.load(file, raw=False)
    except FileNotFoundError:
        return None
    # cBpack: a header, then the words of each frequency bucket, most frequent first.
    if not isinstance(pack, list) or not pack or pack[0].get("format") != "cB":
        return None
    return frozenset(word for bucket in pack[1:] for word in bucket)


def _moving_type_token_ratio(words: Sequence[str]) -> float:
    if not words:
        return 1.0
    if len(words) <= REPETITION_WINDOW:
        return len(set(words)) / len(words)
    window: Counter[str] = Counter(words[:REPETITION_WINDOW])
    ratios = [len(window) / REPETITION_WINDOW]
    for leaving, coming in zip(words, words[REPETITION_WINDOW:], strict=False):
        window[leaving] -= 1
        if window[leaving] == 0:
            del window[leaving]
        window[coming] += 1
        ratios.append(len(window) / REPETITION_WINDOW)
    return sum(ratios) / len(ratios)


def reading_features(pages: Sequence[str], language: str) -> ReadingFeatures:
    language = primary_language(language)
    unavailable: dict[str, str] = {}
    words: list[str] = []
    sentences = pages_with_text = 0
    for page in pages:
        on_page = words_of(page)
        if on_page:
            pages_with_text += 1
            sentences += _sentences(page, len(on_page))
            words += on_page
    lowered = [w.lower() for w in words]
    count = len(words)
    syllables: float | None = None
    if _hyphenator(language) is None:
        unavailable["syllables_per_word"] = f"no hyphenation dictionary for {language!r}"
    elif count:
        syllables = sum(_syllables(language, w) for w in lowered) / count
    rare: float | None = None
    common = common_words(language)
    if common is None:
        unavailable["rare_word_share"] = f"no word frequency list for {language!r}"
    elif count:
        rare = sum(1 for w in lowered if unicodedata.normalize("NFC", w) not in common) / count
    return ReadingFeatures(
        pages=len(pages),
        pages_with_text=pages_with_text,
        words=count,
        words_per_page=round(count / pages_with_text, 2) if pages_with_text else 0.0,
        words_per_sentence=round(count / sentences, 2) if sentences else 0.0,
        characters_per_word=round(sum(map(len, words)) / count, 2) if count else 0.0,
        syllables_per_word=None if syllables is None else round(syllables, 3),
        rare_word_share=None if rare is None else round(rare, 3),
        repetition=round(1 - _moving_type_token_ratio(lowered), 3),
        unavailable=unavailable,
    )


def difficulty(features: ReadingFeatures) -> float:
    """Higher is harder. Each term is near 0 for a first-words book; words per page
    weigh most, on a log scale (from 5 to 10 words a page is a bigger step than
    from 100 to 105)."""
    word_length = (
        features.syllables_per_word
        if features.syllables_per_word is not None
        else features.characters_per_word / LETTERS_PER_SYLLABLE
    )
    score = (
        math.log2(1 + features.words_per_page)
        + 0.08 * features.words_per_sentence
        + 1.5 * max(0.0, word_length - 1.0)
        + 2.0 * (features.rare_word_share or 0.0)
        - 1.0 * features.repetition
    )
    return round(score, 3)


def level_by_word_count(features: ReadingFeatures) -> Level:
    for level, most in WORDS_PER_PAGE_RULE:
        if features.words_per_page <= most:
            return level
    return "fluent"


def level_by_thresholds(score: float, thresholds: Sequence[float]) -> Level:
    """`thresholds`: the three scores where early, transitional and fluent begin."""
    assert len(thresholds) == len(LEVELS) - 1
    return LEVELS[sum(1 for t in thresholds if score >= t)]


def estimate_reading_level(
    pages: Sequence[str],
    declared_language: str | None = None,
    thresholds: Mapping[str, Sequence[float]] | None = None,
) -> ReadingEstimate:
    """The estimate for a book's pages: measured in the declared language (the one
    detected when none is declared), levelled by that language's fitted thresholds
    where there are any, else by the word-count rule."""
    detected = detect_language("\n".join(pages))
    language = primary_language(declared_language or detected.language or "und")
    features = reading_features(pages, language)
    if features.words == 0:
        return ReadingEstimate(language, detected, None, None, "no text", features)
    score = difficulty(features)
    fitted = (thresholds or {}).get(language)
    if fitted is not None:
        return ReadingEstimate(
            language, detected, level_by_thresholds(score, fitted), score, "fitted thresholds",
            features,
        )  # fmt: skip
    return ReadingEstimate(
        language, detected, level_by_word_count(features), score, "word-count rule", features
    )
