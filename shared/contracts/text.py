"""Text people type that others will see: titles, summaries, names, review notes.

Refused inside: control characters (NUL and the rest of Unicode's Cc; a
summary or a note may keep its line breaks and tabs) and the bidirectional
overrides, embeddings and isolates (U+202A-U+202E, U+2066-U+2069), which can
make a title read differently from what it is ("Trojan Source"). A person's
name refuses every other invisible format character too (Unicode's Cf: zero-width
spaces, word joiners, soft hyphens, tags), which make two names that look the same
differ, or hide a split in a spreadsheet cell (#37 F4); only the zero-width
(non-)joiners that Persian, the Indic scripts and emoji need are kept.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
LINE_BREAKS_AND_TABS = frozenset("\n\r\t")
# ZERO WIDTH NON-JOINER and JOINER: part of how Persian, Hindi and emoji are written.
JOINERS = frozenset("\u200c\u200d")


def _visible_only(multiline: bool) -> Callable[[str], str]:
    def check(value: str) -> str:
        for character in value:
            if character in BIDI_CONTROLS:
                raise ValueError(
                    "must not contain bidirectional control characters (U+202A-U+202E, "
                    "U+2066-U+2069)"
                )
            if unicodedata.category(character) == "Cc" and not (
                multiline and character in LINE_BREAKS_AND_TABS
            ):
                raise ValueError(f"must not contain control characters (U+{ord(character):04X})")
        return value

    return check


def _visible_name(value: str) -> str:
    _visible_only(multiline=False)(value)
    for character in value:
        if unicodedata.category(character) == "Cf" and character not in JOINERS:
            raise ValueError(
                f"must not contain invisible format characters (U+{ord(character):04X})"
            )
    return value


# Use inside Annotated, beside the field's StringConstraints.
SingleLine = AfterValidator(_visible_only(multiline=False))
MultiLine = AfterValidator(_visible_only(multiline=True))
PersonName = AfterValidator(_visible_name)

# A BCP 47 language tag as the frontend sends it: "en", "sw", "pt-BR". One type
# for every service that takes one (a story's language, a reviewer's languages).
LanguageTag = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=20)
]


def primary_language(tag: str) -> str:
    """A tag's language without its region or script: "en" of "en-GB", "pt" of "pt-BR".
    Regional variants of one language are one language to a story family's rules
    (#37 F9: a "translation" from en to en-GB took a new slot of the family)."""
    return tag.split("-")[0].lower()
