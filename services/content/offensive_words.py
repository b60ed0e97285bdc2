"""Offensive words in a manuscript (#40): a finding for a reviewer, never a refusal.

The lists: glin-profanity's for en, fr, es and pt (maintained, MIT; its JSON data
read straight from the wheel, as wordfreq's is in reading_levels.py, so the check's
child does not import the package), and Swahili's, kept in this repo with its
source (word_lists/sw.txt). Words those lists carry that children's books use in
their ordinary sense ("aranha", a spider; "comer", to eat; "tit", a bird) are
never findings: word_lists/ordinary.txt says which and why.

A text is checked with the lists of the languages it is in (the declared one and
the one detected), never with another's: French "bite" is an English verb. A word
matches as a whole word only ("class", "Scunthorpe" and "cocktail" are safe),
through the disguises people use to get past a filter: case, missing accents
("cabron"), l33t ("sh1t", "@ss", "b!tch"), stretched letters ("fuuuck"), letters
spelt apart ("f.u.c.k"), a star for a letter ("f*ck"), and the inflections of the
language ("fucked", "putas"). Phrases match word for word.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from services.content.personal_data import MASK, excerpt

WORD_LISTS = Path(__file__).parent / "word_lists"
# glin-profanity's file for each language it covers that the catalog reads.
PACKAGE_LISTS = {"en": "english", "fr": "french", "es": "spanish", "pt": "portuguese"}
REPO_LISTS = {"sw": "sw.txt"}
# Endings a listed word takes in running text (a base of at least MIN_BASE letters).
INFLECTIONS = {
    "en": ("s", "es", "ed", "d", "ing", "er", "ers"),
    "fr": ("s", "e", "es"),
    "es": ("s", "es"),
    "pt": ("s", "es"),
    "sw": (),
}
MIN_BASE = 3
# One finding per word and page, and a bound on a manuscript's count: a book full
# of one word needs one reviewer's look, not a thousand lines.
MAX_FINDINGS = 50

# What a disguised letter stands for ("1" is "i" or "l": both are tried).
_LEET = str.maketrans({"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                       "!": "i", "|": "l", "+": "t", "\u20ac": "e"})  # fmt: skip
_DISGUISE = set("013457@$!|+*\u20ac")
# A word as written, disguises included: letters, digits and the disguising
# symbols, with an apostrophe, a hyphen or a dot inside ("f.u.c.k", "foda-se").
_TOKEN = re.compile(r"[\w@$!|+*\u20ac]+(?:['\u2019.\-][\w@$!|+*\u20ac]+)*")
_RUN = re.compile(r"(.)\1{2,}")
# The sentence's punctuation at a token's edges ("Merde!"), as _stripped drops it.
_EDGES = re.compile(r"^[!.|+'\u2019-]+|[!.|+'\u2019-]+$")


@functools.lru_cache(maxsize=65_536)  # a book repeats its words: each folded once
def fold(word: str) -> str:
    """Without its accents: "cabrón" as the author who left them out wrote it."""
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@functools.lru_cache(maxsize=65_536)
def normal(word: str) -> str:
    return unicodedata.normalize("NFC", word).casefold()


@functools.cache
def ordinary_words() -> dict[str, frozenset[str]]:
    by_language: dict[str, set[str]] = {}
    for language, entry in _entries(WORD_LISTS / "ordinary.txt", with_language=True):
        by_language.setdefault(language, set()).add(entry)
    return {language: frozenset(words) for language, words in by_language.items()}


def _entries(path: Path, with_language: bool = False) -> Iterator[tuple[str, str]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        language, _, entry = line.partition(" ") if with_language else ("", "", line)
        yield language, " ".join(normal(entry).split())


class WordList:
    """One language's offensive words and phrases, less its ordinary words."""

    def __init__(self, language: str, entries: Iterable[str]) -> None:
        ordinary = ordinary_words().get(language, frozenset())
        self.language = language
        self.inflections = INFLECTIONS.get(language, ())
        self.words: set[str] = set()
        self.phrases: dict[str, list[tuple[str, ...]]] = {}
        for entry in {normal(e) for e in entries} - ordinary:
            parts = tuple(entry.split())
            if len(parts) > 1:
                self.phrases.setdefault(parts[0], []).append(parts)
                self.phrases.setdefault(fold(parts[0]), []).append(tuple(map(fold, parts)))
            elif parts:
                self.words.add(parts[0])
        self.folded = {fold(w) for w in self.words}
        self.ordinary = ordinary | {fold(w) for w in ordinary}
        # A star stands for one letter: "f*ck" is checked against words of its length.
        self._matched: dict[str, str | None] = {}
        self.by_length: dict[int, list[str]] = {}
        for word in self.words:
            self.by_length.setdefault(len(word), []).append(word)

    def listed(self, word: str) -> str | None:
        """The listed word `word` is, as written or inflected; None if none."""
        if word in self.ordinary or fold(word) in self.ordinary:
            return None
        # As written, with or without its accents ("cabrão" for a list's "cabrao",
        # "cabron" for "cabrón") ...
        if word in self.words or fold(word) in self.folded:
            return word
        # ... and inflected, where accents are not dropped: "cônes" is not "con"+"es".
        for ending in self.inflections:
            base = word[: -len(ending)]
            if not word.endswith(ending) or len(base) < MIN_BASE or base in self.ordinary:
                continue
            if base in self.words or (base.isascii() and base in self.folded):
                return base
        return None

    def could_be_among(self, words: set[str]) -> bool:
        """Whether a page with these distinct (normalised) words may hold a listed
        word or phrase: a phrase only if every one of its words is there."""
        folded: set[str] | None = None
        for word in words:
            if word and self.match(word) is not None:
                return True
            for phrase in self.phrases.get(word, []) + self.phrases.get(fold(word), []):
                folded = folded or {fold(w) for w in words}
                if all(part in words or part in folded for part in phrase):
                    return True
        return False

    def match(self, token: str) -> str | None:
        """The listed word a token of running text is, disguised or not (each
        distinct token of a book is worked out once)."""
        if token not in self._matched:
            if len(self._matched) >= 65_536:
                self._matched.clear()
            self._matched[token] = self._match(token)
        return self._matched[token]

    def _match(self, token: str) -> str | None:
        for form in disguises(token):
            if "*" in form:
                pattern = re.compile(re.escape(form).replace(r"\*", r"\w") + r"\Z")
                for word in self.by_length.get(len(form), ()):
                    if pattern.match(word) and word not in self.ordinary:
                        return word
                continue
            found = self.listed(form)
            if found is not None:
                return found
        return None


