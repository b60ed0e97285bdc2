"""Story families: an original and every book derived from it.

A book is an `original`, a `translation` (another language, the same reading
level) or an `adaptation` (the same language, another reading level) of the book
it was derived from; all of them share the original's family. These rules are
pure (no I/O): the services load the rows and call them, and unit tests call
them directly.

Attribution is built from the derivation chain, as CC BY asks: who made this
version, from which work, by whom, under which licence.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from shared.contracts.errors import Conflict, Unprocessable
from shared.contracts.text import primary_language


class Derivation(StrEnum):
    ORIGINAL = "original"
    TRANSLATION = "translation"
    ADAPTATION = "adaptation"


class CreditRole(StrEnum):
    AUTHOR = "author"
    ILLUSTRATOR = "illustrator"
    TRANSLATOR = "translator"
    ADAPTER = "adapter"


# The Creative Commons licences a story may carry, with the short names the
# attribution prints. ND forbids derivatives, so no translation can start from it.
LICENCES: dict[str, str] = {
    "CC-BY-4.0": "CC BY 4.0",
    "CC-BY-SA-4.0": "CC BY-SA 4.0",
    "CC-BY-NC-4.0": "CC BY-NC 4.0",
    "CC-BY-NC-SA-4.0": "CC BY-NC-SA 4.0",
    "CC-BY-ND-4.0": "CC BY-ND 4.0",
    "CC-BY-NC-ND-4.0": "CC BY-NC-ND 4.0",
}

# Names by a tag's primary language subtag, as a reader of the attribution
# expects them (the platform's languages first; the tag itself otherwise).
LANGUAGE_NAMES: dict[str, str] = {
    "am": "Amharic",
    "ar": "Arabic",
    "bn": "Bengali",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fa": "Persian",
    "fr": "French",
    "ha": "Hausa",
    "hi": "Hindi",
    "id": "Indonesian",
    "ig": "Igbo",
    "it": "Italian",
    "lg": "Luganda",
    "ne": "Nepali",
    "nl": "Dutch",
    "pt": "Portuguese",
    "ru": "Russian",
    "rw": "Kinyarwanda",
    "so": "Somali",
    "sw": "Kiswahili",
    "ta": "Tamil",
    "tl": "Tagalog",
    "ur": "Urdu",
    "xh": "isiXhosa",
    "yo": "Yoruba",
    "zh": "Chinese",
    "zu": "isiZulu",
}

READING_LEVELS = ("emergent", "early", "transitional", "fluent")


def language_name(tag: str) -> str:
    return LANGUAGE_NAMES.get(primary_language(tag), tag)


# Words that make a name read as a licence, a copyright or a claim to the work in
# the attribution ("Jane (original author), CC BY 4.0", said by a translator): a
# name is a name, and the attribution says the role and the licence (#37 F9).
_NOT_A_NAME = re.compile(
    r"(\bcc([\s-]+by|[\s-]*0)\b|creative\s*commons|\blicen[cs]|copyright|\u00a9|\(c\)|"
    r"all\s+rights|public\s+domain|\b(original|authors?|authored)\b|"
    r"\b(written|illustrated|drawn)\s+by\b)",
    re.IGNORECASE,
)


def credit_name_problem(name: str) -> str | None:
    """Why a credit's name is not just a name, if it is not."""
    if _NOT_A_NAME.search(name):
        return (
            "a credit names a person: no licence, copyright or authorship wording (the "
            "attribution says the role and the licence itself)"
        )
    return None


class Version(Protocol):
    """What the family rules read of a book (a row, or a fake in unit tests)."""

    id: uuid.UUID
    family_id: uuid.UUID
    derived_from: uuid.UUID | None
    derivation: str
    title: str
    language: str
    reading_level: str
    status: str
    licence: str
    credits: list[dict[str, Any]]


def check_derivable(source: Version) -> None:
    if "ND" in source.licence.split("-"):
        raise Conflict(
            f"'{source.title}' is licensed {LICENCES.get(source.licence, source.licence)}: "
            "its licence allows no derivatives.",
            code="licence-forbids-derivatives",
        )