def disguises(token: str) -> Iterator[str]:
    """The token as written, then what its disguises hide."""
    yield token
    if not any(c.isalpha() for c in token):
        return
    forms = [token]
    parts = re.split(r"[.\-_]", token)
    if len(parts) > 2 and all(len(p) == 1 for p in parts):  # f.u.c.k
        forms.append("".join(parts))
    if any(c in _DISGUISE for c in token):
        for form in list(forms):
            plain = form.translate(_LEET)
            forms += [plain, plain.replace("1", "i"), plain.replace("1", "l")]
    for form in list(forms):
        if _RUN.search(form):  # fuuuuck, shiiit, asssss
            forms += [_RUN.sub(r"\1\1", form), _RUN.sub(r"\1", form)]
    yield from dict.fromkeys(forms[1:])


@functools.cache
def word_list(language: str) -> WordList | None:
    """The list for a language, or None where neither glin-profanity nor this repo
    has one."""
    if language in REPO_LISTS:
        return WordList(language, (e for _, e in _entries(WORD_LISTS / REPO_LISTS[language])))
    name = PACKAGE_LISTS.get(language)
    spec = importlib.util.find_spec("glin_profanity")  # found, not imported
    if name is None or spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    try:
        data = json.loads((package / "data" / "dictionaries" / f"{name}.json").read_bytes())
    except FileNotFoundError:
        return None
    return WordList(language, (w for w in data.get("words", []) if isinstance(w, str)))


def hide(found: str) -> str:
    """An offensive word as shown to a reviewer: its first letter, then "•"."""
    marks = [i for i, c in enumerate(found) if c.isalnum()]
    keep = marks[0] if marks else -1
    return "".join(c if i == keep or not c.isalnum() else MASK for i, c in enumerate(found))


def _stripped(text: str, match: re.Match[str]) -> tuple[str, int, int]:
    """A token without the sentence's punctuation at its edges ("Merde!")."""
    start, end = match.span()
    while end > start and text[end - 1] in "!.|+'\u2019-":
        end -= 1
    while start < end and text[start] in "!.|+'\u2019-":
        start += 1
    return text[start:end], start, end


def _phrase_at(words: Sequence[str], i: int, wordlist: WordList) -> int:
    """How many words from the i-th (normalised) make a listed phrase (0: none)."""
    first = words[i]
    starting = wordlist.phrases.get(first, []) + wordlist.phrases.get(fold(first), [])
    for phrase in starting:
        taken = tuple(words[i : i + len(phrase)])
        if taken == phrase or tuple(map(fold, taken)) == phrase:
            return len(phrase)
    return 0


def offensive_word_findings(
    pages: Sequence[str], languages: Iterable[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The findings, and which languages were checked and which had no list."""
    checked, unavailable = [], {}
    for language in dict.fromkeys(languages):
        if word_list(language) is None:
            unavailable[language] = f"no offensive-word list for {language!r}"
        else:
            checked.append(language)
    lists = [wl for wl in map(word_list, checked) if wl is not None]
    found: list[dict[str, Any]] = []
    for number, text in enumerate(pages, start=1):
        matches = _matches(text, lists)
        spans = [(start, end) for _, _, start, end in matches]
        first: dict[str, tuple[str, int, int]] = {}
        times: dict[str, int] = {}
        for word, language, start, end in matches:
            first.setdefault(word, (language, start, end))
            times[word] = times.get(word, 0) + 1
        for word, (language, start, end) in first.items():
            if len(found) >= MAX_FINDINGS:
                break
            again = f" {times[word]} times on this page." if times[word] > 1 else ""
            found.append(
                {
                    "kind": "offensive-word",
                    "severity": "warning",
                    "page": number,
                    # Every other offensive word in its context hidden too.
                    "excerpt": excerpt(text, (start, end), spans, masker=hide),
                    "detail": f"A word on the {language!r} list of offensive words.{again}",
                }
            )
    return found, {"checked": checked, "unavailable": unavailable}


def _matches(text: str, lists: Sequence[WordList]) -> list[tuple[str, str, int, int]]:
    """Each listed word or phrase on a page: (word, language, start, end); a word
    inside a matched phrase is that phrase, not a second finding."""
    # Most pages have none: their distinct words are looked up once each, and only
    # a page with a candidate is walked word by word.
    distinct = {normal(_EDGES.sub("", token)) for token in set(_TOKEN.findall(text))}
    if not any(wordlist.could_be_among(distinct) for wordlist in lists):
        return []
    tokens = [t for t in (_stripped(text, m) for m in _TOKEN.finditer(text)) if t[0]]
    words = [normal(token) for token, _, _ in tokens]
    matches: list[tuple[str, str, int, int]] = []
    i = 0
    while i < len(tokens):
        _, start, end = tokens[i]
        step = 1
        for wordlist in lists:
            length = _phrase_at(words, i, wordlist)
            if length:
                phrase = " ".join(words[i : i + length])
                matches.append((phrase, wordlist.language, start, tokens[i + length - 1][2]))
                step = length
                break
            listed = wordlist.match(words[i])
            if listed is not None:
                matches.append((listed, wordlist.language, start, end))
                break
        i += step
    return matches