def check_derivation(
    derivation: str, source: Version, *, language: str, reading_level: str
) -> None:
    """A translation changes the language and keeps the level; an adaptation the reverse.

    Checked when a derivation starts and again on every change of its metadata
    (submission, book), so no edit can turn a translation into a copy.
    """
    if derivation == Derivation.TRANSLATION:
        if primary_language(language) == primary_language(source.language):
            raise Unprocessable(
                f"A translation is into another language than its source's ({source.language}; "
                "a regional variant of it is the same language).",
                code="translation-same-language",
            )
        if reading_level != source.reading_level:
            raise Unprocessable(
                f"A translation keeps its source's reading level ({source.reading_level}); "
                "start an adaptation to change it.",
                code="translation-changes-level",
            )
    elif derivation == Derivation.ADAPTATION:
        if reading_level == source.reading_level:
            raise Unprocessable(
                f"An adaptation is to another reading level than its source's "
                f"({source.reading_level}).",
                code="adaptation-same-level",
            )
        if primary_language(language) != primary_language(source.language):
            raise Unprocessable(
                f"An adaptation keeps its source's language ({source.language}); "
                "start a translation to change it.",
                code="adaptation-changes-language",
            )


def derived_credits(
    source: Version, role: CreditRole, name: str, account_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The source's credits, carried over, and the one who makes this version."""
    return [*source.credits, {"role": role.value, "name": name, "account_id": str(account_id)}]


def _names(credits: Iterable[Mapping[str, Any]], role: CreditRole) -> list[str]:
    return [c["name"] for c in credits if c["role"] == role.value]


def _joined(names: list[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _own_credits(version: Version, source: Version | None) -> list[dict[str, Any]]:
    """The credits this version added to its source's (the ones its step earned)."""
    if source is None:
        return list(version.credits)
    carried = [_credit_key(c) for c in source.credits]
    own = []
    for credit in version.credits:
        key = _credit_key(credit)
        if key in carried:
            carried.remove(key)
        else:
            own.append(credit)
    return own


def _credit_key(credit: Mapping[str, Any]) -> tuple[str, str, str | None]:
    return credit["role"], credit["name"], credit.get("account_id")


@dataclass(frozen=True)
class Family:
    """The loaded members of one family: every version, whatever its status."""

    id: uuid.UUID
    members: Mapping[uuid.UUID, Version]

    def source_of(self, version: Version) -> Version | None:
        if version.derived_from is None:
            return None
        return self.members.get(version.derived_from)

    def published_versions(self, besides: uuid.UUID | None = None) -> list[Version]:
        found = [v for v in self.members.values() if v.status == "PUBLISHED" and v.id != besides]
        return sorted(
            found, key=lambda v: (v.language, READING_LEVELS.index(v.reading_level), str(v.id))
        )

    def attribution(self, version: Version) -> str:
        licence = LICENCES.get(version.licence, version.licence)
        source = self.source_of(version)
        if source is None:
            return f"{self._describe(version, set())}, {licence}"
        step = self._step(version, source)
        return f"{step[0].upper()}{step[1:]} from {self._describe(source, {version.id})}, {licence}"

    def _step(self, version: Version, source: Version) -> str:
        own = _own_credits(version, source)
        if version.derivation == Derivation.TRANSLATION:
            done = f"translated into {language_name(version.language)}"
            role = CreditRole.TRANSLATOR
        else:
            done = f"adapted for {version.reading_level} readers"
            role = CreditRole.ADAPTER
        makers = _names(own, role)
        return f"{done} by {_joined(makers)}" if makers else done

    def _describe(self, version: Version, seen: set[uuid.UUID]) -> str:
        seen = seen | {version.id}
        source = self.source_of(version)
        if source is None or source.id in seen:
            authors = _names(version.credits, CreditRole.AUTHOR)
            illustrators = _names(version.credits, CreditRole.ILLUSTRATOR)
            text = f"'{version.title}'"
            if authors:
                text += f" by {_joined(authors)}"
            if illustrators:
                text += f", illustrated by {_joined(illustrators)}"
            return text
        return (
            f"'{version.title}', {self._step(version, source)} from {self._describe(source, seen)}"
        )


def families_of(versions: Iterable[Version]) -> dict[uuid.UUID, Family]:
    grouped: dict[uuid.UUID, dict[uuid.UUID, Version]] = {}
    for version in versions:
        grouped.setdefault(version.family_id, {})[version.id] = version
    return {family_id: Family(family_id, members) for family_id, members in grouped.items()}
